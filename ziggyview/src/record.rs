//! One event as the viewer sees it: lenient about the 2012 files, whose strings were BSON binary.

use bson::raw::RawBsonRef;
use bson::spec::BinarySubtype;
use bson::{Bson, Document, RawDocument};

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

/// The channel of raw event bytes, without decoding the rest (`None` if absent or not text).
pub fn raw_channel(bytes: &[u8]) -> Option<&str> {
    let doc = RawDocument::from_bytes(bytes).ok()?;
    match doc.get("type").ok()?? {
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

impl Record {
    /// Decodes event bytes.
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let doc = Document::from_reader(bytes).map_err(|e| format!("not a BSON document: {e}"))?;
        Ok(Record {
            id: text(doc.get("id")).unwrap_or_default(),
            channel: text(doc.get("type")).unwrap_or_default(),
            host: text(doc.get("host")).unwrap_or_default(),
            pid: number(doc.get("pid")).unwrap_or(0.0) as i64,
            start: number(doc.get("start")).unwrap_or(0.0),
            end: number(doc.get("end")).unwrap_or(0.0),
            doc,
        })
    }

    /// The body (empty if absent).
    pub fn body(&self) -> Document {
        self.doc.get_document("body").cloned().unwrap_or_default()
    }

    /// Keeps only the given dotted body keys.
    pub fn restrict_body(&mut self, fields: &[String]) {
        let body = self.body();
        let mut kept = Document::new();
        for field in fields {
            if let Some(value) = ziggy::event::lookup(&body, field) {
                insert_dotted(&mut kept, field, value.clone());
            }
        }
        self.doc.insert("body", kept);
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
