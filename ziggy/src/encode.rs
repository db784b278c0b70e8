//! Encoding an event into BSON bytes, and the pool of buffers events are encoded into.
//!
//! The event is written by hand in docs/PROTOCOL.md §1 field order, the body by its own encoder
//! (`body::Body::encode`), without building a `Document`. The buffers come back from the sender thread
//! once sent, so in steady state an event costs no allocation on the application thread and no
//! free on the sender thread (glibc frees into the allocating thread's arena, which is slow).

use std::sync::LazyLock;
use ziggy_proto::fields;

use crossbeam_queue::ArrayQueue;

use crate::body::{Body, EncodeError};
use crate::element::{double, key, string, tag, utf8_string};
use crate::identity::Identity;

/// The header fields of an event.
pub(crate) struct EventHeader<'a> {
    /// UTF-8 (an [`crate::id::EventId`]'s bytes: generated ids are not re-validated per event).
    pub id: &'a [u8],
    pub channel: &'a str,
    pub start: f64,
    pub end: f64,
    pub sample_rate: Option<f64>,
}

/// Unix time now, in seconds with microsecond precision (docs/PROTOCOL.md §1), from the system
/// clock (contexts use `clock`'s cheaper derived time).
pub(crate) fn now_unix() -> f64 {
    crate::clock::seconds(crate::clock::system_micros())
}

/// Emptied buffers waiting for the next events.
static SPARE: LazyLock<ArrayQueue<Vec<u8>>> = LazyLock::new(|| ArrayQueue::new(SPARE_BUFFERS));
const SPARE_BUFFERS: usize = 4096;
/// Larger buffers (a rare big event) are freed rather than kept.
const SPARE_MAX_CAPACITY: usize = 4096;

/// An empty buffer to encode an event into: a recycled one if there is one.
fn buffer() -> Vec<u8> {
    // Room for a typical event (header ~110 bytes, a body of a few fields) without a regrowth.
    SPARE.pop().unwrap_or_else(|| Vec::with_capacity(512))
}

/// Gives a sent event's buffer back for reuse.
pub(crate) fn recycle(mut buffer: Vec<u8>) {
    if buffer.capacity() <= SPARE_MAX_CAPACITY {
        buffer.clear();
        let _ = SPARE.push(buffer);
    }
}

/// Encodes an event; fails only when the body cannot be encoded (a NUL in a serde map key).
pub(crate) fn event(
    header: &EventHeader<'_>,
    identity: &Identity,
    body: &Body,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = buffer();
    out.extend_from_slice(&[0; 4]);
    utf8_string(&mut out, fields::ID, header.id);
    string(&mut out, fields::TYPE, header.channel);
    out.extend_from_slice(&identity.elements);
    double(&mut out, fields::START, header.start);
    double(&mut out, fields::END, header.end);
    if let Some(rate) = header.sample_rate {
        double(&mut out, fields::SAMPLE_RATE, rate);
    }
    key(&mut out, tag::DOCUMENT, fields::BODY);
    if let Err(e) = body.encode(&mut out) {
        recycle(out);
        return Err(e);
    }
    out.push(0);
    if out.len() > MAX_EVENT_BYTES {
        // A daemon refuses it (and with it the frame's other events): say so in a small one.
        let size = out.len();
        recycle(out);
        return Err(EncodeError::new(format!(
            "the event is {size} bytes, over the {MAX_EVENT_BYTES} a daemon accepts"
        )));
    }
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// The largest event a daemon accepts (`ziggyd --max-event-bytes`' default, BSON's own limit).
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

/// Encodes an event of Ziggy's own (a drop report) with this process's identity and a new id.
pub(crate) fn own_event(channel: &str, start: f64, end: f64, body: &Body) -> Option<Vec<u8>> {
    let id = crate::id::new_id();
    let header = EventHeader {
        id: id.as_bytes(),
        channel,
        start,
        end,
        sample_rate: None,
    };
    event(&header, &crate::identity::current(), body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_in_protocol_order_and_body() {
        let identity = Identity::new("h", 7);
        let header = EventHeader {
            id: b"abc",
            channel: "request.sql",
            start: 1.5,
            end: 2.5,
            sample_rate: Some(0.25),
        };
        let mut body = Body::new();
        body.write("a.b", crate::body::Value::I32(1), crate::body::Op::Set);
        let bytes = event(&header, &identity, &body).unwrap();
        let doc = bson::Document::from_reader(&bytes[..]).unwrap();
        let keys: Vec<_> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "host",
                "pid",
                "start",
                "end",
                "sample_rate",
                "body"
            ]
        );
        assert_eq!(doc.get_i32("pid").unwrap(), 7);
        assert_eq!(
            doc,
            bson::doc! {
                "id": "abc", "type": "request.sql", "host": "h", "pid": 7, "start": 1.5, "end": 2.5,
                "sample_rate": 0.25, "body": { "a": { "b": 1 } },
            }
        );
    }
}
