//! One event as the viewer sees it: lenient about the 2012 files, whose strings were BSON binary.

use bson::raw::RawBsonRef;
use bson::spec::BinarySubtype;
use bson::{Bson, Document, RawDocument};
use ziggy_proto::fields;

/// An event's header fields and body.
#[derive(Debug, Clone)]
pub struct Record {
    /// The whole document, as decoded.
    pub doc: Document,
    /// `id` (text).
    pub id: String,
    /// `type` (text).
    pub channel: String,
    /// `host` (text).
    pub host: String,
    /// `pid`.
    pub pid: i64,
    /// `start`, Unix seconds.
    pub start: f64,
    /// `end`, Unix seconds.
    pub end: f64,
}

/// The channel of raw event bytes, found by walking the top-level elements' headers only: no
/// allocation, no decoding of other values (this is the filter's hot path). `None` if absent, not
/// text, or the bytes are not well-formed enough to reach it.
pub fn raw_channel(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(raw_channel_bytes(bytes)?).ok()
}

/// The bytes of the channel (see [`raw_channel`]), not checked for UTF-8: a filter compares them
/// with an ASCII pattern, so the check would only cost time.
#[inline]
pub fn raw_channel_bytes(bytes: &[u8]) -> Option<&[u8]> {
    raw_text_bytes(bytes, fields::TYPE.as_bytes())
}

/// The bytes of the top-level text field `key` (a string, or a binary subtype 0 as the 2012
/// clients wrote), found as [`raw_channel`] finds the channel: headers only, first occurrence.
#[inline]
pub fn raw_text_bytes<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let le32 = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(v).ok()
    };
    let mut p = 4;
    while p < bytes.len() {
        let tag = bytes[p];
        if tag == 0 {
            return None;
        }
        let key_start = p + 1;
        let key_len = bytes.get(key_start..)?.iter().position(|&b| b == 0)?;
        let v = key_start + key_len + 1;
        if bytes[key_start..key_start + key_len] == *key {
            return match tag {
                0x02 => {
                    let len = le32(v)?;
                    bytes.get(v + 4..(v + 4 + len).checked_sub(1)?)
                }
                0x05 => {
                    let len = le32(v)?;
                    if *bytes.get(v + 4)? != 0 {
                        return None;
                    }
                    bytes.get(v + 5..v + 5 + len)
                }
                _ => None,
            };
        }
        let size = match tag {
            0x01 | 0x09 | 0x11 | 0x12 => 8,
            0x02 | 0x0D | 0x0E => 4 + le32(v)?,
            0x03 | 0x04 | 0x0F => le32(v)?,
            0x05 => 5 + le32(v)?,
            0x06 | 0x0A | 0x7F | 0xFF => 0,
            0x07 => 12,
            0x08 => 1,
            0x0B => {
                let first = bytes.get(v..)?.iter().position(|&b| b == 0)? + 1;
                first + bytes.get(v + first..)?.iter().position(|&b| b == 0)? + 1
            }
            0x0C => 4 + le32(v)? + 12,
            0x10 => 4,
            0x13 => 16,
            _ => return None,
        };
        p = v + size;
    }
    None
}

/// The same as [`raw_channel`], through the `bson` crate's raw reader (kept to check the fast
/// path against in tests).
pub fn raw_channel_checked(bytes: &[u8]) -> Option<&str> {
    let doc = RawDocument::from_bytes(bytes).ok()?;
    match doc.get(fields::TYPE).ok()?? {
        RawBsonRef::String(s) => Some(s),
        RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Generic => {
            std::str::from_utf8(b.bytes).ok()
        }
        _ => None,
    }
}

/// Text of a string, or of a binary subtype 0 holding UTF-8.
pub fn text(value: Option<&Bson>) -> Option<String> {
    match value? {
        Bson::String(s) => Some(s.clone()),
        Bson::Binary(b) if b.subtype == BinarySubtype::Generic => {
            String::from_utf8(b.bytes.clone()).ok()
        }
        _ => None,
    }
}

