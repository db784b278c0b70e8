//! What the collector hands to the sinks (file writer, forwarder): one received frame and where
//! its valid events are in it, and the mark a forwarded batch carries until it is confirmed.

use std::ops::Range;

use ziggy_proto::day::Day;

use crate::validate::EventMeta;

/// The valid events of one frame, by reference into the frame's bytes.
#[derive(Debug)]
pub struct Batch {
    /// The frame as received.
    pub frame: Vec<u8>,
    /// Where each valid event is in the frame, in order.
    pub events: Vec<EventSpan>,
    /// For a batch forwarded by another daemon: the confirmation to send once it is durable.
    pub durable: Option<ForwardMark>,
}

/// Where one valid event sits in its frame. Made only from what the validator accepted, so its
/// channel's bytes are a valid name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpan {
    /// Its channel's bytes in the frame (not a copy: no allocation per event).
    channel: Range<usize>,
    /// The UTC day of its start (which file it goes to).
    pub day: Day,
    /// Its bytes in the frame.
    pub range: Range<usize>,
}

impl EventSpan {
    /// Where the valid event `meta` sits in `container` (the frame it arrived in).
    pub fn locate(meta: &EventMeta<'_>, container: &[u8]) -> EventSpan {
        let at = meta.bytes.as_ptr() as usize - container.as_ptr() as usize;
        EventSpan::copied_to(meta, at)
    }

    /// Where the valid event `meta` sits once its bytes are copied to offset `at` of a frame.
    pub fn copied_to(meta: &EventMeta<'_>, at: usize) -> EventSpan {
        let channel = at + (meta.channel.as_ptr() as usize - meta.bytes.as_ptr() as usize);
        EventSpan {
            channel: channel..channel + meta.channel.len(),
            day: Day::from_unix(meta.start),
            range: at..at + meta.bytes.len(),
        }
    }
}

/// One event of a batch: its channel, its day and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Its channel.
    pub channel: &'a str,
    /// The UTC day of its start.
    pub day: Day,
    /// Its bytes, exactly as received.
    pub bytes: &'a [u8],
}

/// A forwarding daemon's batch, confirmed once its events are on disk (fsynced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardMark {
    /// The ZeroMQ routing identity of the sending connection.
    pub identity: Vec<u8>,
    /// The sender's spool identity.
    pub sender: String,
    /// Lowest sequence number of the new events in the batch.
    pub first_seq: u64,
    /// Highest sequence number the batch covers.
    pub last_seq: u64,
}

impl Batch {
    /// Each event's bytes, in order (without reading its channel).
    pub fn bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.events.iter().map(|e| &self.frame[e.range.clone()])
    }

    /// Each event of the batch, in order.
    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> {
        self.events.iter().map(|e| EventRef {
            channel: std::str::from_utf8(&self.frame[e.channel.clone()])
                .expect("a span's channel is the validator's string"),
            day: e.day,
            bytes: &self.frame[e.range.clone()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc, spec::BinarySubtype};

    #[test]
    fn spans_give_back_each_events_channel_day_and_bytes_where_ever_the_bytes_are() {
        let plain = doc! { "id": "i", "type": "request", "host": "h", "pid": 1,
        "start": 1.7e9, "end": 1.7e9, "body": {} };
        // A 2012 client's strings are binaries: the channel sits elsewhere in the bytes.
        let old = doc! { "id": "i", "type": Binary { subtype: BinarySubtype::Generic,
        bytes: b"request.sql".to_vec() }, "host": "h", "pid": 1, "start": 86400.0,
        "end": 86400.0, "body": {} };
        let frame = [plain.to_vec().unwrap(), old.to_vec().unwrap()].concat();
        let metas: Vec<EventMeta<'_>> =
            crate::validate::split_frame(&frame, crate::validate::Limits::default())
                .into_iter()
                .map(Result::unwrap)
                .collect();
        let located = Batch {
            events: metas.iter().map(|m| EventSpan::locate(m, &frame)).collect(),
            frame: frame.clone(),
            durable: None,
        };
        // The second event alone, copied to offset 3 of another frame.
        let mut other = b"xyz".to_vec();
        other.extend_from_slice(metas[1].bytes);
        let copied = Batch {
            events: vec![EventSpan::copied_to(&metas[1], 3)],
            frame: other,
            durable: None,
        };
        let seen: Vec<(&str, Day, &[u8])> = located
            .iter()
            .chain(copied.iter())
            .map(|e| (e.channel, e.day, e.bytes))
            .collect();
        assert_eq!(
            seen,
            [
                ("request", Day::from_unix(1.7e9), metas[0].bytes),
                ("request.sql", Day::from_unix(86400.0), metas[1].bytes),
                ("request.sql", Day::from_unix(86400.0), metas[1].bytes),
            ]
        );
    }
}
