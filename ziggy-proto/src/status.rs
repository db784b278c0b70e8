//! The STATUS reply of the control protocol as a type, for the daemon that builds it and every
//! client that reads it (docs/PROTOCOL.md §3.3).
//!
//! The wire form is the BSON document serde makes of [`Status`]: counters as int64, times as
//! doubles, `last_event`/`lag` null before the first event, `forward` absent unless the daemon
//! forwards. A client reads any daemon's reply: missing fields read as zero and fields it does not
//! know are ignored, so daemons and clients of different versions still understand each other.

use std::collections::BTreeMap;

use bson::Document;
use serde::{Deserialize, Serialize};

/// Everything a daemon reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Status {
    /// Seconds since the daemon started.
    pub uptime: f64,
    /// Valid events received.
    pub events_in: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Events written to log files (whole events only).
    pub events_written: u64,
    /// Failed attempts to open, write or fsync a log file (each retry counts again).
    pub write_errors: u64,
    /// Log files open now.
    pub files_open: u64,
    /// Partial events (left by a crash during a write) cut off the end of a file before appending.
    pub torn_tails_cut: u64,
    /// Events of applications waiting in memory because their file cannot be written now.
    pub events_held: u64,
    /// Log files found damaged before appending (not a partial event at the end) and moved aside
    /// untouched.
    pub damaged_files: u64,
    /// Events of applications that could not be written and were given up (more than the held
    /// bound waiting, or still unwritten at shutdown).
    pub events_lost_write: u64,
    /// Invalid events, all reasons together.
    pub invalid_total: u64,
    /// Invalid events per reason (every reason the daemon knows, zeros included).
    pub invalid: BTreeMap<String, u64>,
    /// Valid events per channel; past a bound, the rest are summed under `(other)`.
    pub channels: BTreeMap<String, u64>,
    /// Valid events per sending host; bounded as `channels`.
    pub hosts: BTreeMap<String, u64>,
    /// Connections of the collect socket.
    pub collect_in: Connections,
    /// How many log files cannot be written now.
    pub write_failing_paths: u64,
    /// Some of those files (at most 20), each with the reason.
    pub write_failing: BTreeMap<String, String>,
    /// The forwarding side, present when the daemon forwards (`--publish`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardStatus>,
    /// The receiving side of forwarding (batches from other daemons).
    pub forward_in: ForwardInStatus,
    /// The NATS JetStream link, present on a daemon that publishes to or consumes from a stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamStatus>,
    /// The latest `end` of any event received (seconds since the epoch), null before the first.
    pub last_event: Option<f64>,
    /// Now minus `last_event`, in seconds, null before the first event.
    pub lag: Option<f64>,
    /// The collect endpoint the daemon is bound to.
    pub collect: String,
    /// The stream (live PUB) endpoint.
    pub stream: String,
}

/// Connections of a socket that accepts peers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Connections {
    /// Connections open now.
    pub connections: u64,
    /// Connections that ended, for any reason.
    pub disconnects: u64,
    /// Connections the daemon ended while the peer was still connected, not in a handshake:
    /// ZeroMQ does that to a connection carrying a frame over the socket's size cap (or, from a
    /// broken peer, a protocol error). Best effort.
    pub cut_oversized: u64,
}

/// The forwarding side of a daemon started with `--publish`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ForwardStatus {
    /// Whether an upstream forward endpoint is connected.
    pub connected: bool,
    /// Events in the spool not yet confirmed.
    pub spool_events: u64,
    /// Sequence number of the last event fsynced into the spool (counts every event ever spooled
    /// by this spool directory).
    pub spooled_seq: u64,
    /// Bytes of the spool on disk.
    pub spool_bytes: u64,
    /// Age in seconds of the oldest unconfirmed event (0 when none).
    pub oldest_unconfirmed_age: f64,
    /// Events sent upstream for the first time.
    pub forwarded: u64,
    /// Events the upstream confirmed.
    pub confirmed: u64,
    /// Events sent again after a timeout or reconnect.
    pub resent: u64,
    /// Events dropped because the spool was full.
    pub dropped: u64,
    /// Damaged places cut out of the spool at start.
    pub spool_corrupt: u64,
    /// Bytes cut out at those places.
    pub spool_cut_bytes: u64,
    /// Unconfirmed events lost with those places (the gap in their sequence numbers).
    pub spool_lost: u64,
    /// Failed spool writes or fsyncs (disk full, ...); the events stay in memory and the write is
    /// retried every sync interval.
    pub spool_write_errors: u64,
    /// Events received and not yet written to the spool.
    pub spool_pending: u64,
    /// Their bytes; past 64 MiB the forwarder stops taking input until they are written.
    pub spool_pending_bytes: u64,
    /// Batches the upstream refused (`NAK1`): it could not write them, or refused the numbering or
    /// the sender id; they stay in the spool and go again.
    pub refused: u64,
    /// New sender ids started (the spool's position could not be trusted at start, or the
    /// upstream refused the numbering).
    pub epochs: u64,
    /// Confirmations naming a seq beyond what this run sent; taken as confirming only what it
    /// sent.
    pub acks_beyond_sent: u64,
    /// Events received by this process and fsynced into the spool; `events_in` minus this is what
    /// a kill -9 would lose now.
    pub spooled: u64,
    /// Handshakes with the upstream that failed (CURVE: this daemon's key not allowed there, or
    /// the wrong `--curve-master-key`).
    pub handshake_failures: u64,
    /// Events the upstream refused as too large even alone: given up.
    pub refused_events: u64,
}

