//! BSON → JSON the way `jq` users expect: doubles and integers as numbers, dates as ISO-8601,
//! binary as base64 (binary subtype 0 holding UTF-8, as the 2012 clients wrote strings, as text),
//! object ids as hex; keys in document order.

use base64::Engine;
use bson::Bson;
use bson::spec::BinarySubtype;
use serde_json::{Map, Number, Value};

/// Converts one BSON value.
pub fn to_json(value: &Bson) -> Value {
    match value {
        Bson::Double(d) => Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Document(doc) => Value::Object(
            doc.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Bson::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Int32(i) => Value::Number((*i).into()),
        Bson::Int64(i) => Value::Number((*i).into()),
        Bson::Binary(b) => match (b.subtype, std::str::from_utf8(&b.bytes)) {
            (BinarySubtype::Generic, Ok(text)) => Value::String(text.to_owned()),
            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(&b.bytes)),
        },
        Bson::DateTime(dt) => Value::String(
            dt.try_to_rfc3339_string()
                .unwrap_or_else(|_| dt.timestamp_millis().to_string()),
        ),
        Bson::ObjectId(oid) => Value::String(oid.to_hex()),
        Bson::Timestamp(ts) => serde_json::json!({ "t": ts.time, "i": ts.increment }),
        Bson::RegularExpression(re) => Value::String(format!("/{}/{}", re.pattern, re.options)),
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other => Value::String(other.to_string()),
    }
}

/// One event as a JSON object: header fields first in docs/PROTOCOL.md §1 order, then any other field, body last.
pub fn event_json(doc: &bson::Document) -> Map<String, Value> {
    const ORDER: [&str; 7] = ["id", "type", "host", "pid", "start", "end", "sample_rate"];
    let mut out = Map::new();
    for key in ORDER {
        if let Some(v) = doc.get(key) {
            out.insert(key.to_owned(), to_json(v));
        }
    }
    for (k, v) in doc {
        if !ORDER.contains(&k.as_str()) && k != "body" {
            out.insert(k.clone(), to_json(v));
        }
    }
    if let Some(body) = doc.get("body") {
        out.insert("body".into(), to_json(body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc};

    #[test]
    fn jq_friendly_types() {
        let d = doc! {
            "type": "request", "id": "x", "n": 1, "f": 0.5, "big": 1i64 << 40,
            "when": bson::DateTime::from_millis(0),
            "old": Binary { subtype: BinarySubtype::Generic, bytes: b"text".to_vec() },
            "raw": Binary { subtype: BinarySubtype::Generic, bytes: vec![0xff, 0x00] },
            "body": { "a": [1, "b"] },
        };
        let json = Value::Object(event_json(&d)).to_string();
        assert_eq!(
            json,
            r#"{"id":"x","type":"request","n":1,"f":0.5,"big":1099511627776,"when":"1970-01-01T00:00:00Z","old":"text","raw":"/wA=","body":{"a":[1,"b"]}}"#
        );
    }
}

/// Writes one event as a JSON line straight from its bytes (no `Document`, no `Value`): the same
/// text as [`event_json`], for the plain `--json` path. Refuses nesting deeper than
/// [`MAX_DEPTH`](crate::record::MAX_DEPTH); on an error, part of the line may have been written.
pub fn write_raw_event(out: &mut impl std::io::Write, bytes: &[u8]) -> Result<(), DecodeError> {
    const ORDER: [&str; 7] = ["id", "type", "host", "pid", "start", "end", "sample_rate"];
    let doc = bson::RawDocument::from_bytes(bytes)?;
    out.write_all(b"{").map_err(io)?;
    let mut first = true;
    let mut field = |out: &mut dyn std::io::Write,
                     key: &str,
                     value: RawBsonRef<'_>|
     -> Result<(), DecodeError> {
        if !std::mem::take(&mut first) {
            out.write_all(b",").map_err(io)?;
        }
        write_json_str(out, key).map_err(io)?;
        out.write_all(b":").map_err(io)?;
        write_raw_value(out, value, 1)
    };
    for key in ORDER {
        if let Some(v) = doc.get(key)? {
            field(out, key, v)?;
        }
    }
    let mut body = None;
    // A key repeated in a document counts once, with its first value (as everywhere in ziggy).
    let mut seen: Vec<&str> = Vec::new();
    for element in doc.iter() {
        let (key, value) = element?;
        let key = key.as_str();
        if key == "body" {
            body = body.or(Some(value));
        } else if !ORDER.contains(&key) && !seen.contains(&key) {
            seen.push(key);
            field(out, key, value)?;
        }
    }
    if let Some(body) = body {
        field(out, "body", body)?;
    }
    out.write_all(b"}\n").map_err(io)
}

fn io(e: std::io::Error) -> DecodeError {
    DecodeError::Malformed(e.to_string())
}

fn ser(e: serde_json::Error) -> DecodeError {
    DecodeError::Malformed(e.to_string())
}

/// Writes `value`, held by a document at level `depth`.
fn write_raw_value(
    out: &mut dyn std::io::Write,
    value: RawBsonRef<'_>,
    depth: usize,
) -> Result<(), DecodeError> {
    let js = |out: &mut dyn std::io::Write, v: &dyn erased::Ser| v.write(out).map_err(ser);
    match value {
        RawBsonRef::Double(d) if d.is_finite() => js(out, &d),
        RawBsonRef::String(s) => write_json_str(out, s).map_err(io),
        RawBsonRef::Int32(i) => js(out, &i),
        RawBsonRef::Int64(i) => js(out, &i),
        RawBsonRef::Boolean(b) => js(out, &b),
        RawBsonRef::Null | RawBsonRef::Undefined => out.write_all(b"null").map_err(io),
        RawBsonRef::Document(d) => {
            check_depth(depth + 1)?;
            out.write_all(b"{").map_err(io)?;
            let mut seen: Vec<&str> = Vec::new();
            for element in d.iter() {
                let (k, v) = element?;
                if seen.contains(&k.as_str()) {
                    continue; // first value wins
                }
                if !seen.is_empty() {
                    out.write_all(b",").map_err(io)?;
                }
                seen.push(k.as_str());
                write_json_str(out, k.as_str()).map_err(io)?;
                out.write_all(b":").map_err(io)?;
                write_raw_value(out, v, depth + 1)?;
            }
            out.write_all(b"}").map_err(io)
        }
        RawBsonRef::Array(a) => {
            check_depth(depth + 1)?;
            out.write_all(b"[").map_err(io)?;
            for (i, v) in a.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",").map_err(io)?;
                }
                write_raw_value(out, v?, depth + 1)?;
            }
            out.write_all(b"]").map_err(io)
        }
        other => {
            // Rare types: through the owned path, so the mapping stays in one place (`to_json`),
            // with the depth cap (a JavaScript scope is a document).
            let owned = owned_value(other, depth)?;
            write_json(&mut *out, &to_json(&owned)).map_err(ser)
        }
    }
}

