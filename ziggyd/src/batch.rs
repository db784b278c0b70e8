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

/// Where one valid event sits in its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpan {
    /// Its channel.
    pub channel: String,
    /// The UTC day of its start (which file it goes to).
    pub day: Day,
    /// Its bytes in the frame.
    pub range: Range<usize>,
}

impl EventSpan {
    /// Where the valid event `meta` sits in `container` (the frame it arrived in).
    pub fn locate(meta: &EventMeta<'_>, container: &[u8]) -> EventSpan {
        let start = meta.bytes.as_ptr() as usize - container.as_ptr() as usize;
        EventSpan {
            channel: meta.channel.to_owned(),
            day: Day::from_unix(meta.start),
            range: start..start + meta.bytes.len(),
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
    /// Each event of the batch, in order.
    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> {
        self.events.iter().map(|e| EventRef {
            channel: &e.channel,
            day: e.day,
            bytes: &self.frame[e.range.clone()],
        })
    }
}
