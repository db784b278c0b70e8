//! The tree's own rules, write by write (the property test against the document rules is in
//! `body/reference.rs`).

use super::*;
use bson::doc;

fn set(body: &mut Body, key: &str, value: Bson) -> WriteOutcome {
    body.write(key, Value::from(value), Op::Set)
}
fn append(body: &mut Body, key: &str, value: Bson) -> WriteOutcome {
    body.write(key, Value::from(value), Op::Append)
}
fn add(body: &mut Body, key: &str, value: Bson) -> WriteOutcome {
    body.write(key, Value::from(value), Op::Add)
}

#[test]
fn dotted_keys_merge() {
    let mut body = Body::new();
    set(&mut body, "a.b", Bson::Int32(1));
    set(&mut body, "a.c", Bson::Int32(2));
    set(&mut body, "codes.200", Bson::Int32(3));
    body.write("s", Value::Str("text"), Op::Set);
    assert_eq!(
        body.to_document(),
        doc! { "a": { "b": 1, "c": 2 }, "codes": { "200": 3 }, "s": "text" }
    );
}

#[test]
fn conflicts_later_write_wins() {
    let mut body = Body::new();
    set(&mut body, "a", Bson::Int32(1));
    assert_eq!(
        set(&mut body, "a.b", Bson::Int32(2)),
        WriteOutcome::Replaced
    );
    assert_eq!(body.to_document(), doc! { "a": { "b": 2 } });
    assert_eq!(set(&mut body, "a", Bson::Int32(3)), WriteOutcome::Replaced);
    assert_eq!(body.to_document(), doc! { "a": 3 });
    assert_eq!(
        append(&mut body, "a", Bson::Int32(4)),
        WriteOutcome::Replaced
    );
    assert_eq!(body.to_document(), doc! { "a": [4] });
    assert_eq!(add(&mut body, "a", Bson::Int32(5)), WriteOutcome::Replaced);
    assert_eq!(body.to_document(), doc! { "a": 5 });
    assert_eq!(set(&mut body, "a", Bson::Int32(6)), WriteOutcome::Clean);
    // A document in the way of `add` and `append` is replaced too, its fields gone.
    set(&mut body, "d.x", Bson::Int32(1));
    assert_eq!(add(&mut body, "d", Bson::Int32(1)), WriteOutcome::Replaced);
    set(&mut body, "d.y", Bson::Int32(2));
    assert_eq!(
        append(&mut body, "d", Bson::Int32(1)),
        WriteOutcome::Replaced
    );
    assert_eq!(body.to_document(), doc! { "a": 6, "d": [1] });
}

#[test]
fn a_document_set_whole_can_be_written_into() {
    let mut body = Body::new();
    set(
        &mut body,
        "user",
        Bson::Document(doc! { "name": "x", "a.b": 1 }),
    );
    assert_eq!(
        set(&mut body, "user.id", Bson::Int32(7)),
        WriteOutcome::Clean
    );
    assert_eq!(
        set(&mut body, "user.name", Bson::Int32(8)),
        WriteOutcome::Clean
    );
    assert_eq!(
        body.to_document(),
        doc! { "user": { "name": 8, "a.b": 1, "id": 7 } }
    );
    assert_eq!(set(&mut body, "user", Bson::Null), WriteOutcome::Replaced);
    assert_eq!(body.to_document(), doc! { "user": null });
}

#[test]
fn append_keeps_order() {
    let mut body = Body::new();
    for i in 0..3 {
        append(&mut body, "x.items", Bson::Int32(i));
    }
    assert_eq!(body.to_document(), doc! { "x": { "items": [0, 1, 2] } });
}

#[test]
fn add_keeps_numeric_kind() {
    let mut body = Body::new();
    add(&mut body, "n", Bson::Int32(2));
    add(&mut body, "n", Bson::Int32(3));
    add(&mut body, "f", Bson::Double(0.5));
    add(&mut body, "f", Bson::Double(0.25));
    add(&mut body, "mix", Bson::Int32(1));
    add(&mut body, "mix", Bson::Double(0.5));
    add(&mut body, "big", Bson::Int32(i32::MAX));
    add(&mut body, "big", Bson::Int32(1));
    assert_eq!(
        body.to_document(),
        doc! { "n": 5, "f": 0.75, "mix": 1.5, "big": (i32::MAX as i64) + 1 }
    );
}

#[test]
fn large_bodies_use_the_index_and_stay_correct() {
    let mut body = Body::new();
    let mut expected = Document::new();
    for i in 0..500 {
        set(&mut body, &format!("k{i}.v"), Bson::Int32(i));
        expected.insert(format!("k{i}"), doc! { "v": i });
    }
    assert!(body.index.is_some());
    // Overwrites and conflicts through the index.
    set(&mut body, "k7", Bson::Int32(-1));
    expected.insert("k7", -1);
    set(&mut body, "k7.w", Bson::Int32(2));
    expected.insert("k7", doc! { "w": 2 });
    assert_eq!(body.to_document(), expected);
    assert!(!body.reset() || body.is_empty());
}

#[test]
fn a_body_past_its_limits_refuses_writes_instead_of_overflowing() {
    let mut body = Body::new();
    let big = "x".repeat(TEXT_LIMIT / 2);
    assert_eq!(
        body.write("a", Value::Str(&big), Op::Set),
        WriteOutcome::Clean
    );
    assert_eq!(
        body.write("b", Value::Str(&big), Op::Set),
        WriteOutcome::Refused
    );
    assert_eq!(body.write("c", Value::I32(1), Op::Set), WriteOutcome::Clean);
    let doc = body.to_document();
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn overwriting_a_string_forever_keeps_the_body_small_and_the_last_value() {
    let mut body = Body::new();
    let long = "p".repeat(1024);
    for i in 0..200_000 {
        let status = body.write("status", Value::Str(&long), Op::Set);
        assert_eq!(status, WriteOutcome::Clean);
        body.write("n", Value::I32(i), Op::Set);
        // Conflict churn: a document replaced by a scalar, over and over.
        body.write("x.y", Value::I32(i), Op::Set);
        body.write("x", Value::I32(i), Op::Set);
    }
    assert!(body.text.len() < 64 * 1024, "text {}", body.text.len());
    assert!(body.nodes.len() < 16 * 1024, "nodes {}", body.nodes.len());
    let doc = body.to_document();
    assert_eq!(doc.get_i32("n").unwrap(), 199_999);
    assert_eq!(doc.get_i32("x").unwrap(), 199_999);
    assert_eq!(doc.get_str("status").unwrap(), long);
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["status", "n", "x"]);
}

#[test]
fn keys_nested_too_deep_for_a_daemon_are_refused() {
    let mut body = Body::new();
    let deep = vec!["k"; MAX_KEY_SEGMENTS + 1].join(".");
    assert_eq!(
        body.write(&deep, Value::I32(1), Op::Set),
        WriteOutcome::Refused
    );
    let ok = vec!["k"; MAX_KEY_SEGMENTS].join(".");
    assert_eq!(body.write(&ok, Value::I32(1), Op::Set), WriteOutcome::Clean);
    let mut out = Vec::new();
    body.encode(&mut out).unwrap();
    assert!(ziggy_proto::walk::is_well_formed(&out));
}

#[test]
fn a_nul_in_an_adopted_key_is_an_encoding_error_not_a_corrupt_document() {
    let mut body = Body::new();
    set(&mut body, "m", Bson::Document(doc! { "a\0b": 1 }));
    set(&mut body, "m.c", Bson::Int32(2));
    let mut out = Vec::new();
    assert!(body.encode(&mut out).is_err());
}
