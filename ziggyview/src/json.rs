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

/// One event as a JSON object: header fields first in SPEC order, then any other field, body last.
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
