//! Counters behind STATUS, shared by the daemon's threads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bson::Document;
use ziggy_proto::status::{Connections, ForwardStatus, Status};

use crate::validate::InvalidReason;

/// Everything STATUS reports.
#[derive(Debug)]
pub struct DaemonStats {
    started: Instant,
    /// Valid events received.
    pub events_in: AtomicU64,
    /// Frames received.
    pub frames_in: AtomicU64,
    /// Events written to files.
    pub events_written: AtomicU64,
    /// Failed attempts to open, write or fsync a log file (each retry counts again).
    pub write_errors: AtomicU64,
    /// Log files found damaged before appending (not a partial event at the end) and moved
    /// aside untouched.
    pub damaged_files: AtomicU64,
    /// Events of applications waiting in memory because their file cannot be written now.
    pub events_held: AtomicU64,
    /// Events of applications that could not be written and were given up (more than the held
    /// bound waiting, or still unwritten at shutdown).
    pub events_lost_write: AtomicU64,
    /// Files currently open.
    pub files_open: AtomicU64,
    /// Partial events (left by a crash during a write) cut off the end of a file before appending.
    pub torn_tails_cut: AtomicU64,
    /// The forwarding side (`--publish`), when on.
    pub forward: ForwardStats,
    /// The receiving side of forwarding (events from other daemons).
    pub forward_in: ForwardInStats,
    /// Connections of the collect socket (STATUS `collect_in`).
    pub collect_conns: ConnectionStats,
    /// Connections of the forward socket (in STATUS `forward_in`).
    pub forward_conns: ConnectionStats,
    /// The NATS JetStream side, when the daemon publishes to or consumes from a stream.
    #[cfg(feature = "jetstream")]
    pub jetstream: std::sync::OnceLock<std::sync::Arc<crate::jetstream::JetStreamStats>>,
    detail: Mutex<Detail>,
    /// Log files that cannot be written now, with the reason.
    write_failing: Mutex<Vec<WriteFailing>>,
}

/// A log file that cannot be written now, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFailing {
    /// The file.
    pub path: String,
    /// Why, in words.
    pub reason: String,
}

/// Paths listed in STATUS's `write_failing` at most (the count says how many there are).
const WRITE_FAILING_LISTED: usize = 20;

/// Connections of a socket that accepts peers, counted by `connections`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now (gauge).
    pub connections: AtomicU64,
    /// Connections that ended, for any reason.
    pub disconnects: AtomicU64,
    /// Connections the daemon ended while the peer was still connected, not in a handshake:
    /// ZeroMQ does that to a connection carrying a frame over the socket's size cap (or, from a
    /// broken peer, a ZMTP protocol error). Best effort: see `connections`.
    pub cut_oversized: AtomicU64,
}

impl ConnectionStats {
    fn status(&self) -> Connections {
        let mut status = Connections::default();
        status.connections = self.connections.load(Ordering::Relaxed);
        status.disconnects = self.disconnects.load(Ordering::Relaxed);
        status.cut_oversized = self.cut_oversized.load(Ordering::Relaxed);
        status
    }
}

/// Most distinct keys kept per count map (`channels`, `hosts`); later keys are summed under
/// [`OTHER_KEY`]. Keys come from senders, so without a bound a noisy or hostile app could grow
/// the daemon's memory and every STATUS reply without limit.
pub const MAX_KEYS: usize = 1000;

/// The key that sums the counts of the keys past [`MAX_KEYS`]. It is neither a valid channel nor a
/// DNS host name (a `host` spelled exactly so is counted with it).
pub const OTHER_KEY: &str = "(other)";

/// Counts per key: the first [`MAX_KEYS`] distinct keys seen, and one sum for all the others.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    keys: BTreeMap<String, u64>,
    other: u64,
}

impl Tally {
    /// Adds `n` to `key`, or to the other keys' sum when the map is full and `key` is not in it.
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(count) = self.keys.get_mut(key) {
            *count += n;
        } else if self.keys.len() < MAX_KEYS {
            self.keys.insert(key.to_owned(), n);
        } else {
            self.other += n;
        }
    }

    /// Adds every count of `from`.
    pub fn merge(&mut self, from: Tally) {
        for (key, n) in from.keys {
            if let Some(count) = self.keys.get_mut(&key) {
                *count += n;
            } else if self.keys.len() < MAX_KEYS {
                self.keys.insert(key, n);
            } else {
                self.other += n;
            }
        }
        self.other += from.other;
    }

    /// All counts together.
    pub fn total(&self) -> u64 {
        self.keys.values().sum::<u64>() + self.other
    }

    /// The STATUS form: one entry per key, and [`OTHER_KEY`] when some keys did not fit.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = self.keys.clone();
        if self.other > 0 {
            *counts.entry(OTHER_KEY.to_owned()).or_default() += self.other;
        }
        counts
    }
}

