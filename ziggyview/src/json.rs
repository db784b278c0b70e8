//! BSON → JSON the way `jq` users expect: doubles and integers as numbers, dates as ISO-8601,
//! binary as base64 (binary subtype 0 holding UTF-8, as the 2012 clients wrote strings, as text),
//! object ids as hex; keys in document order, a repeated key once with its first value.
//!
//! Written straight from BSON bytes into a line buffer (no `Document`, no `serde_json::Value`:
//! this is the hot path of `--json`), terminal-safe (see [`crate::safe`]). Writing into a `Vec`
//! cannot fail, so the only errors are the event's own.

use std::io::Write as _;
use ziggy_proto::fields;

use base64::Engine;
use bson::raw::{RawBson, RawBsonRef, RawDocument};
use bson::spec::BinarySubtype;
use bson::{Bson, Document};

use crate::record::{DecodeError, check_depth, owned_value};
use crate::safe::write_json_str;

/// Header fields, first and in docs/PROTOCOL.md §1 order; then any other field; `body` last.
const ORDER: [&str; 7] = ziggy_proto::fields::HEADER;

/// A field added to an event object (a group's `children`). It takes the place of the event's
/// own field of that name, else comes last; its key is neither a header field nor `body`.
pub(crate) struct Extra<'a> {
    /// The key.
    pub key: &'a str,
    /// Writes the value.
    pub value: &'a mut dyn FnMut(&mut Vec<u8>) -> Result<(), DecodeError>,
}

