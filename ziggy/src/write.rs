//! Writes into the innermost open context: [`set`], [`append`], [`add`], and the lookups the
//! timer and the macros need.
//!
//! Each public write is an `#[inline]` check of the switch over an `#[inline(never)]` slow path,
//! so while ziggy is off a write is one relaxed load and a branch. A primitive is read without
//! building a `Bson` (`body::read_scalar`) and written with one borrow of the stack; anything else
//! is converted through `bson`, only once an active context is known to be there to receive it.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::body::{self, Op, Value};
use crate::counters::COUNTERS;
use crate::stack::with_stack;
use crate::switch::enabled;

/// Writes `value` into the innermost open context of this thread, if it is active.
fn write_innermost<V: Serialize + ?Sized>(key: &str, value: &V, op: Op) {
    // The value is read before the stack is borrowed for the write (its `Serialize` may call
    // ziggy too), and a primitive is read before looking for a context: reading it is cheaper
    // than a second look at the stack.
    match body::read_scalar(value) {
        Ok(scalar) => {
            write_value(key, scalar.value(), op);
            scalar.give_back();
        }
        Err(_) => write_converted(key, value, op),
    }
}

fn has_open_context() -> bool {
    with_stack(|s| s.last().is_some_and(|f| f.active)).unwrap_or(false)
}

/// Writes into the innermost active context, if any, and counts what the write did (a bad key,
/// and `add` of a non-number, as invalid).
fn write_value(key: &str, value: Value<'_>, op: Op) {
    let outcome = with_stack(|stack| match stack.last_mut() {
        Some(f) if f.active => {
            // The key is checked by the write itself.
            if op == Op::Add && !value.is_number() {
                COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(f.body.write(key, value, op))
        }
        _ => None,
    })
    .flatten();
    if let Some(outcome) = outcome {
        body::count(outcome);
    }
}

#[inline(never)]
fn write_converted<V: Serialize + ?Sized>(key: &str, value: &V, op: Op) {
    // Converting is costly: only for a context that will take the value.
    if !has_open_context() {
        return;
    }
    let value = match bson::serialize_to_bson(value) {
        Ok(v) => Value::from(v),
        Err(_) => {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    write_value(key, value, op);
}

/// Sets `key` (dotted keys nest) in the innermost open context. Outside a context: nothing.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::set("response.status", 200);
///     ziggy::set("user.agent", "curl/8");
/// });
/// assert_eq!(events[0].body.get_document("response").unwrap().get_i32("status").ok(), Some(200));
/// ```
#[inline]
pub fn set<V: Serialize>(key: &str, value: V) {
    if enabled() {
        set_slow(key, &value);
    }
}

// Cold: while ziggy is off the caller keeps only the flag test in its hot path.
#[cold]
#[inline(never)]
fn set_slow<V: Serialize>(key: &str, value: &V) {
    write_innermost(key, value, Op::Set);
}

/// Appends `value` to the array at `key`, creating it.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::append("tags", "a");
///     ziggy::append("tags", "b");
/// });
/// assert_eq!(events[0].body.get_array("tags").unwrap().len(), 2);
/// ```
#[inline]
pub fn append<V: Serialize>(key: &str, value: V) {
    if enabled() {
        append_slow(key, &value);
    }
}

// Cold: while ziggy is off the caller keeps only the flag test in its hot path.
#[cold]
#[inline(never)]
fn append_slow<V: Serialize>(key: &str, value: &V) {
    write_innermost(key, value, Op::Append);
}

/// Adds a number to the counter at `key` (missing counts as zero; ints stay ints, floats floats).
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::add("cache.hits", 1);
///     ziggy::add("cache.hits", 2);
/// });
/// assert_eq!(events[0].body.get_document("cache").unwrap().get_i32("hits").ok(), Some(3));
/// ```
#[inline]
pub fn add<N: Serialize>(key: &str, number: N) {
    if enabled() {
        add_slow(key, &number);
    }
}

// Cold: while ziggy is off the caller keeps only the flag test in its hot path.
#[cold]
#[inline(never)]
fn add_slow<N: Serialize>(key: &str, number: &N) {
    write_innermost(key, number, Op::Add);
}

/// The id of the innermost open context on this thread, if any.
///
/// ```
/// ziggy::testing::capture(|| {
///     assert_eq!(ziggy::current_id(), None);
///     let _ctx = ziggy::Context::new("request").id("abc").enter();
///     assert_eq!(ziggy::current_id().as_deref(), Some("abc"));
/// });
/// ```
pub fn current_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    with_stack(|s| {
        s.last()
            .filter(|f| f.active)
            .map(|f| f.id.as_str().to_owned())
    })
    .flatten()
}

/// Serial of the innermost active frame (the target of a timer started now).
pub(crate) fn innermost_active_serial() -> Option<u64> {
    with_stack(|s| s.last().filter(|f| f.active).map(|f| f.serial)).flatten()
}

/// Sets `key` on the frame with `serial`, if it is still open on this thread (a timer's key).
pub(crate) fn set_on(serial: u64, key: &str, value: Value<'_>) {
    let outcome = with_stack(|stack| {
        stack
            .iter_mut()
            .rev()
            .find(|f| f.serial == serial)
            .map(|f| f.body.write(key, value, Op::Set))
    })
    .flatten();
    if let Some(outcome) = outcome {
        body::count(outcome);
    }
}

/// Sets `body.error` on the innermost active context (the macros' `Err` path in async fns).
pub(crate) fn record_error_innermost(message: String) {
    with_stack(|stack| {
        if let Some(f) = stack.last_mut().filter(|f| f.active) {
            f.body.write("error", Value::Str(&message), Op::Set);
        }
    });
}
