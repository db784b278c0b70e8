//! Body filters: `response.status=500`, `request_time>0.5`, `path!=/health`.
//!
//! A filter is a dotted body key, an operator (`=`, `!=`, `<`, `<=`, `>`, `>=`) and a value. A
//! value that reads as a number compares numerically with numeric body values; `=` and `!=` also
//! compare text (and `true`/`false` with booleans); the ordering operators need a number. An
//! event without the key, or with a value of another kind, never matches (`!=` included).

use std::cmp::Ordering;

use bson::Bson;

use crate::record::{DecodeError, Record, number, raw_channel_bytes, raw_text_bytes, text};
use crate::source::ChannelPattern;
use crate::web::params::{ApiError, Params};

/// Longest filter key, in bytes.
const MAX_KEY_BYTES: usize = 256;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Whether `ordering` (body value against the filter's) satisfies the operator.
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Lt => ordering.is_lt(),
            Op::Le => ordering.is_le(),
            Op::Gt => ordering.is_gt(),
            Op::Ge => ordering.is_ge(),
        }
    }
}

/// One parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BodyFilter {
    key: String,
    op: Op,
    value: String,
    number: Option<f64>,
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad filter {text:?}: {reason}")]
pub(crate) struct FilterError {
    text: String,
    reason: &'static str,
}

