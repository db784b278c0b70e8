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

/// The key rule every writer follows, the tracing bridge included (`Body::write` applies it): a
/// key that is empty or holds a NUL is refused, and counted in `invalid`.
#[inline]
pub(crate) fn key_is_valid(key: &str) -> bool {
    !key.is_empty() && find_byte(key.as_bytes(), 0).is_none()
}

/// The index of the first `needle` in `bytes`, eight bytes at a time. Keys are short (a dozen
/// bytes): a SIMD search's set-up costs more than this whole scan, a byte loop about twice it.
#[inline]
pub(crate) fn find_byte(bytes: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // The lowest byte flagged here is exactly the lowest zero byte of `x` (a borrow can only
        // flag bytes above a real zero).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == needle).map(|i| at + i)
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

/// Applies one write by the rules above (a bad key refused) and counts what it did.
// Only the tracing bridge calls it directly.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn write(body: &mut Body, key: &str, value: Value<'_>, op: Op) {
    count(body.write(key, value, op));
}

/// Emptied bodies kept for the next contexts on this thread.
const SPARE_BODIES: usize = 8;

thread_local! {
    // Boxed: a frame moves several times between its open and its close, a box is one word, and
    // the box itself is what is reused.
    #[allow(clippy::vec_box)]
    static SPARE: std::cell::RefCell<Vec<Box<Body>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty body for a new context: a recycled one if this thread has one.
#[inline]
pub(crate) fn take() -> Box<Body> {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Gives a closed context's body back for reuse on this thread.
#[inline]
pub(crate) fn recycle(mut body: Box<Body>) {
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

#[cfg(test)]
mod tests {
    use super::find_byte;

    #[test]
    fn find_byte_finds_the_first_at_every_position_and_length() {
        for len in 0..40 {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(find_byte(&base, b'.'), None, "len {len}");
            for first in 0..len {
                let mut bytes = base.clone();
                bytes[first] = b'.';
                // A later match, and bytes just below and above the needle, never mislead it.
                if first + 3 < len {
                    bytes[first + 3] = b'.';
                }
                if first > 0 {
                    bytes[first - 1] = b'.' - 1;
                }
                assert_eq!(find_byte(&bytes, b'.'), Some(first), "{bytes:?}");
                bytes[first] = 0;
                assert_eq!(find_byte(&bytes, 0), Some(first), "{bytes:?}");
            }
        }
        assert_eq!(find_byte(&[0x80, 0x01, 0x00, 0xff], 0), Some(2));
        assert_eq!(find_byte(&[1, 0, 0, 0, 0, 0, 0, 0, 0], 0), Some(1));
    }
}
