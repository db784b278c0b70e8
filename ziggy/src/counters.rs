//! Counters of what the runtime did with events, read by [`stats`].

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct Counters {
    pub emitted: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
    pub invalid: AtomicU64,
    pub conflicts: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    emitted: AtomicU64::new(0),
    sent: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    queued: AtomicU64::new(0),
    invalid: AtomicU64::new(0),
    conflicts: AtomicU64::new(0),
};

/// A snapshot of the runtime's counters since the process started.
///
/// Every event handed to the transport ends up in exactly one of `sent`, `dropped` or `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Events closed and encoded (to the transport or a test capture).
    pub emitted: u64,
    /// Events handed to ZeroMQ by the sender thread.
    pub sent: u64,
    /// Events dropped because the queue was full, the transport was not running (while a test
    /// capture elsewhere kept ziggy on, or in a race with `shutdown`), or shutdown gave up on them.
    pub dropped: u64,
    /// Events waiting in the queue (or in the sender's hands) right now.
    pub queued: u64,
    /// Rejected inputs: invalid channel names or ids, values serde could not encode, `add` of a
    /// non-number, keys with NUL, writes into a body already past 64 MiB of keys and strings.
    pub invalid: u64,
    /// Writes that replaced a conflicting value (see [`crate::set`]'s rules in the crate docs).
    pub conflicts: u64,
}

/// Reads the counters.
///
/// ```
/// let s = ziggy::stats();
/// assert!(s.sent + s.dropped + s.queued <= s.emitted);
/// ```
pub fn stats() -> Stats {
    let c = &COUNTERS;
    Stats {
        emitted: c.emitted.load(Ordering::Relaxed),
        sent: c.sent.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        queued: c.queued.load(Ordering::Relaxed),
        invalid: c.invalid.load(Ordering::Relaxed),
        conflicts: c.conflicts.load(Ordering::Relaxed),
    }
}