/// Writes one event, its BSON bytes, as a JSON object. Refuses nesting deeper than
/// [`MAX_DEPTH`](crate::record::MAX_DEPTH); on an error, part of the object may have been written.
pub(crate) fn write_event(
    out: &mut Vec<u8>,
    bytes: &[u8],
    mut extra: Option<Extra<'_>>,
) -> Result<(), DecodeError> {
    let doc = RawDocument::from_bytes(bytes)?;
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, key: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        text(out, key);
        out.push(b':');
    };
    for name in ORDER {
        if let Some(v) = doc.get(name)? {
            key(out, name);
            write_value(out, v, 1)?;
        }
    }
    let mut body = None;
    let mut seen: Vec<&str> = Vec::new();
    for element in doc.iter() {
        let (name, value) = element?;
        let name = name.as_str();
        if name == fields::BODY {
            body = body.or(Some(value));
        } else if !ORDER.contains(&name) && !seen.contains(&name) {
            seen.push(name);
            key(out, name);
            match extra.take_if(|e| e.key == name) {
                Some(e) => (e.value)(out)?,
                None => write_value(out, value, 1)?,
            }
        }
    }
    if let Some(body) = body {
        key(out, fields::BODY);
        write_value(out, body, 1)?;
    }
    if let Some(e) = extra {
        key(out, e.key);
        (e.value)(out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Writes one event as a line of `--json` output (see [`write_event`]).
pub(crate) fn write_line(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), DecodeError> {
    write_event(out, bytes, None)?;
    out.push(b'\n');
    Ok(())
}

/// Writes a decoded event (see [`write_event`]).
pub(crate) fn write_document(
    out: &mut Vec<u8>,
    doc: &Document,
    extra: Option<Extra<'_>>,
) -> Result<(), DecodeError> {
    write_event(out, &doc.to_vec()?, extra)
}

/// A decoded value as JSON text, `depth` being the level of the document holding it.
pub(crate) fn value_text(value: &Bson, depth: usize) -> Result<String, DecodeError> {
    let raw = RawBson::try_from(value.clone())?;
    let mut out = Vec::new();
    write_value(&mut out, raw.as_raw_bson_ref(), depth)?;
    // Only whole strings and ASCII were written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The error of writing a decoded event, which cannot happen: its keys come from BSON and its
/// depth is capped, so it encodes and writes again.
pub(crate) fn reencoding(e: DecodeError) -> std::io::Error {
    std::io::Error::other(format!("re-encoding a decoded event: {e}"))
}

/// Writes `s` as a JSON string.
fn text(out: &mut Vec<u8>, s: &str) {
    // A Vec never fails.
    let _ = write_json_str(out, s);
}

/// Writes `value`, held by a document at level `depth`.
fn write_value(out: &mut Vec<u8>, value: RawBsonRef<'_>, depth: usize) -> Result<(), DecodeError> {
    match value {
        RawBsonRef::Double(d) => double(out, d),
        RawBsonRef::String(s) => text(out, s),
        // A Vec never fails.
        RawBsonRef::Int32(i) => _ = write!(out, "{i}"),
        RawBsonRef::Int64(i) => _ = write!(out, "{i}"),
        RawBsonRef::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        RawBsonRef::Null | RawBsonRef::Undefined => out.extend_from_slice(b"null"),
        RawBsonRef::Document(d) => {
            check_depth(depth + 1)?;
            out.push(b'{');
            let mut seen: Vec<&str> = Vec::new();
            for element in d.iter() {
                let (k, v) = element?;
                if seen.contains(&k.as_str()) {
                    continue; // first value wins
                }
                if !seen.is_empty() {
                    out.push(b',');
                }
                seen.push(k.as_str());
                text(out, k.as_str());
                out.push(b':');
                write_value(out, v, depth + 1)?;
            }
            out.push(b'}');
        }
        RawBsonRef::Array(a) => {
            check_depth(depth + 1)?;
            out.push(b'[');
            for (i, v) in a.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v?, depth + 1)?;
            }
            out.push(b']');
        }
        // Rare types: converted with the depth cap (a JavaScript scope is a document), so the
        // `bson` crate's normalisation (regex options in order) applies.
        other => match owned_value(other, depth)? {
            Bson::Binary(b) => match (b.subtype, std::str::from_utf8(&b.bytes)) {
                (BinarySubtype::Generic, Ok(s)) => text(out, s),
                _ => text(
                    out,
                    &base64::engine::general_purpose::STANDARD.encode(&b.bytes),
                ),
            },
            Bson::DateTime(dt) => match dt.try_to_rfc3339_string() {
                Ok(s) => text(out, &s),
                Err(_) => text(out, &dt.timestamp_millis().to_string()),
            },
            Bson::ObjectId(oid) => text(out, &oid.to_hex()),
            Bson::Timestamp(ts) => _ = write!(out, r#"{{"t":{},"i":{}}}"#, ts.time, ts.increment),
            Bson::RegularExpression(re) => text(out, &format!("/{}/{}", re.pattern, re.options)),
            Bson::Decimal128(d) => text(out, &d.to_string()),
            other => text(out, &other.to_string()),
        },
    }
    Ok(())
}

/// A finite double as a JSON number (shortest round-trip form); NaN and infinities as text.
fn double(out: &mut Vec<u8>, d: f64) {
    match serde_json::Number::from_f64(d) {
        Some(n) => _ = write!(out, "{n}"),
        None => text(out, &d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc};

    fn line(d: &Document) -> String {
        let mut out = Vec::new();
        write_document(&mut out, d, None).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn jq_friendly_types() {
        let d = doc! {
            "type": "request", "id": "x", "n": 1, "f": 0.5, "big": 1i64 << 40,
            "when": bson::DateTime::from_millis(0),
            "old": Binary { subtype: BinarySubtype::Generic, bytes: b"text".to_vec() },
            "raw": Binary { subtype: BinarySubtype::Generic, bytes: vec![0xff, 0x00] },
            "body": { "a": [1, "b"] },
        };
        assert_eq!(
            line(&d),
            r#"{"id":"x","type":"request","n":1,"f":0.5,"big":1099511627776,"when":"1970-01-01T00:00:00Z","old":"text","raw":"/wA=","body":{"a":[1,"b"]}}"#
        );
    }

    #[test]
    fn repeated_keys_count_once_with_their_first_value_on_both_paths() {
        // Found by `cargo fuzz run viewer`: raw bytes and the decoded event printed different
        // values.
        let d = doc! { "id": "x", "type": "request", "host": "h", "body": { "a": 1, "b": 2 } };
        let mut bytes = d.to_vec().unwrap();
        for (from, to) in [(&b"host\0"[..], &b"type\0"[..]), (b"b\0", b"a\0")] {
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            bytes[at..at + to.len()].copy_from_slice(to);
        }
        let mut raw = Vec::new();
        write_line(&mut raw, &bytes).unwrap();
        let record = crate::record::Record::decode(&bytes).unwrap();
        let expected = format!("{}\n", line(&record.doc));
        assert_eq!(String::from_utf8(raw).unwrap(), expected);
        assert_eq!(
            expected,
            "{\"id\":\"x\",\"type\":\"request\",\"body\":{\"a\":1}}\n"
        );
    }

    #[test]
    fn lines_have_header_fields_first_and_special_doubles_as_text() {
        let docs = [
            doc! { "type": "request", "id": "x", "n": 1, "f": 0.5, "big": 1i64 << 40, "nan": f64::NAN,
            "when": bson::DateTime::from_millis(0),
            "old": Binary { subtype: BinarySubtype::Generic, bytes: b"text".to_vec() },
            "body": { "a": [1, "b", { "c": null }], "s": "quote\"d\n" } },
            doc! { "id": "y", "type": "job", "host": "h", "pid": 3, "start": 1709164801.0, "end": 1709164801.0125,
            "sample_rate": 0.25, "body": {} },
        ];
        let expected = [
            "{\"id\":\"x\",\"type\":\"request\",\"n\":1,\"f\":0.5,\"big\":1099511627776,\"nan\":\"NaN\",\"when\":\"1970-01-01T00:00:00Z\",\"old\":\"text\",\"body\":{\"a\":[1,\"b\",{\"c\":null}],\"s\":\"quote\\\"d\\n\"}}\n",
            "{\"id\":\"y\",\"type\":\"job\",\"host\":\"h\",\"pid\":3,\"start\":1709164801.0,\"end\":1709164801.0125,\"sample_rate\":0.25,\"body\":{}}\n",
        ];
        for (d, expected) in docs.iter().zip(expected) {
            let mut raw = Vec::new();
            write_line(&mut raw, &d.to_vec().unwrap()).unwrap();
            assert_eq!(String::from_utf8(raw).unwrap(), expected);
        }
    }

    #[test]
    fn an_extra_field_replaces_the_events_own_or_comes_last() {
        let mut children = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"[]");
            Ok(())
        };
        let mut out = Vec::new();
        let d = doc! { "id": "x", "children": 1, "z": 2, "body": {} };
        let extra = Extra {
            key: "children",
            value: &mut children,
        };
        write_document(&mut out, &d, Some(extra)).unwrap();
        assert_eq!(out, br#"{"id":"x","children":[],"z":2,"body":{}}"#);
        out.clear();
        let d = doc! { "id": "x", "body": {} };
        let extra = Extra {
            key: "children",
            value: &mut children,
        };
        write_document(&mut out, &d, Some(extra)).unwrap();
        assert_eq!(out, br#"{"id":"x","body":{},"children":[]}"#);
    }
}
