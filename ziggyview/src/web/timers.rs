//! `GET /api/timers`: a timer (any numeric body key) over a range, per channel: the summary
//! `ziggyview --stats` prints (the same code, so the same numbers), and the same per step of
//! `start` (at most [`MAX_COLUMNS`] over the range), with each step's counts in the summary's
//! histogram buckets (a heatmap). The answer is written as it is made, without a JSON tree.
//!
//! Exact percentiles need every value: 8 bytes per matching event are held (as `--stats` holds
//! them), plus 8 more while the summary is made, up to [`MAX_VALUES`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use axum::http::StatusCode;

use crate::record::number;
use crate::safe::write_json_str;
use crate::timers::{Summary, bucket_of, percentile};
use crate::web::files::LogRoot;
use crate::web::filter::{EventFilter, Verdict};
use crate::web::params::{ApiError, DayRange, Params};
use crate::web::scan::{Budget, scan_file};
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

/// Most columns of a channel's series: the step is the shortest of [`STEPS`] that keeps the
/// range within this many (a day: 2 minutes; 31 days: 2 hours).
pub(crate) const MAX_COLUMNS: i64 = 720;

/// Most channels one request summarises (each holds up to [`MAX_COLUMNS`] columns).
pub(crate) const MAX_CHANNELS: usize = 1000;

/// The steps of the series, in minutes.
const STEPS: &[i64] = &[1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

/// The step of the series over `range`, in seconds.
pub(crate) fn step_of(range: DayRange) -> i64 {
    let minutes = (range.last.0 - range.first.0 + 1).max(1) * 1440;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| (minutes + s - 1) / s <= MAX_COLUMNS)
        .unwrap_or(1440);
    step * 60
}

/// The values of one channel: by column of the series, and those whose `start` lies outside
/// the range's days (in the summary, not in the series).
#[derive(Default)]
struct Collected {
    columns: Vec<Vec<f64>>,
    outside: Vec<f64>,
}

/// Collects the values and returns the summaries' JSON (docs/WEB.md). `budget` stops the scan
/// when it runs out of time or the client has gone.
pub(crate) fn timers(
    root: &LogRoot,
    query: &TimerQuery,
    budget: &Budget,
) -> Result<Vec<u8>, ApiError> {
    timers_up_to(root, query, budget, MAX_VALUES, MAX_CHANNELS)
}

/// [`timers`], refusing more than `max_values` or `max_channels`.
fn timers_up_to(
    root: &LogRoot,
    query: &TimerQuery,
    budget: &Budget,
    max_values: usize,
    max_channels: usize,
) -> Result<Vec<u8>, ApiError> {
    let listed = root.files(&query.filter.pattern, query.range);
    let mut problems = Problems::default();
    for p in listed.problems {
        problems.push(p);
    }
    let step = step_of(query.range);
    let begin = query.range.first.start_unix();
    // Every step divides a day.
    let days = query.range.last.0 - query.range.first.0 + 1;
    let columns = usize::try_from(days * 86_400 / step).unwrap_or(0);
    let mut channels: BTreeMap<String, Collected> = BTreeMap::new();
    let (mut held, mut missing) = (0usize, 0u64);
    let (mut refused, mut too_many_channels, mut spent) = (false, false, false);
    for file in &listed.files {
        let scanned = scan_file(root, file, 0, |at, bytes| {
            if budget.spent() {
                spent = true;
                return ControlFlow::Break(());
            }
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
                    if held == max_values {
                        refused = true;
                        return ControlFlow::Break(());
                    }
                    if channels.len() == max_channels && !channels.contains_key(&rec.channel) {
                        too_many_channels = true;
                        return ControlFlow::Break(());
                    }
                    held += 1;
                    let collected = channels.entry(rec.channel).or_default();
                    let column = ((rec.start - begin) / step as f64).floor();
                    if column >= 0.0 && column < columns as f64 {
                        if collected.columns.is_empty() {
                            collected.columns.resize_with(columns, Vec::new);
                        }
                        collected.columns[column as usize].push(v);
                    } else {
                        collected.outside.push(v);
                    }
                }
                _ => missing += 1,
            }
            ControlFlow::Continue(())
        });
        if let Err(problem) = scanned {
            problems.push(problem);
        }
        if spent {
            return Err(budget.error());
        }
        if refused {
            return Err(ApiError::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "over {max_values} values of {:?}: narrow the range, channel or filters",
                    query.key
                ),
            ));
        }
        if too_many_channels {
            return Err(ApiError::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "over {max_channels} channels have {:?}: narrow the channel",
                    query.key
                ),
            ));
        }
    }
    let mut out = br#"{"key":"#.to_vec();
    write_json_str(&mut out, &query.key).map_err(internal)?;
    out.extend_from_slice(
        format!(
            r#","from":"{}","to":"{}","step":{step},"missing":{missing},"channels":["#,
            query.range.first, query.range.last
        )
        .as_bytes(),
    );
    for (i, (channel, collected)) in channels.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_channel(&mut out, &channel, collected, begin as i64, step)?;
    }
    out.push(b']');
    problems.write_json(&mut out);
    out.push(b'}');
    Ok(out)
}

/// Writes a JSON number (finite: the values and their percentiles are).
fn write_number(out: &mut Vec<u8>, v: f64) -> Result<(), ApiError> {
    crate::safe::write_json(&mut *out, &v).map_err(|e| internal(e.into()))
}

