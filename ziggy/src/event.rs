//! The event document of docs/PROTOCOL.md §1, decoded.

use bson::{Bson, Document};
use serde::{Deserialize, Serialize};

/// Field names of an event document (`ziggy_proto::fields`).
pub use ziggy_proto::fields;

/// One event, as emitted by the runtime and written by `ziggyd`.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::set("response.status", 200);
/// });
/// let bytes = events[0].to_vec().unwrap();
/// let back = ziggy::Event::from_slice(&bytes).unwrap();
/// assert_eq!(back.get("response.status").and_then(|v| v.as_i32()), Some(200));
/// assert!(back.duration() >= 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event id (shared with the parent context).
    pub id: String,
    /// The channel, e.g. `request.sql` (BSON field `type`).
    #[serde(rename = "type")]
    pub channel: String,
    /// Host name of the emitting process.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Unix seconds when the context opened.
    pub start: f64,
    /// Unix seconds when it closed.
    pub end: f64,
    /// The rate that kept a sampled event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
    /// Everything set inside the context.
    pub body: Document,
}

impl Event {
    /// Decodes one BSON event.
    pub fn from_slice(bytes: &[u8]) -> Result<Event, bson::error::Error> {
        bson::deserialize_from_slice(bytes)
    }

    /// Encodes the event as BSON.
    pub fn to_vec(&self) -> Result<Vec<u8>, bson::error::Error> {
        bson::serialize_to_vec(self)
    }

    /// Seconds between `start` and `end`.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }

    /// The body value at a dotted key (`"response.status"`).
    pub fn get(&self, dotted_key: &str) -> Option<&Bson> {
        lookup(&self.body, dotted_key)
    }
}

/// The value at a dotted key in a document.
///
/// ```
/// let doc = bson::doc! { "a": { "b": 1 } };
/// assert_eq!(ziggy::event::lookup(&doc, "a.b").and_then(|v| v.as_i32()), Some(1));
/// assert!(ziggy::event::lookup(&doc, "a.c").is_none());
/// ```
pub fn lookup<'d>(doc: &'d Document, dotted_key: &str) -> Option<&'d Bson> {
    let mut segments = dotted_key.split('.');
    let mut value = doc.get(segments.next()?)?;
    for segment in segments {
        value = value.as_document()?.get(segment)?;
    }
    Some(value)
}