/// Counters of the forwarder and its spool.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Forwarding is configured.
    pub enabled: std::sync::atomic::AtomicBool,
    /// Events in the spool not yet confirmed.
    pub spool_events: AtomicU64,
    /// Sequence number of the last event fsynced into the spool (counts every event ever
    /// spooled by this spool directory).
    pub spooled_seq: AtomicU64,
    /// Bytes of the spool on disk.
    pub spool_bytes: AtomicU64,
    /// Age in milliseconds of the oldest unconfirmed event (0 when none).
    pub oldest_unconfirmed_ms: AtomicU64,
    /// Events sent upstream for the first time.
    pub forwarded: AtomicU64,
    /// Events the upstream confirmed.
    pub confirmed: AtomicU64,
    /// Events sent again after a timeout or reconnect.
    pub resent: AtomicU64,
    /// Events dropped because the spool was full.
    pub dropped: AtomicU64,
    /// Damaged places cut out of the spool at start.
    pub spool_corrupt: AtomicU64,
    /// Bytes cut out at those places.
    pub spool_cut_bytes: AtomicU64,
    /// Unconfirmed events lost with those places (the gap in their sequence numbers).
    pub spool_lost: AtomicU64,
    /// Failed spool writes or fsyncs (disk full, ...); the events stay in memory and the write
    /// is retried every sync interval.
    pub spool_write_errors: AtomicU64,
    /// Events received and not yet written to the spool (gauge).
    pub spool_pending: AtomicU64,
    /// Their bytes (gauge); past 64 MiB the forwarder stops taking input until they are written.
    pub spool_pending_bytes: AtomicU64,
    /// Batches the upstream refused (`NAK1`): it could not write them, or refused the numbering
    /// or the sender id; they stay in the spool and go again.
    pub refused: AtomicU64,
    /// New sender ids started (the spool's position could not be trusted at start, or the
    /// upstream refused the numbering).
    pub epochs: AtomicU64,
    /// Confirmations naming a seq beyond what this run sent; taken as confirming only what it
    /// sent (right after a restart this may be the previous run's batches, confirmed later).
    pub acks_beyond_sent: AtomicU64,
    /// Events received by this process and fsynced into the spool; `events_in` minus this is
    /// what a kill -9 would lose now.
    pub spooled: AtomicU64,
    /// Whether an upstream forward endpoint is connected.
    pub connected: std::sync::atomic::AtomicBool,
    /// Events the upstream refused as too large even alone (its `--max-frame-bytes` is below
    /// them): given up.
    pub refused_events: AtomicU64,
    /// Handshakes with the upstream that failed (CURVE: this daemon's key not allowed there, or
    /// the wrong `--curve-master-key`).
    pub handshake_failures: AtomicU64,
}