use crate::record::{DecodeError, check_depth, owned_value};
use crate::safe::{write_json, write_json_str};
use bson::raw::RawBsonRef;

mod erased {
    /// Serialises a value as JSON into a `dyn Write` (serde_json needs a sized writer), with the
    /// terminal-safe formatter.
    pub trait Ser {
        fn write(&self, out: &mut dyn std::io::Write) -> serde_json::Result<()>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn write(&self, out: &mut dyn std::io::Write) -> serde_json::Result<()> {
            crate::safe::write_json(out, self)
        }
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;
    use bson::{Binary, doc};

    #[test]
    fn repeated_keys_count_once_with_their_first_value_on_both_paths() {
        // Found by `cargo fuzz run viewer`: the two readers printed different values.
        let d = doc! { "id": "x", "type": "request", "host": "h", "body": { "a": 1, "b": 2 } };
        let mut bytes = d.to_vec().unwrap();
        for (from, to) in [(&b"host\0"[..], &b"type\0"[..]), (b"b\0", b"a\0")] {
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            bytes[at..at + to.len()].copy_from_slice(to);
        }
        let mut raw = Vec::new();
        write_raw_event(&mut raw, &bytes).unwrap();
        let record = crate::record::Record::decode(&bytes).unwrap();
        let expected = format!("{}\n", Value::Object(event_json(&record.doc)));
        assert_eq!(String::from_utf8(raw).unwrap(), expected);
        assert_eq!(
            expected,
            "{\"id\":\"x\",\"type\":\"request\",\"body\":{\"a\":1}}\n"
        );
    }

    #[test]
    fn raw_writer_matches_the_document_path() {
        let docs = [
            doc! { "type": "request", "id": "x", "n": 1, "f": 0.5, "big": 1i64 << 40, "nan": f64::NAN,
            "when": bson::DateTime::from_millis(0),
            "old": Binary { subtype: BinarySubtype::Generic, bytes: b"text".to_vec() },
            "body": { "a": [1, "b", { "c": null }], "s": "quote\"d\n" } },
            doc! { "id": "y", "type": "job", "host": "h", "pid": 3, "start": 1709164801.0, "end": 1709164801.0125,
            "sample_rate": 0.25, "body": {} },
        ];
        for d in docs {
            let mut raw = Vec::new();
            write_raw_event(&mut raw, &d.to_vec().unwrap()).unwrap();
            let expected = format!("{}\n", Value::Object(event_json(&d)));
            assert_eq!(String::from_utf8(raw).unwrap(), expected);
        }
    }
}
