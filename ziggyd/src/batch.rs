//! What the collector hands to the sinks (file writer, forwarder): one received frame and where
//! its valid events are in it, and what the file writer reports back about forwarded batches.

use std::ops::Range;

use ziggy_proto::day::Day;

/// The valid events of one frame, by reference into the frame's bytes.
#[derive(Debug)]
pub struct Batch {
    /// The frame as received.
    pub frame: Vec<u8>,
    /// `(channel, UTC day of start, byte range in frame)` per valid event, in order.
    pub events: Vec<(String, Day, Range<usize>)>,
    /// For a batch forwarded by another daemon: the confirmation to send once it is durable.
    pub durable: Option<ForwardMark>,
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

/// The file writer's verdict on one forwarded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The batch.
    pub mark: ForwardMark,
    /// `Ok` when every event of it is written and fsynced; otherwise which path failed and why.
    pub result: Result<(), String>,
}

impl Batch {
    /// The bytes of each event with its channel and day number.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Day, &[u8])> {
        self.events
            .iter()
            .map(|(c, d, r)| (c.as_str(), *d, &self.frame[r.clone()]))
    }
}

/// Where a valid event sits in `container` (the frame it arrived in), with its channel and day.
pub(crate) fn locate(
    meta: &crate::validate::EventMeta<'_>,
    container: &[u8],
) -> (String, Day, Range<usize>) {
    let start = meta.bytes.as_ptr() as usize - container.as_ptr() as usize;
    (
        meta.channel.to_owned(),
        Day::from_unix(meta.start),
        start..start + meta.bytes.len(),
    )
}