/// Counters of batches received from forwarding daemons.
#[derive(Debug, Default)]
pub struct ForwardInStats {
    /// Batches received.
    pub batches: AtomicU64,
    /// Events written from them.
    pub events: AtomicU64,
    /// Resent events recognised by sequence number and not written again.
    pub deduplicated: AtomicU64,
    /// Resent events that may already be in the files (written before a crash of this daemon,
    /// not yet confirmed): written again and counted here, as they cannot be told apart.
    pub possible_duplicates: AtomicU64,
    /// Batches refused because their events could not be written here (`NAK1 write_failed`):
    /// the sender keeps them and resends.
    pub refused_write: AtomicU64,
    /// Batches refused because their first seq is far beyond what this daemon has from that
    /// sender id (`NAK1 seq_jump`): a peer claiming another daemon's id, or a sender whose spool
    /// skipped ahead (it starts a new sender id and resends).
    pub refused_seq_jump: AtomicU64,
    /// Batches refused because, with CURVE, their sender id belongs to another key
    /// (`NAK1 sender_key`).
    pub refused_sender_key: AtomicU64,
    /// Batches whose numbers cannot be right (seq 0, or a range past u64::MAX): dropped.
    pub refused_bad_seq: AtomicU64,
    /// Batches refused because they are over the frame limit or not whole documents
    /// (`NAK1 too_large` / `malformed`).
    pub refused_malformed: AtomicU64,
    /// The forward ledger cannot be written now: every batch is refused until it can.
    pub ledger_failing: std::sync::atomic::AtomicBool,
    /// Sender ids forgotten to keep the ledger bounded (the least recently seen first).
    pub senders_evicted: AtomicU64,
    /// CURVE handshakes admitted by `--curve-allow`.
    pub auth_accepted: AtomicU64,
    /// CURVE handshakes refused: the client's public key is not in `--curve-allow`.
    pub auth_rejected: AtomicU64,
    /// Handshakes that failed before the key check (a client without CURVE, or one that does not
    /// have this daemon's public key).
    pub handshake_failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Detail {
    invalid: BTreeMap<&'static str, u64>,
    channels: Tally,
    hosts: Tally,
    last_event_end: Option<f64>,
}

/// Counts gathered by the collector over one batch, merged into [`DaemonStats`] at once (one lock
/// per batch, not per event).
#[derive(Debug, Default)]
pub struct BatchCounts {
    pub(crate) events: u64,
    pub(crate) frames: u64,
    pub(crate) invalid: BTreeMap<InvalidReason, u64>,
    // Bounded here too: one frame of tiny events could carry a million distinct hosts.
    pub(crate) channels: Tally,
    pub(crate) hosts: Tally,
    pub(crate) last_event_end: Option<f64>,
}

impl BatchCounts {
    pub(crate) fn event(&mut self, channel: &str, host: &str, end: f64) {
        self.events += 1;
        self.channels.add(channel, 1);
        self.hosts.add(host, 1);
        self.last_event_end = Some(self.last_event_end.map_or(end, |e| e.max(end)));
    }
}

impl Default for DaemonStats {
    fn default() -> Self {
        DaemonStats {
            started: Instant::now(),
            events_in: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            events_written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            files_open: AtomicU64::new(0),
            torn_tails_cut: AtomicU64::new(0),
            events_held: AtomicU64::new(0),
            damaged_files: AtomicU64::new(0),
            events_lost_write: AtomicU64::new(0),
            write_failing: Mutex::default(),
            forward: ForwardStats::default(),
            forward_in: ForwardInStats::default(),
            collect_conns: ConnectionStats::default(),
            forward_conns: ConnectionStats::default(),
            #[cfg(feature = "jetstream")]
            jetstream: std::sync::OnceLock::new(),
            detail: Mutex::default(),
        }
    }
}

impl DaemonStats {
    /// Adds a batch's counts.
    pub fn merge(&self, batch: BatchCounts) {
        self.events_in.fetch_add(batch.events, Ordering::Relaxed);
        self.frames_in.fetch_add(batch.frames, Ordering::Relaxed);
        let mut d = self.detail.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, n) in batch.invalid {
            *d.invalid.entry(reason.as_str()).or_default() += n;
        }
        d.channels.merge(batch.channels);
        d.hosts.merge(batch.hosts);
        if let Some(end) = batch.last_event_end {
            d.last_event_end = Some(d.last_event_end.map_or(end, |e| e.max(end)));
        }
    }

    /// Replaces the list of log files that cannot be written now.
    pub fn set_write_failing(&self, failing: Vec<WriteFailing>) {
        *self.write_failing.lock().unwrap_or_else(|e| e.into_inner()) = failing;
    }

    /// Invalid events so far, all reasons together.
    pub fn invalid_total(&self) -> u64 {
        self.detail
            .lock()
            .map(|d| d.invalid.values().sum())
            .unwrap_or(0)
    }

