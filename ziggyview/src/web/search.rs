//! `GET /api/search`: the matching events of a range, a page at a time.
//!
//! A page is read from where the previous one stopped (its `next` cursor: a file and a byte
//! offset), so paging costs what the page reads, not what came before, and nothing but the page
//! is held. Events come in file order: by day, then channel name, then as written. A page stops
//! at `limit` events, at [`PAGE_BYTES`] of output, or after [`PAGE_TIME`] of reading (a rare
//! filter over a large day still answers at once, with a cursor to read on).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::json;
use crate::safe::write_json_str;
use crate::web::files::{LogRoot, Position};
use crate::web::filter::{EventFilter, Verdict};
use crate::web::params::{ApiError, DayRange, Params};
use crate::web::scan::{ScanEnd, scan_file};

/// The parameters `/api/search` takes.
pub(crate) const KNOWN: &[&str] = &[
    "channel", "from", "to", "id", "filter", "fields", "limit", "cursor",
];

/// Events in a page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// A page ends once its JSON is this large.
const PAGE_BYTES: usize = 8 << 20;

/// A page ends after this much reading, matches or not.
pub(crate) const PAGE_TIME: Duration = Duration::from_millis(1000);

/// Problems said on one page; more are counted.
pub(crate) const MAX_PROBLEMS: usize = 20;

/// A parsed search.
#[derive(Debug)]
pub(crate) struct Search {
    pub filter: EventFilter,
    pub range: DayRange,
    pub fields: Option<Vec<String>>,
    pub limit: usize,
    pub cursor: Option<Position>,
}

impl Search {
    /// From the query parameters; `latest` is the default day.
    pub fn from_params(params: &Params, latest: ziggy_proto::day::Day) -> Result<Search, ApiError> {
        let fields = params.one("fields")?.map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        Ok(Search {
            filter: EventFilter::from_params(params)?,
            range: params.days(latest)?,
            fields,
            limit: params.count("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
            cursor: params.one("cursor")?.map(Position::parse).transpose()?,
        })
    }
}

/// Problems met while reading, said to the page: the first [`MAX_PROBLEMS`], and a count.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub said: Vec<String>,
    pub count: usize,
}

impl Problems {
    /// Adds one.
    pub fn push(&mut self, problem: String) {
        self.count += 1;
        if self.said.len() < MAX_PROBLEMS {
            self.said.push(problem);
        }
    }

    /// Writes `,"problems":[…],"problem_count":N`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#","problems":["#);
        for (i, p) in self.said.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // A Vec never fails.
            let _ = write_json_str(out, p);
        }
        out.extend_from_slice(format!(r#"],"problem_count":{}"#, self.count).as_bytes());
    }
}

/// Why a page ended before the range did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageEnd {
    Limit,
    Bytes,
    Time,
}

/// Reads one page; returns its JSON (docs/WEB.md).
pub(crate) fn search(root: &LogRoot, search: &Search) -> Result<Vec<u8>, ApiError> {
    let listed = root.files(&search.filter.pattern, search.range);
    let mut problems = Problems::default();
    for p in listed.problems {
        problems.push(p);
    }
    let (start, mut offset) = match &search.cursor {
        None => (0, 0),
        Some(at) => {
            let index = listed
                .files
                .iter()
                .position(|f| f.day == at.day && f.channel == at.channel)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "cursor {at} names no file of this search (its day or channel is not \
                         in the range and channel pattern)"
                    ))
                })?;
            (index, at.offset)
        }
    };
    let began = Instant::now();
    let mut out = br#"{"events":["#.to_vec();
    let mut item = Vec::new();
    let (mut count, mut scanned, mut looked) = (0usize, 0u64, 0u64);
    let mut next: Option<(Position, PageEnd)> = None;
    for file in &listed.files[start..] {
        let ended = scan_file(root, file, offset, |at, bytes| {
            let end = if count >= search.limit {
                Some(PageEnd::Limit)
            } else if out.len() >= PAGE_BYTES {
                Some(PageEnd::Bytes)
            } else if looked % 256 == 0 && looked > 0 && began.elapsed() >= PAGE_TIME {
                Some(PageEnd::Time)
            } else {
                None
            };
            if let Some(end) = end {
                let here = Position {
                    day: file.day,
                    channel: file.channel.clone(),
                    offset: at,
                };
                next = Some((here, end));
                return ControlFlow::Break(());
            }
            looked += 1;
            scanned += bytes.len() as u64;
            item.clear();
            let written = match search.filter.check(bytes) {
                Ok(Verdict::No) => return ControlFlow::Continue(()),
                Ok(Verdict::Yes(rec)) => write_item(&mut item, file, at, bytes, rec, search),
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    if count > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&item);
                    count += 1;
                }
                Err(e) => problems.push(format!(
                    "{}: event at byte {at} skipped: {e}",
                    root.shown(&file.path)
                )),
            }
            ControlFlow::Continue(())
        });
        offset = 0;
        match ended {
            Ok(ScanEnd::Stopped) => break,
            Ok(ScanEnd::Finished) => {}
            Err(problem) => problems.push(problem),
        }
    }
    out.extend_from_slice(b"]");
    out.extend_from_slice(format!(r#","count":{count},"scanned_bytes":{scanned}"#).as_bytes());
    out.extend_from_slice(
        format!(
            r#","from":"{}","to":"{}","files":{}"#,
            search.range.first,
            search.range.last,
            listed.files.len()
        )
        .as_bytes(),
    );
    match &next {
        Some((at, end)) => {
            let why = match end {
                PageEnd::Limit => "limit",
                PageEnd::Bytes => "bytes",
                PageEnd::Time => "time",
            };
            out.extend_from_slice(format!(r#","next":"{at}","stopped":"{why}""#).as_bytes());
        }
        None => out.extend_from_slice(br#","next":null,"stopped":null"#),
    }
    problems.write_json(&mut out);
    out.push(b'}');
    Ok(out)
}

/// Writes `{"at":"…","event":{…}}`, the body cut to the search's fields if it names some.
fn write_item(
    out: &mut Vec<u8>,
    file: &crate::web::files::LogFile,
    at: u64,
    bytes: &[u8],
    rec: Option<crate::record::Record>,
    search: &Search,
) -> Result<(), crate::record::DecodeError> {
    out.extend_from_slice(
        format!(r#"{{"at":"{}/{}/{at}","event":"#, file.day, file.channel).as_bytes(),
    );
    match &search.fields {
        None => json::write_event(out, bytes, None)?,
        Some(fields) => {
            let mut rec = Verdict::record(rec, bytes)?;
            rec.restrict_body(fields);
            json::write_document(out, &rec.doc, None)?;
        }
    }
    out.push(b'}');
    Ok(())
}