/// One channel's summary and its series: `{"channel", "count", "min", "p50", "p90", "p99",
/// "max", "histogram", "outside", "series": [{"at", "count", "p50", "p90", "p99", "max",
/// "buckets"}]}`, the columns without values left out.
fn write_channel(
    out: &mut Vec<u8>,
    channel: &str,
    collected: Collected,
    begin: i64,
    step: i64,
) -> Result<(), ApiError> {
    let Collected {
        mut columns,
        outside,
    } = collected;
    let summary = {
        let mut all: Vec<f64> = columns.iter().flatten().copied().collect();
        all.extend_from_slice(&outside);
        Summary::of(channel, &mut all)
    };
    out.extend_from_slice(br#"{"channel":"#);
    write_json_str(out, &summary.channel).map_err(internal)?;
    out.extend_from_slice(format!(r#","count":{}"#, summary.count).as_bytes());
    for (name, v) in [
        ("min", summary.min),
        ("p50", summary.p50),
        ("p90", summary.p90),
        ("p99", summary.p99),
        ("max", summary.max),
    ] {
        out.extend_from_slice(format!(r#","{name}":"#).as_bytes());
        write_number(out, v)?;
    }
    out.extend_from_slice(br#","histogram":["#);
    for (i, b) in summary.histogram.iter().enumerate() {
        out.extend_from_slice(if i > 0 { b",{\"from\":" } else { b"{\"from\":" });
        write_number(out, b.from)?;
        out.extend_from_slice(format!(r#","count":{}}}"#, b.count).as_bytes());
    }
    out.extend_from_slice(format!(r#"],"outside":{},"series":["#, outside.len()).as_bytes());
    let width = (summary.max - summary.min) / 10.0;
    let mut first = true;
    for (i, values) in columns.iter_mut().enumerate() {
        if values.is_empty() {
            continue;
        }
        let mut buckets = [0usize; 10];
        for v in values.iter() {
            buckets[bucket_of(*v, summary.min, width)] += 1;
        }
        values.sort_by(f64::total_cmp);
        if !first {
            out.push(b',');
        }
        first = false;
        let at = begin + i as i64 * step;
        out.extend_from_slice(format!(r#"{{"at":{at},"count":{}"#, values.len()).as_bytes());
        for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)] {
            out.extend_from_slice(format!(r#","{name}":"#).as_bytes());
            write_number(out, percentile(values, p))?;
        }
        out.extend_from_slice(br#","max":"#);
        write_number(out, values[values.len() - 1])?;
        let buckets: Vec<String> = buckets.iter().map(usize::to_string).collect();
        out.extend_from_slice(format!(r#","buckets":[{}]}}"#, buckets.join(",")).as_bytes());
        *values = Vec::new();
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError::status(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("writing the answer: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use ziggy_proto::day::Day;

    use super::*;

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    #[test]
    fn the_series_has_at_most_720_columns() {
        for (days, step) in [(1, 120), (2, 300), (7, 900), (31, 7200)] {
            let range = DayRange {
                first: day("20240101"),
                last: Day(day("20240101").0 + days - 1),
            };
            assert_eq!(step_of(range), step, "{days} days");
            assert!(days * 86_400 / step <= MAX_COLUMNS);
        }
    }

    #[test]
    fn the_limit_itself_is_allowed_and_one_more_is_refused() {
        let logs = tempfile::tempdir().unwrap();
        std::fs::create_dir(logs.path().join("20240229")).unwrap();
        let start = day("20240229").start_unix() + 30.0;
        let mut bytes = Vec::new();
        for n in 0..3 {
            let event = bson::doc! {
                "id": format!("r{n}"), "type": "request", "host": "h", "pid": 1,
                "start": start + f64::from(n) * 300.0, "end": start + 1.0,
                "body": { "t": f64::from(n) },
            };
            bytes.extend(event.to_vec().unwrap());
        }
        std::fs::write(logs.path().join("20240229/request.20240229.bson"), bytes).unwrap();
        let root = LogRoot::open(logs.path()).unwrap();
        let params = Params::parse(Some("key=t&from=20240229"), KNOWN).unwrap();
        let query = TimerQuery::from_params(&params, day("20240229")).unwrap();
        let budget = Budget::new(Duration::from_secs(60), Arc::new(AtomicBool::new(false)));
        let answer = timers_up_to(&root, &query, &budget, 3, 1).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["step"], 120);
        let channel = &answer["channels"][0];
        assert_eq!(channel["count"], 3);
        let at: Vec<i64> = channel["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["at"].as_i64().unwrap())
            .collect();
        let first = start as i64 - 30;
        assert_eq!(at, [first, first + 240, first + 600]);
        let err = timers_up_to(&root, &query, &budget, 2, 1).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message.contains("over 2 values"), "{}", err.message);
        // Channels are bounded too (each holds its columns).
        let mut other = Vec::new();
        let event = bson::doc! {
            "id": "x", "type": "request.sql", "host": "h", "pid": 1,
            "start": start, "end": start, "body": { "t": 1.0 },
        };
        other.extend(event.to_vec().unwrap());
        std::fs::write(
            logs.path().join("20240229/request.sql.20240229.bson"),
            other,
        )
        .unwrap();
        assert!(timers_up_to(&root, &query, &budget, 4, 2).is_ok());
        let err = timers_up_to(&root, &query, &budget, 4, 1).unwrap_err();
        assert!(err.message.contains("over 1 channels"), "{}", err.message);
        // The client went away: the scan stops.
        let stop = Arc::new(AtomicBool::new(true));
        let gone = Budget::new(Duration::from_secs(60), stop);
        let err = timers_up_to(&root, &query, &gone, 3, 1).unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