/// A number as f64.
pub fn number(value: Option<&Bson>) -> Option<f64> {
    match value? {
        Bson::Double(d) => Some(*d),
        Bson::Int32(i) => Some(*i as f64),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

/// Deepest nesting of documents and arrays accepted, the event itself being level 1 (the cap
/// BSON libraries use). Deeper events are refused before anything recurses into them, so a hostile
/// file cannot exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// Why event bytes could not be decoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    /// Documents or arrays nested deeper than 100 levels, the event being level 1.
    #[error("documents nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not well-formed BSON.
    #[error("not a BSON document: {0}")]
    Malformed(#[from] bson::error::Error),
}

/// `Err(TooDeep)` when a document or array at `depth` would exceed [`MAX_DEPTH`].
pub(crate) fn check_depth(depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        Err(DecodeError::TooDeep)
    } else {
        Ok(())
    }
}

/// One value as an owned [`Bson`], `depth` being the level of the document holding it. Never
/// recurses deeper than [`MAX_DEPTH`] (the `bson` crate's own conversion has no limit, so nested
/// values are converted here, the JavaScript scope included).
pub(crate) fn owned_value(value: RawBsonRef<'_>, depth: usize) -> Result<Bson, DecodeError> {
    Ok(match value {
        RawBsonRef::Document(d) => Bson::Document(first_values(d, depth + 1)?),
        RawBsonRef::Array(a) => {
            check_depth(depth + 1)?;
            Bson::Array(
                a.into_iter()
                    .map(|v| owned_value(v?, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        RawBsonRef::JavaScriptCodeWithScope(js) => {
            Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
                code: js.code.to_owned(),
                scope: first_values(js.scope, depth + 1)?,
            })
        }
        other => Bson::try_from(other)?,
    })
}

/// The owned document at level `depth`, where a key repeated in a document counts once with its
/// first value (as in the raw `--json` path and the channel filter; `Document::from_reader` would
/// keep the last).
fn first_values(raw: &RawDocument, depth: usize) -> Result<Document, DecodeError> {
    check_depth(depth)?;
    let mut doc = Document::new();
    for element in raw.iter() {
        let (key, value) = element?;
        if !doc.contains_key(key.as_str()) {
            doc.insert(key.as_str(), owned_value(value, depth)?);
        }
    }
    Ok(doc)
}

impl Record {
    /// Decodes event bytes (refusing nesting deeper than [`MAX_DEPTH`]).
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let raw = RawDocument::from_bytes(bytes)?;
        let doc = first_values(raw, 1)?;
        Ok(Record {
            id: text(doc.get(fields::ID)).unwrap_or_default(),
            channel: text(doc.get(fields::TYPE)).unwrap_or_default(),
            host: text(doc.get(fields::HOST)).unwrap_or_default(),
            pid: number(doc.get("pid")).unwrap_or(0.0) as i64,
            start: number(doc.get(fields::START)).unwrap_or(0.0),
            end: number(doc.get(fields::END)).unwrap_or(0.0),
            doc,
        })
    }

    /// The body (empty if absent).
    pub fn body(&self) -> Document {
        self.doc
            .get_document(fields::BODY)
            .cloned()
            .unwrap_or_default()
    }

    /// The body value at a dotted key (`response.status`), if there is one.
    pub fn body_value(&self, dotted_key: &str) -> Option<&Bson> {
        let mut segments = dotted_key.split('.');
        let body = self.doc.get_document(fields::BODY).ok()?;
        let mut value = body.get(segments.next()?)?;
        for segment in segments {
            value = value.as_document()?.get(segment)?;
        }
        Some(value)
    }

    /// Keeps only the given dotted body keys.
    pub fn restrict_body(&mut self, fields: &[String]) {
        let mut kept = Document::new();
        for field in fields {
            if let Some(value) = self.body_value(field) {
                insert_dotted(&mut kept, field, value.clone());
            }
        }
        self.doc.insert(fields::BODY, kept);
    }
}

/// Inserts at a dotted key, nesting documents (`response.status` → `{response: {status: …}}`).
fn insert_dotted(doc: &mut Document, key: &str, value: Bson) {
    match key.split_once('.') {
        None => {
            doc.insert(key, value);
        }
        Some((head, rest)) => {
            if !matches!(doc.get(head), Some(Bson::Document(_))) {
                doc.insert(head, Document::new());
            }
            if let Some(Bson::Document(inner)) = doc.get_mut(head) {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc};

    /// Event bytes whose body holds `levels` more documents nested in each other (the body itself
    /// is level 2), built by hand: the `bson` encoder recurses too.
    fn nested_event(levels: usize) -> Vec<u8> {
        let mut inner = vec![5, 0, 0, 0, 0];
        for _ in 0..levels {
            let len = (inner.len() + 8) as i32;
            let mut outer = len.to_le_bytes().to_vec();
            outer.extend_from_slice(b"\x03a\0");
            outer.extend_from_slice(&inner);
            outer.push(0);
            inner = outer;
        }
        let head = doc! { "id": "deep", "type": "request" }.to_vec().unwrap();
        let mut event = head[..head.len() - 1].to_vec();
        event.extend_from_slice(b"\x03body\0");
        event.extend_from_slice(&inner);
        event.push(0);
        let len = event.len() as i32;
        event[..4].copy_from_slice(&len.to_le_bytes());
        event
    }

    #[test]
    fn nesting_is_capped_without_recursing_into_it() {
        // Event (1) + body (2) + 98 more = 100 levels: shown; one more is refused.
        let ok = nested_event(MAX_DEPTH - 2);
        assert!(Record::decode(&ok).is_ok());
        assert!(crate::json::write_line(&mut Vec::new(), &ok).is_ok());
        for levels in [MAX_DEPTH - 1, 5_000] {
            let deep = nested_event(levels);
            assert!(matches!(
                Record::decode(&deep).unwrap_err(),
                DecodeError::TooDeep
            ));
            assert!(matches!(
                crate::json::write_line(&mut Vec::new(), &deep).unwrap_err(),
                DecodeError::TooDeep
            ));
        }
        // Arrays and JavaScript scopes go through the capped conversion unchanged.
        let d = doc! { "type": "x", "a": [[[1]]], "js": bson::JavaScriptCodeWithScope {
        code: "f".into(), scope: doc! { "s": { "t": 1 } } } };
        let rec = Record::decode(&d.to_vec().unwrap()).unwrap();
        assert_eq!(rec.doc, d);
    }

    #[test]
    fn fast_channel_agrees_with_the_bson_crate() {
        let docs = [
            doc! { "id": "x", "type": "request.sql", "body": {} },
            doc! { "a": 1.5, "b": [1, 2], "c": { "d": null }, "e": true, "f": 5i64, "type": "job" },
            doc! { "type": Binary { subtype: BinarySubtype::Generic, bytes: b"old".to_vec() } },
            doc! { "type": 5 },
            doc! { "id": "no type here" },
        ];
        for d in docs {
            let bytes = d.to_vec().unwrap();
            assert_eq!(raw_channel(&bytes), raw_channel_checked(&bytes), "{d}");
            for cut in 0..bytes.len() {
                let _ = raw_channel(&bytes[..cut]); // never panics on truncated input
            }
        }
    }
}
