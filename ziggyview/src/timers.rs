//! `--stats KEY`: a timer (or any numeric body key) summarised per channel: count, min, p50, p90,
//! p99, max, and a small text histogram.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::record::{Record, number};

/// Values of one key, per channel.
#[derive(Debug, Default)]
pub struct TimerStats {
    key: String,
    values: BTreeMap<String, Vec<f64>>,
    missing: u64,
}

/// The summary of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The channel.
    pub channel: String,
    /// Events with the key.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Ten equal-width buckets over `[min, max]`.
    pub histogram: Vec<Bucket>,
}

impl Summary {
    /// The summary of `values` (not empty; sorted in place) for `channel`: what `--stats` prints,
    /// and what the web view shows.
    pub fn of(channel: &str, values: &mut [f64]) -> Summary {
        values.sort_by(f64::total_cmp);
        let (min, max) = (values[0], values[values.len() - 1]);
        let width = (max - min) / 10.0;
        let mut histogram: Vec<Bucket> = (0..10)
            .map(|i| Bucket {
                from: min + width * i as f64,
                count: 0,
            })
            .collect();
        for v in values.iter() {
            histogram[bucket_of(*v, min, width)].count += 1;
        }
        Summary {
            channel: channel.to_owned(),
            count: values.len(),
            min,
            p50: percentile(values, 50.0),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
            max,
            histogram,
        }
    }
}

/// The bucket (0..10) of `value` in a histogram from `min` with buckets `width` wide.
pub fn bucket_of(value: f64, min: f64, width: f64) -> usize {
    if width > 0.0 {
        (((value - min) / width) as usize).min(9)
    } else {
        0
    }
}

/// One bucket of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Its lower bound.
    pub from: f64,
    /// Values in it.
    pub count: usize,
}

/// Nearest-rank percentile of sorted values (not empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

impl TimerStats {
    /// Statistics of the dotted body key `key`.
    pub fn new(key: &str) -> Self {
        TimerStats {
            key: key.to_owned(),
            ..Default::default()
        }
    }

    /// Adds an event.
    pub fn push(&mut self, rec: &Record) {
        match number(rec.body_value(&self.key)) {
            Some(v) if v.is_finite() => self.values.entry(rec.channel.clone()).or_default().push(v),
            _ => self.missing += 1,
        }
    }

    /// Per channel summaries.
    pub fn summaries(&mut self) -> Vec<Summary> {
        self.values
            .iter_mut()
            .map(|(channel, values)| Summary::of(channel, values))
            .collect()
    }

    /// Prints the table and histograms (or JSON lines with `json`).
    pub fn write(&mut self, out: &mut impl Write, json: bool) -> io::Result<()> {
        let key = self.key.clone();
        let shown_key = crate::safe::escape(&key).into_owned();
        let missing = self.missing;
        let summaries = self.summaries();
        if json {
            for s in &summaries {
                let histogram: Vec<_> = s
                    .histogram
                    .iter()
                    .map(|b| serde_json::json!({ "from": b.from, "count": b.count }))
                    .collect();
                let line = serde_json::json!({
                    "channel": s.channel, "key": key, "count": s.count, "min": s.min, "p50": s.p50,
                    "p90": s.p90, "p99": s.p99, "max": s.max, "histogram": histogram,
                });
                crate::safe::write_json(&mut *out, &line)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        if summaries.is_empty() {
            writeln!(
                out,
                "no event has a numeric `{shown_key}` ({missing} events without it)"
            )?;
            return Ok(());
        }
        writeln!(out, "{shown_key}: {missing} events without it")?;
        writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12}",
            "channel", "count", "min", "p50", "p90", "p99", "max"
        )?;
        for s in &summaries {
            let channel = crate::safe::escape(&s.channel);
            writeln!(
                out,
                "{channel:<24} {:>8} {:>12.6} {:>12.6} {:>12.6} {:>12.6} {:>12.6}",
                s.count, s.min, s.p50, s.p90, s.p99, s.max
            )?;
        }
        for s in &summaries {
            writeln!(out, "\n{}", crate::safe::escape(&s.channel))?;
            let peak = s
                .histogram
                .iter()
                .map(|b| b.count)
                .max()
                .unwrap_or(1)
                .max(1);
            for Bucket { from, count } in &s.histogram {
                let bar = "#".repeat((count * 40).div_ceil(peak));
                writeln!(out, "  {from:>12.6} | {bar:<40} {count}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 90.0), 90.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
