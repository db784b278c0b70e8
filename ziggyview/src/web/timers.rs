//! `GET /api/timers`: a timer (any numeric body key) over a range, per channel: the summary
//! `ziggyview --stats` prints (the same code, so the same numbers), and the same per minute of
//! `start`, with each minute's counts in the summary's histogram buckets (a heatmap).
//!
//! Exact percentiles need every value: 8 bytes per matching event are held (as `--stats` holds
//! them), plus 8 more while the summary is made, up to [`MAX_VALUES`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use axum::http::StatusCode;

use crate::record::number;
use crate::timers::{Summary, bucket_of, percentile};
use crate::web::files::LogRoot;
use crate::web::filter::{EventFilter, Verdict};
use crate::web::params::{ApiError, DayRange, Params};
use crate::web::scan::scan_file;
use crate::web::search::Problems;

/// The parameters `/api/timers` takes.
pub(crate) const KNOWN: &[&str] = &["channel", "key", "from", "to", "id", "filter"];

/// Most values one request collects (128 MiB while summarised).
pub(crate) const MAX_VALUES: usize = 8_000_000;

/// A parsed timer request.
#[derive(Debug)]
pub(crate) struct TimerQuery {
    pub filter: EventFilter,
    pub key: String,
    pub range: DayRange,
}

impl TimerQuery {
    /// From the query parameters (`key` required); `latest` is the default day.
    pub fn from_params(
        params: &Params,
        latest: ziggy_proto::day::Day,
    ) -> Result<TimerQuery, ApiError> {
        let key = params
            .one("key")?
            .ok_or_else(|| ApiError::bad("give the timer's body key: key=request_time"))?;
        if key.len() > 256 || key.split('.').any(str::is_empty) {
            return Err(ApiError::bad(format!(
                "bad key {key:?}: a dotted body key such as request_time or db.query_time"
            )));
        }
        Ok(TimerQuery {
            filter: EventFilter::from_params(params)?,
            key: key.to_owned(),
            range: params.days(latest)?,
        })
    }
}

/// The values of one channel, by minute (Unix seconds of the minute's start).
type ByMinute = BTreeMap<i64, Vec<f64>>;

/// Collects the values and returns the summaries' JSON (docs/WEB.md).
pub(crate) fn timers(root: &LogRoot, query: &TimerQuery) -> Result<Vec<u8>, ApiError> {
    let listed = root.files(&query.filter.pattern, query.range);
    let mut problems = Problems::default();
    for p in listed.problems {
        problems.push(p);
    }
    let mut channels: BTreeMap<String, ByMinute> = BTreeMap::new();
    let (mut held, mut missing) = (0usize, 0u64);
    for file in &listed.files {
        let scanned = scan_file(root, file, 0, |at, bytes| {
            let rec = match query.filter.check(bytes) {
                Ok(Verdict::No) => return ControlFlow::Continue(()),
                Ok(Verdict::Yes(rec)) => Verdict::record(rec, bytes),
                Err(e) => Err(e),
            };
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    problems.push(format!(
                        "{}: event at byte {at} skipped: {e}",
                        root.shown(&file.path)
                    ));
                    return ControlFlow::Continue(());
                }
            };
            // The rule of `--stats` (TimerStats::push): a finite number, or counted missing.
            match number(rec.body_value(&query.key)) {
                Some(v) if v.is_finite() => {
                    if held == MAX_VALUES {
                        return ControlFlow::Break(());
                    }
                    held += 1;
                    let minute = (rec.start / 60.0).floor() * 60.0;
                    let minute = if minute.is_finite() { minute as i64 } else { 0 };
                    channels
                        .entry(rec.channel)
                        .or_default()
                        .entry(minute)
                        .or_default()
                        .push(v);
                }
                _ => missing += 1,
            }
            ControlFlow::Continue(())
        });
        if let Err(problem) = scanned {
            problems.push(problem);
        }
        if held == MAX_VALUES {
            return Err(ApiError::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "over {MAX_VALUES} values of {:?}: narrow the range, channel or filters",
                    query.key
                ),
            ));
        }
    }
    let summaries: Vec<serde_json::Value> = channels
        .into_iter()
        .map(|(channel, by_minute)| summary_json(&channel, by_minute))
        .collect();
    let answer = serde_json::json!({
        "key": query.key,
        "from": query.range.first.to_string(),
        "to": query.range.last.to_string(),
        "missing": missing,
        "channels": summaries,
        "problems": problems.said,
        "problem_count": problems.count,
    });
    let mut out = Vec::new();
    crate::safe::write_json(&mut out, &answer).map_err(|e| {
        ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the answer: {e}"),
        )
    })?;
    Ok(out)
}

/// One channel's summary with its minutes.
fn summary_json(channel: &str, by_minute: ByMinute) -> serde_json::Value {
    let mut all: Vec<f64> = by_minute.values().flatten().copied().collect();
    let summary = Summary::of(channel, &mut all);
    drop(all);
    let width = (summary.max - summary.min) / 10.0;
    let minutes: Vec<serde_json::Value> = by_minute
        .into_iter()
        .map(|(minute, mut values)| {
            let mut buckets = [0usize; 10];
            for v in &values {
                buckets[bucket_of(*v, summary.min, width)] += 1;
            }
            values.sort_by(f64::total_cmp);
            serde_json::json!({
                "minute": minute,
                "count": values.len(),
                "p50": percentile(&values, 50.0),
                "p90": percentile(&values, 90.0),
                "p99": percentile(&values, 99.0),
                "max": values[values.len() - 1],
                "buckets": buckets,
            })
        })
        .collect();
    let histogram: Vec<serde_json::Value> = summary
        .histogram
        .iter()
        .map(|b| serde_json::json!({ "from": b.from, "count": b.count }))
        .collect();
    serde_json::json!({
        "channel": summary.channel, "count": summary.count, "min": summary.min,
        "p50": summary.p50, "p90": summary.p90, "p99": summary.p99, "max": summary.max,
        "histogram": histogram, "per_minute": minutes,
    })
}
