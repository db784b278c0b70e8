//! The body rules as they were written over `bson::Document` (an ordered map of owned keys): the
//! reference the tree is checked against, operation by operation, in the property test below.

use bson::{Bson, Document};
use proptest::prelude::*;

use super::WriteOutcome;
use super::tree::{Body, Op, Value};

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
fn set(body: &mut Document, key: &str, value: Bson) -> WriteOutcome {
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
fn append(body: &mut Document, key: &str, value: Bson) -> WriteOutcome {
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
fn add(body: &mut Document, key: &str, delta: Bson) -> WriteOutcome {
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

fn reference(doc: &mut Document, key: &str, value: Bson, op: Op) -> WriteOutcome {
    match op {
        Op::Set => set(doc, key, value),
        Op::Append => append(doc, key, value),
        Op::Add => add(doc, key, value),
    }
}

fn value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        (-1e6f64..1e6).prop_map(Bson::Double),
        any::<bool>().prop_map(Bson::Boolean),
        "[a-z]{0,4}".prop_map(Bson::String),
        Just(Bson::Null),
        ("[ab]", any::<i32>()).prop_map(|(k, v)| Bson::Document(bson::doc! { k: v })),
        ("[ab]", "[a-z]{0,3}").prop_map(|(k, v)| {
            Bson::Document(bson::doc! { k: { "c": v.clone() }, "d.e": v, "": 1 })
        }),
        Just(Bson::Array(vec![Bson::Int32(1)])),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![Just(Op::Set), Just(Op::Append), Just(Op::Add)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any sequence of writes leaves the same document, with the same outcome at every step.
    #[test]
    fn the_tree_follows_the_document_rules(
        writes in proptest::collection::vec(("[abc]?(\\.[abc]?){0,2}", value(), op()), 0..60),
    ) {
        let mut doc = Document::new();
        let mut body = Body::new();
        for (key, value, op) in writes {
            // The writers refuse empty keys, and `add` of a non-number, before the body.
            if key.is_empty() {
                continue;
            }
            if op == Op::Add && !matches!(value, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)) {
                continue;
            }
            let want = reference(&mut doc, &key, value.clone(), op);
            let got = match &value {
                Bson::String(s) => body.write(&key, Value::Str(s), op),
                other => body.write(&key, Value::from(other.clone()), op),
            };
            prop_assert_eq!(got, want, "outcome of {:?} {} {:?}", op, key, value);
            prop_assert_eq!(body.to_document(), doc.clone(), "after {:?} {} {:?}", op, key, value);
        }
    }
}

/// Keys of the reused-body test: a small pool, so that events repeat each other's keys.
const KEYS: &[&str] = &["a", "b", "a.b", "a.c", "c.a.b", "b.c", "a..b", "c", "a.b.c"];

fn write() -> impl Strategy<Value = (usize, Bson, Op)> {
    // Mostly `set`s of scalars: the writes a template is made of.
    let op = prop_oneof![6 => Just(Op::Set), 1 => Just(Op::Append), 1 => Just(Op::Add)];
    let scalar = prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        "[a-z]{0,4}".prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
    ];
    let value = prop_oneof![6 => scalar, 1 => value()];
    (0..KEYS.len(), value, op)
}

/// How an event differs from the previous one.
#[derive(Debug, Clone)]
enum Variation {
    Same,
    CutAt(usize),
    InsertAt(usize, (usize, Bson, Op)),
    ReplaceAt(usize, (usize, Bson, Op)),
    Append((usize, Bson, Op)),
}

fn variation() -> impl Strategy<Value = Variation> {
    prop_oneof![
        4 => Just(Variation::Same),
        1 => (0..12usize).prop_map(Variation::CutAt),
        1 => (0..12usize, write()).prop_map(|(i, w)| Variation::InsertAt(i, w)),
        1 => (0..12usize, write()).prop_map(|(i, w)| Variation::ReplaceAt(i, w)),
        1 => write().prop_map(Variation::Append),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// One body reused event after event, as a thread reuses it, each event a variation of the
    /// previous one: every write's outcome, and the document after it, follow the rules whether
    /// the write was replayed from the previous event's shape or not.
    #[test]
    fn a_reused_body_follows_the_document_rules_event_after_event(
        first in proptest::collection::vec(write(), 0..12),
        variations in proptest::collection::vec(variation(), 1..10),
    ) {
        let mut body = Body::new();
        let mut writes = first;
        for variation in std::iter::once(Variation::Same).chain(variations) {
            match variation {
                Variation::Same => {}
                Variation::CutAt(i) => writes.truncate(i),
                Variation::InsertAt(i, w) => writes.insert(i.min(writes.len()), w),
                Variation::ReplaceAt(i, w) => {
                    if let Some(slot) = writes.get_mut(i) {
                        *slot = w;
                    }
                }
                Variation::Append(w) => writes.push(w),
            }
            body.reset();
            prop_assert!(body.is_empty());
            prop_assert_eq!(body.to_document(), Document::new());
            let mut doc = Document::new();
            for (key, value, op) in &writes {
                let (key, op) = (KEYS[*key], *op);
                if op == Op::Add && !matches!(value, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)) {
                    continue;
                }
                let want = reference(&mut doc, key, value.clone(), op);
                let got = match value {
                    Bson::String(s) => body.write(key, Value::Str(s), op),
                    other => body.write(key, Value::from(other.clone()), op),
                };
                prop_assert_eq!(got, want, "outcome of {:?} {} {:?}", op, key, value);
                prop_assert_eq!(body.to_document(), doc.clone(), "after {:?} {} {:?} in {:?}", op, key, value, writes);
            }
            prop_assert_eq!(body.to_document(), doc);
        }
    }
}
