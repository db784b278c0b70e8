//! Dotted-key writes into an event body.
//!
//! `set("a.b", 1)` nests: `{a: {b: 1}}`; every segment is a plain map key, digits included
//! (`codes.200` is `{codes: {"200": …}}`). Conflicts have one outcome, *the later write wins*: a value
//! in the way of a write (a number where a document is needed, a string where `append` needs an
//! array, a non-number where `add` needs one) is replaced, and the replacement is counted in
//! [`crate::Stats::conflicts`]. Instrumentation never panics and never returns an error.

use std::sync::atomic::Ordering;

use bson::{Bson, Document};

use crate::counters::COUNTERS;

/// What a write did to the body; `Replaced` means a conflicting value was overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    Clean,
    Replaced,
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

/// Counts a write that replaced a conflicting value in `conflicts`.
#[inline]
pub(crate) fn count(outcome: WriteOutcome) {
    if outcome == WriteOutcome::Replaced {
        COUNTERS.conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Applies one write (`set`, `append` or `add`) by the rules above.
// Only the tracing bridge calls it directly.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn write(
    body: &mut Document,
    key: &str,
    value: Bson,
    op: fn(&mut Document, &str, Bson) -> WriteOutcome,
) {
    if accept_key(key) {
        count(op(body, key, value));
    }
}

/// Walks `key`'s segments, creating documents as needed, and returns the parent document of the
/// last segment together with that segment.
fn parent_of<'d, 'k>(
    mut doc: &'d mut Document,
    key: &'k str,
    outcome: &mut WriteOutcome,
) -> (&'d mut Document, &'k str) {
    let mut segments = key.split('.');
    let mut current = segments.next().unwrap_or("");
    for next in segments {
        let slot = doc
            .entry(current.to_owned())
            .or_insert_with(|| Bson::Document(Document::new()));
        if !matches!(slot, Bson::Document(_)) {
            *slot = Bson::Document(Document::new());
            *outcome = WriteOutcome::Replaced;
        }
        doc = match slot {
            Bson::Document(d) => d,
            _ => unreachable!("slot was just made a document"),
        };
        current = next;
    }
    (doc, current)
}

/// `body[key] = value`.
pub(crate) fn set(body: &mut Document, key: &str, value: Bson) -> WriteOutcome {
    let mut outcome = WriteOutcome::Clean;
    let (doc, last) = parent_of(body, key, &mut outcome);
    if let Some(old) = doc.insert(last.to_owned(), value) {
        // Overwriting a scalar with a scalar is an ordinary update; replacing a sub-document is not.
        if matches!(old, Bson::Document(_)) {
            outcome = WriteOutcome::Replaced;
        }
    }
    outcome
}

/// Pushes `value` onto the array at `key`, creating it.
pub(crate) fn append(body: &mut Document, key: &str, value: Bson) -> WriteOutcome {
    let mut outcome = WriteOutcome::Clean;
    let (doc, last) = parent_of(body, key, &mut outcome);
    match doc.get_mut(last) {
        Some(Bson::Array(items)) => items.push(value),
        Some(other) => {
            *other = Bson::Array(vec![value]);
            outcome = WriteOutcome::Replaced;
        }
        None => {
            doc.insert(last.to_owned(), Bson::Array(vec![value]));
        }
    }
    outcome
}

/// Adds the number `delta` to the number at `key` (missing counts as 0). Integers stay integers
/// (an `i32` sum that overflows widens to `i64`), floats stay floats, and int + float is a float.
pub(crate) fn add(body: &mut Document, key: &str, delta: Bson) -> WriteOutcome {
    let mut outcome = WriteOutcome::Clean;
    let (doc, last) = parent_of(body, key, &mut outcome);
    let sum = match (doc.get(last), &delta) {
        (None, _) => delta,
        (Some(current), _) => match numeric_sum(current, &delta) {
            Some(sum) => sum,
            None => {
                outcome = WriteOutcome::Replaced;
                delta
            }
        },
    };
    doc.insert(last.to_owned(), sum);
    outcome
}

fn numeric_sum(a: &Bson, b: &Bson) -> Option<Bson> {
    use Bson::{Double, Int32, Int64};
    Some(match (a, b) {
        (Int32(x), Int32(y)) => x
            .checked_add(*y)
            .map(Int32)
            .unwrap_or(Int64(*x as i64 + *y as i64)),
        (Int32(x), Int64(y)) | (Int64(y), Int32(x)) => Int64((*x as i64).wrapping_add(*y)),
        (Int64(x), Int64(y)) => Int64(x.wrapping_add(*y)),
        (Double(x), Double(y)) => Double(x + y),
        (Double(x), Int32(y)) | (Int32(y), Double(x)) => Double(x + *y as f64),
        (Double(x), Int64(y)) | (Int64(y), Double(x)) => Double(x + *y as f64),
        _ => return None,
    })
}

/// True for the BSON types `add` accepts.
pub(crate) fn is_number(value: &Bson) -> bool {
    matches!(value, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn dotted_keys_merge() {
        let mut body = Document::new();
        set(&mut body, "a.b", Bson::Int32(1));
        set(&mut body, "a.c", Bson::Int32(2));
        set(&mut body, "codes.200", Bson::Int32(3));
        assert_eq!(
            body,
            doc! { "a": { "b": 1, "c": 2 }, "codes": { "200": 3 } }
        );
    }

    #[test]
    fn conflicts_later_write_wins() {
        let mut body = Document::new();
        set(&mut body, "a", Bson::Int32(1));
        assert_eq!(
            set(&mut body, "a.b", Bson::Int32(2)),
            WriteOutcome::Replaced
        );
        assert_eq!(body, doc! { "a": { "b": 2 } });
        assert_eq!(set(&mut body, "a", Bson::Int32(3)), WriteOutcome::Replaced);
        assert_eq!(body, doc! { "a": 3 });
        assert_eq!(
            append(&mut body, "a", Bson::Int32(4)),
            WriteOutcome::Replaced
        );
        assert_eq!(body, doc! { "a": [4] });
        assert_eq!(add(&mut body, "a", Bson::Int32(5)), WriteOutcome::Replaced);
        assert_eq!(body, doc! { "a": 5 });
        assert_eq!(set(&mut body, "a", Bson::Int32(6)), WriteOutcome::Clean);
    }

    #[test]
    fn append_keeps_order() {
        let mut body = Document::new();
        for i in 0..3 {
            append(&mut body, "x.items", Bson::Int32(i));
        }
        assert_eq!(body, doc! { "x": { "items": [0, 1, 2] } });
    }

    #[test]
    fn add_keeps_numeric_kind() {
        let mut body = Document::new();
        add(&mut body, "n", Bson::Int32(2));
        add(&mut body, "n", Bson::Int32(3));
        add(&mut body, "f", Bson::Double(0.5));
        add(&mut body, "f", Bson::Double(0.25));
        add(&mut body, "mix", Bson::Int32(1));
        add(&mut body, "mix", Bson::Double(0.5));
        add(&mut body, "big", Bson::Int32(i32::MAX));
        add(&mut body, "big", Bson::Int32(1));
        assert_eq!(
            body,
            doc! { "n": 5, "f": 0.75, "mix": 1.5, "big": (i32::MAX as i64) + 1 }
        );
    }
}