    /// The STATUS reply (without the endpoints, which the control thread adds).
    pub fn status(&self) -> Status {
        let d = self.detail.lock().unwrap_or_else(|e| e.into_inner());
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut status = Status::default();
        status.uptime = self.started.elapsed().as_secs_f64();
        status.events_in = g(&self.events_in);
        status.frames_in = g(&self.frames_in);
        status.events_written = g(&self.events_written);
        status.write_errors = g(&self.write_errors);
        status.files_open = g(&self.files_open);
        status.torn_tails_cut = g(&self.torn_tails_cut);
        status.events_held = g(&self.events_held);
        status.damaged_files = g(&self.damaged_files);
        status.events_lost_write = g(&self.events_lost_write);
        status.invalid_total = d.invalid.values().sum();
        status.invalid = InvalidReason::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    *d.invalid.get(r.as_str()).unwrap_or(&0),
                )
            })
            .collect();
        status.channels = d.channels.counts();
        status.hosts = d.hosts.counts();
        status.collect_in = self.collect_conns.status();
        {
            let failing = self.write_failing.lock().unwrap_or_else(|e| e.into_inner());
            status.write_failing_paths = failing.len() as u64;
            status.write_failing = failing
                .iter()
                .take(WRITE_FAILING_LISTED)
                .map(|f| (f.path.clone(), f.reason.clone()))
                .collect();
        }
        let f = &self.forward;
        if f.enabled.load(Ordering::Relaxed) {
            let mut forward = ForwardStatus::default();
            forward.connected = f.connected.load(Ordering::Relaxed);
            forward.spool_events = g(&f.spool_events);
            forward.spooled_seq = g(&f.spooled_seq);
            forward.spool_bytes = g(&f.spool_bytes);
            forward.oldest_unconfirmed_age = g(&f.oldest_unconfirmed_ms) as f64 / 1000.0;
            forward.forwarded = g(&f.forwarded);
            forward.confirmed = g(&f.confirmed);
            forward.resent = g(&f.resent);
            forward.dropped = g(&f.dropped);
            forward.spool_corrupt = g(&f.spool_corrupt);
            forward.spool_cut_bytes = g(&f.spool_cut_bytes);
            forward.spool_lost = g(&f.spool_lost);
            forward.spool_write_errors = g(&f.spool_write_errors);
            forward.spool_pending = g(&f.spool_pending);
            forward.spool_pending_bytes = g(&f.spool_pending_bytes);
            forward.refused = g(&f.refused);
            forward.epochs = g(&f.epochs);
            forward.acks_beyond_sent = g(&f.acks_beyond_sent);
            forward.spooled = g(&f.spooled);
            forward.handshake_failures = g(&f.handshake_failures);
            forward.refused_events = g(&f.refused_events);
            status.forward = Some(forward);
        }
        let fi = &self.forward_in;
        let fs = &mut status.forward_in;
        fs.batches = g(&fi.batches);
        fs.events = g(&fi.events);
        fs.deduplicated = g(&fi.deduplicated);
        fs.possible_duplicates = g(&fi.possible_duplicates);
        fs.refused_write = g(&fi.refused_write);
        fs.refused_seq_jump = g(&fi.refused_seq_jump);
        fs.refused_sender_key = g(&fi.refused_sender_key);
        fs.refused_bad_seq = g(&fi.refused_bad_seq);
        fs.refused_malformed = g(&fi.refused_malformed);
        fs.ledger_failing = fi.ledger_failing.load(Ordering::Relaxed);
        fs.senders_evicted = g(&fi.senders_evicted);
        fs.auth_accepted = g(&fi.auth_accepted);
        fs.auth_rejected = g(&fi.auth_rejected);
        fs.handshake_failures = g(&fi.handshake_failures);
        let conns = self.forward_conns.status();
        fs.connections = conns.connections;
        fs.disconnects = conns.disconnects;
        fs.cut_oversized = conns.cut_oversized;
        #[cfg(feature = "jetstream")]
        if let Some(js) = self.jetstream.get() {
            status.jetstream = Some(js.status());
        }
        status.last_event = d.last_event_end;
        status.lag = d.last_event_end.map(|end| (ziggy_now() - end).max(0.0));
        status
    }

    /// The STATUS reply in its wire form (without the endpoints).
    pub fn status_document(&self) -> Document {
        self.status().to_document()
    }
}

fn ziggy_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_keep_at_most_max_keys_and_sum_the_rest() {
        let mut t = Tally::default();
        for i in 0..MAX_KEYS + 500 {
            t.add(&format!("h{i}"), 2);
        }
        t.add("h0", 1); // a key already kept still counts as itself
        let counts = t.counts();
        assert_eq!(counts.len(), MAX_KEYS + 1);
        assert_eq!(counts[OTHER_KEY], 1000);
        assert_eq!(counts["h0"], 3);
        assert_eq!(t.total(), 2 * (MAX_KEYS as u64 + 500) + 1);

        // Merging full tallies keeps the bound and every count.
        let mut a = Tally::default();
        let mut b = Tally::default();
        for i in 0..MAX_KEYS {
            a.add(&format!("a{i}"), 1);
            b.add(&format!("b{i}"), 1);
        }
        b.add("spill", 5);
        a.merge(b);
        assert_eq!(a.counts().len(), MAX_KEYS + 1);
        assert_eq!(a.total(), 2 * MAX_KEYS as u64 + 5);
    }

    #[test]
    fn status_stays_small_whatever_the_keys() {
        let stats = DaemonStats::default();
        for frame in 0..20 {
            let mut counts = BatchCounts::default();
            for i in 0..1_000 {
                let key = format!("{frame}-{i}-{}", "x".repeat(200));
                counts.event(&key, &key, 1.7e9);
            }
            stats.merge(counts);
        }
        let status = stats.status_document();
        for section in ["channels", "hosts"] {
            let doc = status.get_document(section).unwrap();
            assert_eq!(doc.len(), MAX_KEYS + 1, "{section}");
            let sum: i64 = doc.values().map(|v| v.as_i64().unwrap()).sum();
            assert_eq!(sum, 20_000, "{section}");
        }
        assert!(status.to_vec().unwrap().len() < 600 << 10);
    }
}
