//! An event body: the values written into one open context, kept as a small tree that is
//! encoded straight to BSON when the context closes.
//!
//! `set("a.b", 1)` nests: `{a: {b: 1}}`; every segment is a plain map key, digits included
//! (`codes.200` is `{codes: {"200": …}}`). Conflicts have one outcome, *the later write wins*: a
//! value in the way of a write (a number where a document is needed, a string where `append`
//! needs an array, a non-number where `add` needs one) is replaced, and the replacement is counted
//! in [`crate::Stats::conflicts`]. Instrumentation never panics and never returns an error.
//!
//! Why not a `bson::Document`: the document is an ordered hash map of owned keys holding owned
//! values, so every write allocated a key (and a string value), hashed each dotted segment, and
//! the close went through bson's serializer. Here a body is one vector of nodes and one text arena
//! (names and strings), reused from event to event on the thread, and primitive values are
//! captured from serde without building a `Bson` ([`capture`]).

mod capture;
#[cfg(test)]
mod reference;
mod tree;

use std::sync::atomic::Ordering;

use crate::counters::COUNTERS;

pub(crate) use capture::read_scalar;
pub(crate) use tree::{Body, EncodeError, Op, Value};

/// What a write did to the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    Clean,
    /// A conflicting value was overwritten.
    Replaced,
    /// The body is full (tens of MiB): nothing was written.
    Refused,
}

/// The key rule every writer follows, the tracing bridge included: a key that is empty or holds
/// a NUL is refused, and counted in `invalid`.
#[inline]
pub(crate) fn accept_key(key: &str) -> bool {
    // A byte search (memchr) rather than a `char` pattern: this runs on every write.
    let ok = !key.is_empty() && !key.as_bytes().contains(&0);
    if !ok {
        COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

/// Counts a write that replaced a conflicting value in `conflicts`, a refused one in `invalid`.
#[inline]
pub(crate) fn count(outcome: WriteOutcome) {
    match outcome {
        WriteOutcome::Clean => {}
        WriteOutcome::Replaced => {
            COUNTERS.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        WriteOutcome::Refused => {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Applies one write by the rules above, if the key is acceptable, and counts what it did.
// Only the tracing bridge calls it directly.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn write(body: &mut Body, key: &str, value: Value<'_>, op: Op) {
    if accept_key(key) {
        count(body.write(key, value, op));
    }
}

/// Emptied bodies kept for the next contexts on this thread.
const SPARE_BODIES: usize = 8;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Body>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty body for a new context: a recycled one if this thread has one.
#[inline]
pub(crate) fn take() -> Body {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Gives a closed context's body back for reuse on this thread.
#[inline]
pub(crate) fn recycle(mut body: Body) {
    if body.reset() {
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut()
                && s.len() < SPARE_BODIES
            {
                s.push(body);
            }
        });
    }
}
