//! Counters of what the runtime did with events, read by [`stats`].
//!
//! The application threads count every event they close and queue; the sender thread counts what
//! it takes off the queue. The two sides write to different cache lines, and each application
//! thread to its own slot of a striped counter: a shared counter line bouncing between cores
//! cost every event two contended atomic adds. `queued` is not counted but derived: what was
//! queued minus what the sender took.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One atomic on a cache line of its own (128 bytes: adjacent-line prefetch pairs lines).
#[repr(align(128))]
pub(crate) struct Padded(pub AtomicU64);

const STRIPES: usize = 16;

/// A counter many threads add to, each thread on its own slot (assigned at its first add, so up
/// to 16 threads never share one), summed when read.
pub(crate) struct Striped([Padded; STRIPES]);

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe() -> usize {
    STRIPE
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                s.set(i);
            }
            i
        })
        // Thread teardown: any slot is correct, only slower.
        .unwrap_or(0)
}

impl Striped {
    const fn new() -> Striped {
        Striped([const { Padded(AtomicU64::new(0)) }; STRIPES])
    }

    /// Adds `n` on this thread's slot.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub(crate) fn sum(&self) -> u64 {
        self.0
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

pub(crate) struct Counters {
    /// Application threads: events closed and encoded.
    pub emitted: Striped,
    /// Application threads: events put on the transport's queue.
    pub queued_in: Striped,
    /// Sender thread: events taken off the queue (sent, or dropped by the sender or shutdown).
    pub taken: Padded,
    /// Sender thread: events handed to ZeroMQ.
    pub sent: Padded,
    /// Rare (queue full, errors, conflicts): plain counters.
    pub dropped: AtomicU64,
    pub invalid: AtomicU64,
    pub conflicts: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    emitted: Striped::new(),
    queued_in: Striped::new(),
    taken: Padded(AtomicU64::new(0)),
    sent: Padded(AtomicU64::new(0)),
    dropped: AtomicU64::new(0),
    invalid: AtomicU64::new(0),
    conflicts: AtomicU64::new(0),
};

/// Events on the queue or in the sender's hands. Never below the true number at the time of the
/// call (what the sender took is read first), so zero means the queue was empty.
pub(crate) fn queued() -> u64 {
    let taken = COUNTERS.taken.0.load(Ordering::Acquire);
    COUNTERS.queued_in.sum().saturating_sub(taken)
}

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
    // The sender's side first, the application's last: a snapshot taken while events flow keeps
    // `sent + dropped + queued <= emitted`.
    let sent = c.sent.0.load(Ordering::Relaxed);
    let dropped = c.dropped.load(Ordering::Relaxed);
    let queued = queued();
    Stats {
        emitted: c.emitted.sum(),
        sent,
        dropped,
        queued,
        invalid: c.invalid.load(Ordering::Relaxed),
        conflicts: c.conflicts.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_counter_sums_every_threads_adds() {
        static COUNTER: Striped = Striped::new();
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        COUNTER.add(1);
                    }
                });
            }
        });
        assert_eq!(COUNTER.sum(), 200_000);
        assert_eq!(std::mem::align_of::<Padded>(), 128);
    }
}