/// The receiving side of forwarding: batches from other daemons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ForwardInStatus {
    /// Batches received.
    pub batches: u64,
    /// Events written from them.
    pub events: u64,
    /// Resent events recognised by sequence number and not written again.
    pub deduplicated: u64,
    /// Resent events that may already be in the files (written before a crash of this daemon, not
    /// yet confirmed): written again and counted here, as they cannot be told apart.
    pub possible_duplicates: u64,
    /// Batches refused because their events could not be written here (`NAK1 write_failed`).
    pub refused_write: u64,
    /// Batches refused because their first seq is far beyond what this daemon has from that
    /// sender id (`NAK1 seq_jump`).
    pub refused_seq_jump: u64,
    /// Batches refused because, with CURVE, their sender id belongs to another key
    /// (`NAK1 sender_key`).
    pub refused_sender_key: u64,
    /// Batches whose numbers cannot be right (seq 0, or a range past u64::MAX): dropped.
    pub refused_bad_seq: u64,
    /// Batches over the frame limit or not whole documents (`NAK1 too_large` / `malformed`).
    pub refused_malformed: u64,
    /// The forward ledger cannot be written now: every batch is refused until it can.
    pub ledger_failing: bool,
    /// Sender ids forgotten to keep the ledger bounded (the least recently seen first).
    pub senders_evicted: u64,
    /// CURVE handshakes admitted by `--curve-allow`.
    pub auth_accepted: u64,
    /// CURVE handshakes refused: the client's public key is not allowed.
    pub auth_rejected: u64,
    /// Handshakes that failed before the key check (a client without CURVE, or one that does not
    /// have this daemon's public key).
    pub handshake_failures: u64,
    /// Connections of the forward socket open now.
    pub connections: u64,
    /// Connections of the forward socket that ended.
    pub disconnects: u64,
    /// Connections of the forward socket cut for an oversized frame (see [`Connections`]).
    pub cut_oversized: u64,
}

/// The NATS JetStream side of a publishing daemon (`--publish nats://…`) or a writer
/// (`--consume nats://…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct JetStreamStatus {
    /// Connected to a server now.
    pub connected: bool,
    /// The server connected to (`host:port`), empty when none.
    pub server: String,
    /// The stream.
    pub stream: String,
    /// Publishes not yet acknowledged.
    pub in_flight: u64,
    /// Messages the stream acknowledged.
    pub acked: u64,
    /// Of those, acknowledged as a repeat of a message it already had (not stored twice).
    pub duplicates: u64,
    /// Publishes that failed; their batches go again after the forwarder's backoff.
    pub failed: u64,
    /// Messages a writer took off the stream.
    pub consumed: u64,
    /// Events a writer wrote from them.
    pub events_written: u64,
    /// Events a writer had written already (a publisher's resend, a redelivery), not written again.
    pub deduplicated: u64,
    /// Events written again because a crash came between their fsync and the record of it.
    pub possible_duplicates: u64,
    /// Messages a writer could not read as ziggyd batches: acknowledged and dropped.
    pub malformed: u64,
    /// Invalid events inside readable messages: left out.
    pub invalid_events: u64,
    /// Messages waiting for this writer in its consumers (its lag behind the stream).
    pub pending: u64,
}

/// A STATUS reply that is not one.
#[derive(Debug, thiserror::Error)]
#[error("not a STATUS reply: {0}")]
pub struct StatusError(String);

impl Status {
    /// The wire form.
    pub fn to_document(&self) -> Document {
        // Only a counter past i64::MAX could fail, and no counter gets there.
        bson::serialize_to_document(self).unwrap_or_default()
    }

    /// Reads a reply; fields missing from it read as zero.
    pub fn from_document(doc: &Document) -> Result<Status, StatusError> {
        bson::deserialize_from_document(doc.clone()).map_err(|e| StatusError(e.to_string()))
    }

    /// One line summing it up.
    pub fn summary_line(&self) -> String {
        format!(
            "{} events in, {} written, {} invalid, {} files open",
            self.events_in, self.events_written, self.invalid_total, self.files_open
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_old_or_partial_replies() {
        let mut status = Status {
            events_in: 7,
            lag: Some(0.5),
            forward: Some(ForwardStatus {
                connected: true,
                resent: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        status.channels.insert("request.sql".into(), 7);
        let doc = status.to_document();
        assert_eq!(doc.get_i64("events_in").unwrap(), 7);
        assert!(doc.get("last_event").unwrap().as_null().is_some());
        assert_eq!(Status::from_document(&doc).unwrap(), status);

        // A reply without a field, with int32 counters and with a field this version does not know.
        let partial = bson::doc! { "events_in": 5_i32, "new_counter": 1_i64 };
        let read = Status::from_document(&partial).unwrap();
        assert_eq!(read.events_in, 5);
        assert_eq!(read.forward, None);

        let wrong = bson::doc! { "events_in": "many" };
        assert!(
            Status::from_document(&wrong)
                .unwrap_err()
                .to_string()
                .starts_with("not a STATUS reply")
        );
    }

    #[test]
    fn absent_forwarding_is_absent_on_the_wire() {
        assert!(!Status::default().to_document().contains_key("forward"));
    }
}