impl BodyFilter {
    /// Parses `key OP value` (spaces around the operator allowed).
    pub fn parse(text: &str) -> Result<BodyFilter, FilterError> {
        let fail = |reason| FilterError {
            text: text.to_owned(),
            reason,
        };
        let at = text
            .find(['=', '!', '<', '>'])
            .ok_or_else(|| fail("expected KEY OP VALUE with OP one of = != < <= > >="))?;
        let (key, rest) = (text[..at].trim(), &text[at..]);
        let (op, value) = [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value.trim())))
        .ok_or_else(|| fail("`!` must be followed by `=`"))?;
        if key.is_empty() {
            return Err(fail("no body key before the operator"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(fail("the key is over 256 bytes"));
        }
        if key.split('.').any(str::is_empty) {
            return Err(fail(
                "the key has an empty segment (`a..b`, or a dot at an end)",
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(fail("the key holds a control character"));
        }
        if value.is_empty() {
            return Err(fail("no value after the operator"));
        }
        if value.starts_with(['=', '<', '>', '!']) {
            return Err(fail("two operators in a row"));
        }
        let number = value.parse::<f64>().ok().filter(|n| n.is_finite());
        if number.is_none() && !matches!(op, Op::Eq | Op::Ne) {
            return Err(fail(
                "<, <=, > and >= compare numbers: the value is not one",
            ));
        }
        Ok(BodyFilter {
            key: key.to_owned(),
            op,
            value: value.to_owned(),
            number,
        })
    }

    /// Whether the event passes.
    pub fn matches(&self, rec: &Record) -> bool {
        let Some(found) = rec.body_value(&self.key) else {
            return false;
        };
        if let (Some(have), Some(want)) = (number(Some(found)), self.number) {
            return have.partial_cmp(&want).is_some_and(|o| self.op.holds(o));
        }
        if !matches!(self.op, Op::Eq | Op::Ne) {
            return false;
        }
        let equal = match found {
            Bson::Boolean(b) => match self.value.as_str() {
                "true" => *b,
                "false" => !*b,
                _ => return false,
            },
            other => match text(Some(other)) {
                Some(s) => s == self.value,
                None => return false,
            },
        };
        equal == (self.op == Op::Eq)
    }
}

/// Which events a request wants: a channel pattern, an id, body filters.
#[derive(Debug, Clone)]
pub(crate) struct EventFilter {
    pub pattern: ChannelPattern,
    pub id: Option<String>,
    pub body: Vec<BodyFilter>,
}

/// Most body filters in one request.
const MAX_FILTERS: usize = 16;

/// The body filters of a request (`filter`, repeated).
pub(crate) fn body_filters(params: &Params) -> Result<Vec<BodyFilter>, ApiError> {
    let filters = params
        .all("filter")
        .filter(|f| !f.trim().is_empty())
        .map(|f| BodyFilter::parse(f).map_err(|e| ApiError::bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if filters.len() > MAX_FILTERS {
        return Err(ApiError::bad(format!(
            "{} filters; at most {MAX_FILTERS} are taken",
            filters.len()
        )));
    }
    Ok(filters)
}

impl EventFilter {
    /// From the `channel`, `id` and `filter` parameters.
    pub fn from_params(params: &Params) -> Result<EventFilter, ApiError> {
        Ok(EventFilter {
            pattern: params.pattern()?,
            id: params.id()?,
            body: body_filters(params)?,
        })
    }

    /// The checks made on the raw bytes (channel, id), before anything is decoded.
    #[inline]
    pub fn wants_raw(&self, bytes: &[u8]) -> bool {
        raw_channel_bytes(bytes).is_some_and(|c| self.pattern.matches_bytes(c))
            && self.id.as_ref().is_none_or(|id| {
                raw_text_bytes(bytes, ziggy_proto::fields::ID.as_bytes()) == Some(id.as_bytes())
            })
    }

    /// Whether the event passes every check, with the decoded event when the body filters
    /// needed it; or why it cannot be decoded.
    pub fn check(&self, bytes: &[u8]) -> Result<Verdict, DecodeError> {
        if !self.wants_raw(bytes) {
            return Ok(Verdict::No);
        }
        if self.body.is_empty() {
            return Ok(Verdict::Yes(None));
        }
        let rec = Record::decode(bytes)?;
        Ok(if self.body.iter().all(|f| f.matches(&rec)) {
            Verdict::Yes(Some(rec))
        } else {
            Verdict::No
        })
    }
}

/// What [`EventFilter::check`] found.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The event does not pass.
    No,
    /// It passes; the decoded event if it was decoded.
    Yes(Option<Record>),
}

impl Verdict {
    /// The decoded event of a passing one, decoding `bytes` if that was not done yet.
    pub fn record(rec: Option<Record>, bytes: &[u8]) -> Result<Record, DecodeError> {
        match rec {
            Some(rec) => Ok(rec),
            None => Record::decode(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(body: bson::Document) -> Record {
        let doc = bson::doc! { "id": "x", "type": "request", "body": body };
        Record::decode(&doc.to_vec().unwrap()).unwrap()
    }

    #[test]
    fn body_filters_come_from_the_repeated_parameter_and_are_capped() {
        let known = ["filter"];
        let p = Params::parse(Some("filter=a%3D1&filter=b%3E%3D2"), &known).unwrap();
        assert_eq!(body_filters(&p).unwrap().len(), 2);
        let many = vec!["filter=a%3D1"; MAX_FILTERS + 1].join("&");
        let p = Params::parse(Some(&many), &known).unwrap();
        assert!(body_filters(&p).is_err());
    }

    #[test]
    fn numbers_text_and_booleans() {
        let r = rec(bson::doc! {
            "response": { "status": 500 }, "request_time": 0.75, "path": "/x", "ok": false,
        });
        for (filter, expected) in [
            ("response.status=500", true),
            ("response.status = 500", true),
            ("response.status!=500", false),
            ("response.status>=500", true),
            ("response.status<500", false),
            ("request_time>0.5", true),
            ("request_time<=0.5", false),
            ("path=/x", true),
            ("path!=/y", true),
            ("ok=false", true),
            ("ok!=false", false),
            ("missing=1", false),
            ("missing!=1", false),
            ("path=1", false),
            ("response=1", false),
        ] {
            let f = BodyFilter::parse(filter).unwrap();
            assert_eq!(f.matches(&r), expected, "{filter}");
        }
    }

    #[test]
    fn malformed_filters_say_why() {
        for bad in [
            "status",
            "=500",
            "a..b=1",
            "a.=1",
            "status=",
            "status=>5",
            "status!5",
            "path>abc",
            "x>NaN",
            "x<inf",
        ] {
            assert!(BodyFilter::parse(bad).is_err(), "{bad}");
        }
        let e = BodyFilter::parse("path>abc").unwrap_err().to_string();
        assert!(e.contains("path>abc") && e.contains("numbers"), "{e}");
    }
}
