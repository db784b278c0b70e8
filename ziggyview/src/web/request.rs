//! `GET /api/request`: every event sharing one id, across channels, as the tree the waterfall
//! draws (`request` > `request.sql`, in start order), as `ziggyview --group` builds it.

use std::ops::ControlFlow;

use ziggy_proto::fields;

use crate::group::{Group, Node};
use crate::json;
use crate::record::{Record, raw_text_bytes};
use crate::safe::write_json_str;
use crate::source::ChannelPattern;
use crate::web::files::LogRoot;
use crate::web::params::{ApiError, DayRange, Params};
use crate::web::scan::{Budget, scan_file};
use crate::web::search::Problems;

/// The parameters `/api/request` takes.
pub(crate) const KNOWN: &[&str] = &["id", "from", "to"];

/// Most events of one id kept; the rest are counted (`truncated`).
const MAX_EVENTS: usize = 10_000;

/// A parsed request lookup.
#[derive(Debug)]
pub(crate) struct RequestQuery {
    pub id: String,
    pub range: DayRange,
}

impl RequestQuery {
    /// From the query parameters (`id` required); `latest` is the default day.
    pub fn from_params(
        params: &Params,
        latest: ziggy_proto::day::Day,
    ) -> Result<RequestQuery, ApiError> {
        Ok(RequestQuery {
            id: params
                .id()?
                .ok_or_else(|| ApiError::bad("give the id of the request: id=…"))?,
            range: params.days(latest)?,
        })
    }
}

/// Finds the events and returns the tree's JSON (docs/WEB.md).
pub(crate) fn request(
    root: &LogRoot,
    query: &RequestQuery,
    budget: &Budget,
) -> Result<Vec<u8>, ApiError> {
    let listed = root.files(&ChannelPattern::Any, query.range);
    let mut problems = Problems::default();
    for p in listed.problems {
        problems.push(p);
    }
    let mut events: Vec<(String, Record)> = Vec::new();
    let (mut more, mut spent) = (0usize, false);
    for file in &listed.files {
        let scanned = scan_file(root, file, 0, |at, bytes| {
            if budget.spent() {
                spent = true;
                return ControlFlow::Break(());
            }
            if raw_text_bytes(bytes, fields::ID.as_bytes()) != Some(query.id.as_bytes()) {
                return ControlFlow::Continue(());
            }
            if events.len() >= MAX_EVENTS {
                more += 1;
                return ControlFlow::Continue(());
            }
            match Record::decode(bytes) {
                Ok(rec) => events.push((format!("{}/{}/{at}", file.day, file.channel), rec)),
                Err(e) => problems.push(format!(
                    "{}: event at byte {at} skipped: {e}",
                    root.shown(&file.path)
                )),
            }
            ControlFlow::Continue(())
        });
        if let Err(problem) = scanned {
            problems.push(problem);
        }
        if spent {
            return Err(budget.error());
        }
    }
    // The group sorts by start; the place of each event in the files goes along with it.
    events.sort_by(|a, b| a.1.start.total_cmp(&b.1.start));
    let (places, records): (Vec<String>, Vec<Record>) = events.into_iter().unzip();
    let group = Group::new(query.id.clone(), records);
    let mut out = br#"{"id":"#.to_vec();
    write_json_str(&mut out, &query.id).map_err(internal)?;
    out.extend_from_slice(
        format!(
            r#","partial":{},"truncated":{more},"from":"{}","to":"{}","events":["#,
            group.partial && !group.events.is_empty(),
            query.range.first,
            query.range.last
        )
        .as_bytes(),
    );
    let mut written = 0;
    for node in group.tree() {
        write_node(&mut out, &group, &places, &node, 0, None, &mut written)?;
    }
    out.push(b']');
    problems.write_json(&mut out);
    out.push(b'}');
    Ok(out)
}

/// Writes a node and its children, depth first (the waterfall's order): each as `{"index",
/// "depth", "parent", "at", "event"}`, `index` counting in that order (`written` so far).
fn write_node(
    out: &mut Vec<u8>,
    group: &Group,
    places: &[String],
    node: &Node,
    depth: usize,
    parent: Option<usize>,
    written: &mut usize,
) -> Result<(), ApiError> {
    let index = *written;
    if index > 0 {
        out.push(b',');
    }
    *written += 1;
    let parent_text = parent.map_or("null".to_owned(), |p| p.to_string());
    out.extend_from_slice(
        format!(r#"{{"index":{index},"depth":{depth},"parent":{parent_text},"at":"#).as_bytes(),
    );
    write_json_str(out, &places[node.index]).map_err(internal)?;
    out.extend_from_slice(br#","event":"#);
    json::write_document(out, &group.events[node.index].doc, None)
        .map_err(|e| internal(json::reencoding(e)))?;
    out.push(b'}');
    for child in &node.children {
        write_node(out, group, places, child, depth + 1, Some(index), written)?;
    }
    Ok(())
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError::status(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("writing the answer: {e}"),
    )
}
