//! `#[ziggy::context]`'s recording options (`fields`, `args`, `skip`, `skip_all`, `err`, `ret`),
//! asserted on the captured events' bodies, for sync and async fns and methods.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bson::{Bson, Document, doc};
use ziggy::testing::capture;

ziggy::channels! {
    request { sql },
    job,
    quiet,
}

#[derive(serde::Serialize)]
struct User {
    name: String,
    age: u32,
}

/// Only `Debug`.
#[derive(Debug)]
struct Token(#[allow(dead_code)] u32);

/// Counts how often it is formatted, to show values are not formatted needlessly.
struct Counted;
static FORMATTED: AtomicUsize = AtomicUsize::new(0);
impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("Counted")
    }
}

/// An error type that is only `Debug`.
#[derive(Debug)]
struct DebugOnly {
    #[allow(dead_code)]
    code: u16,
}

/// An error type with both; the two formats differ.
#[derive(Debug)]
struct Both;
impl fmt::Display for Both {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("both, displayed")
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The body of the only event.
fn only_body(events: &[ziggy::Event]) -> &Document {
    assert_eq!(events.len(), 1, "{events:?}");
    &events[0].body
}

// ---- fields ----

#[ziggy::context(
    "request",
    fields(
        path = path,
        response.status = 200,
        "user agent" = "curl/8",
        len = path.len(),
        token = ?Token(7),
        shown = %format_args!("{path}!"),
    )
)]
fn with_fields(path: String) -> String {
    ziggy::set("in_body", true);
    path // not moved by `fields(path = path)`
}

#[test]
fn fields_are_set_at_entry_with_ident_dotted_and_string_keys() {
    let events = capture(|| assert_eq!(with_fields("/a".into()), "/a"));
    let body = only_body(&events);
    assert_eq!(body.get_str("path").unwrap(), "/a");
    assert_eq!(
        body.get_document("response").unwrap(),
        &doc! { "status": 200 }
    );
    assert_eq!(body.get_str("user agent").unwrap(), "curl/8");
    assert_eq!(body.get_i64("len").ok(), Some(2));
    assert_eq!(body.get_str("token").unwrap(), "Token(7)");
    assert_eq!(body.get_str("shown").unwrap(), "/a!");
    assert_eq!(body.get_bool("in_body").ok(), Some(true));
}

// ---- args, skip, skip_all ----

#[ziggy::context("request", args)]
#[allow(clippy::too_many_arguments)]
fn with_args(
    user: &User,
    token: Token,
    id: u64,
    tags: Vec<&str>,
    (x, y): (u8, i8),
    _: u8,
    r#type: &str,
    mut count: u32,
) -> u32 {
    count += u32::from(x)
        + id as u32
        + tags.len() as u32
        + y.unsigned_abs() as u32
        + r#type.len() as u32;
    let _ = (user, token);
    count
}

#[test]
fn args_records_serialize_as_structure_and_debug_only_as_string() {
    let user = User {
        name: "ann".into(),
        age: 41,
    };
    let events = capture(|| {
        with_args(&user, Token(3), 9, vec!["a", "b"], (1, -2), 0, "t", 5);
    });
    let body = only_body(&events);
    assert_eq!(
        body.get_document("user").unwrap(),
        &doc! { "name": "ann", "age": 41_i64 }
    );
    assert_eq!(body.get_str("token").unwrap(), "Token(3)");
    assert_eq!(body.get_i64("id").ok(), Some(9));
    assert_eq!(
        body.get_array("tags").unwrap(),
        &vec![Bson::from("a"), Bson::from("b")]
    );
    // A destructured parameter records each name it binds; `_` binds none.
    assert_eq!(body.get_i32("x").ok(), Some(1));
    assert_eq!(body.get_i32("y").ok(), Some(-2));
    assert_eq!(body.get_str("type").unwrap(), "t");
    // The value at entry.
    assert_eq!(body.get_i64("count").ok(), Some(5));
    assert_eq!(body.len(), 8, "{body}");
}

#[ziggy::context("request", args, skip(password, token))]
fn login(user: &str, password: &str, token: Token) -> bool {
    let _ = token;
    !user.is_empty() && !password.is_empty()
}

#[ziggy::context("request", skip_all, fields(user = user))]
fn login_quietly(user: &str, password: &str) -> bool {
    !user.is_empty() && !password.is_empty()
}

#[ziggy::context("request")]
fn no_options(user: &str) -> usize {
    user.len()
}

#[test]
fn skip_leaves_arguments_out_and_skip_all_or_no_option_records_none() {
    let events = capture(|| {
        assert!(login("ann", "secret", Token(1)));
        assert!(login_quietly("ann", "secret"));
        assert_eq!(no_options("ann"), 3);
    });
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].body, doc! { "user": "ann" });
    assert_eq!(events[1].body, doc! { "user": "ann" });
    assert_eq!(events[2].body, doc! {});
}

struct Service {
    calls: u32,
}

impl Service {
    /// `self` is never recorded by `args`.
    #[ziggy::context("request", args, fields(calls = self.calls))]
    fn bump(&mut self, by: u32) -> &mut u32 {
        self.calls += by;
        &mut self.calls
    }

    #[ziggy::context("request", args, err, ret)]
    fn checked(&mut self, limit: u32) -> Result<&mut u32, String> {
        if self.calls > limit {
            return Err(format!("{} calls over {limit}", self.calls));
        }
        Ok(&mut self.calls)
    }

    #[ziggy::context("request", args, skip(self), ret(Serialize))]
    fn into_calls(mut self, extra: u32) -> u32 {
        self.calls += extra;
        self.calls
    }
}

#[test]
fn methods_record_arguments_but_not_self() {
    let events = capture(|| {
        let mut svc = Service { calls: 1 };
        *svc.bump(2) += 10;
        assert!(svc.checked(100).is_ok());
        assert!(svc.checked(0).is_err());
        assert_eq!(svc.into_calls(1), 14);
    });
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].body, doc! { "by": 2_i64, "calls": 1_i64 });
    assert_eq!(events[1].body, doc! { "limit": 100_i64, "return": "13" });
    assert_eq!(
        events[2].body,
        doc! { "limit": 0_i64, "error": "13 calls over 0" }
    );
    assert_eq!(events[3].body, doc! { "extra": 1_i64, "return": 14_i64 });
}

#[ziggy::context("job", args)]
fn generic<T: fmt::Debug, U: serde::Serialize>(debug: T, structured: U) {}

#[test]
fn generic_arguments_use_the_bounds_they_have() {
    let events = capture(|| generic(Some(1), (1, "a")));
    assert_eq!(
        only_body(&events),
        &doc! { "debug": "Some(1)", "structured": [1, "a"] }
    );
}

// ---- err ----

#[ziggy::context("job", err)]
fn err_display(fail: bool) -> Result<u8, Both> {
    if fail { Err(Both) } else { Ok(1) }
}

#[ziggy::context("job", err(Display))]
fn err_display_explicit() -> Result<u8, Both> {
    Err(Both)
}

#[ziggy::context("job", err(Debug))]
fn err_debug() -> Result<u8, Both> {
    Err(Both)
}

/// Without `err`: `Display` when the error has it (unchanged) ...
#[ziggy::context("job")]
fn err_default_display() -> Result<u8, Both> {
    Err(Both)
}

/// ... and `Debug` when it has only that (it used to be dropped silently).
#[ziggy::context("job")]
fn err_default_debug() -> Result<u8, DebugOnly> {
    Err(DebugOnly { code: 503 })
}

#[ziggy::context("job")]
fn err_default_io() -> std::io::Result<()> {
    Err(std::io::Error::other("disk full"))
}

#[test]
fn err_records_display_debug_and_the_debug_fallback() {
    let events = capture(|| {
        assert!(err_display(false).is_ok());
        assert!(err_display(true).is_err());
        assert!(err_display_explicit().is_err());
        assert!(err_debug().is_err());
        assert!(err_default_display().is_err());
        assert!(err_default_debug().is_err());
        assert!(err_default_io().is_err());
    });
    let errors: Vec<_> = events
        .iter()
        .map(|e| e.body.get_str("error").ok())
        .collect();
    assert_eq!(
        errors,
        [
            None,
            Some("both, displayed"),
            Some("both, displayed"),
            Some("Both"),
            Some("both, displayed"),
            Some("DebugOnly { code: 503 }"),
            Some("disk full"),
        ]
    );
}

// ---- ret ----

#[ziggy::context("job", ret)]
fn ret_debug() -> Option<&'static str> {
    Some("x")
}

#[ziggy::context("job", ret(Display))]
fn ret_display() -> Both {
    Both
}

#[ziggy::context("job", ret(Serialize))]
fn ret_serialize() -> User {
    User {
        name: "bo".into(),
        age: 3,
    }
}

#[ziggy::context("job", ret(Serialize))]
fn ret_ok(fail: bool) -> Result<Vec<u8>, String> {
    if fail {
        return Err("no".into());
    }
    Ok(vec![1, 2])
}

#[ziggy::context("job", ret)]
fn ret_impl_trait(n: u32) -> impl Iterator<Item = u32> + fmt::Debug {
    0..n
}

#[test]
fn ret_records_the_value_or_the_ok_value() {
    let events = capture(|| {
        ret_debug();
        ret_display();
        ret_serialize();
        assert_eq!(ret_ok(false), Ok(vec![1, 2]));
        assert!(ret_ok(true).is_err());
        assert_eq!(ret_impl_trait(2).count(), 2);
    });
    let bodies: Vec<_> = events.iter().map(|e| e.body.clone()).collect();
    assert_eq!(
        bodies,
        [
            doc! { "return": "Some(\"x\")" },
            doc! { "return": "both, displayed" },
            doc! { "return": { "name": "bo", "age": 3_i64 } },
            doc! { "return": [1, 2] },
            doc! { "error": "no" },
            doc! { "return": "0..2" },
        ]
    );
}

// ---- timeit, async ----

#[ziggy::context("request.sql", args, ret, fields(db = "main"))]
#[ziggy::timeit("query_time")]
fn timed_query(sql: &str) -> usize {
    sql.len()
}

#[ziggy::timeit]
#[ziggy::context("request.sql", args, err)]
fn timed_above(sql: &str) -> Result<(), String> {
    Err(format!("bad {sql}"))
}

#[test]
fn options_compose_with_timeit_in_either_order() {
    let events = capture(|| {
        timed_query("SELECT 1");
        let _ = timed_above("x");
    });
    assert_eq!(events.len(), 2);
    let body = &events[0].body;
    assert_eq!(body.get_str("sql").unwrap(), "SELECT 1");
    assert_eq!(body.get_str("db").unwrap(), "main");
    assert_eq!(body.get_str("return").unwrap(), "8");
    assert!(body.get_f64("query_time").is_ok());
    let body = &events[1].body;
    assert_eq!(body.get_str("error").unwrap(), "bad x");
    assert!(body.get_f64("timed_above_time").is_ok());
}

#[ziggy::context("request", args, skip(secret), fields(kind = "async"), err, ret)]
async fn async_handle(n: u32, secret: String, who: User) -> Result<u32, Both> {
    let _ = (secret, who);
    std::future::ready(()).await;
    ziggy::set("inside", true);
    if n == 0 { Err(Both) } else { Ok(n * 2) }
}

#[ziggy::context("request", err(Debug), ret(Display))]
#[ziggy::timeit]
async fn async_debug_err(n: u32) -> Result<u32, DebugOnly> {
    if n == 0 {
        Err(DebugOnly { code: 1 })
    } else {
        Ok(n)
    }
}

#[ziggy::context("request")]
async fn async_default_debug() -> Result<(), DebugOnly> {
    Err(DebugOnly { code: 2 })
}

#[ziggy::context("job", args, ret)]
async fn async_impl_trait(n: u8) -> impl fmt::Debug {
    n + 1
}

impl Service {
    #[ziggy::context("request", args, fields(calls = self.calls), ret)]
    async fn async_method(&self, by: u32) -> u32 {
        self.calls + by
    }
}

#[test]
fn async_fns_record_arguments_fields_errors_and_returns() {
    let who = || User {
        name: "al".into(),
        age: 9,
    };
    let events = capture(|| {
        assert_eq!(block_on(async_handle(2, "s".into(), who())).ok(), Some(4));
        assert!(block_on(async_handle(0, "s".into(), who())).is_err());
        assert_eq!(block_on(async_debug_err(3)).unwrap(), 3);
        assert!(block_on(async_debug_err(0)).is_err());
        assert!(block_on(async_default_debug()).is_err());
        assert_eq!(format!("{:?}", block_on(async_impl_trait(1))), "2");
        assert_eq!(block_on(Service { calls: 1 }.async_method(2)), 3);
    });
    assert_eq!(events.len(), 7);
    let who = doc! { "name": "al", "age": 9_i64 };
    assert_eq!(
        events[0].body,
        doc! { "n": 2_i64, "who": who.clone(), "kind": "async", "inside": true, "return": "4" }
    );
    assert_eq!(
        events[1].body,
        doc! { "n": 0_i64, "who": who, "kind": "async", "inside": true, "error": "both, displayed" }
    );
    assert_eq!(events[2].body.get_str("return").unwrap(), "3");
    assert!(events[2].body.get_f64("async_debug_err_time").is_ok());
    assert_eq!(
        events[3].body.get_str("error").unwrap(),
        "DebugOnly { code: 1 }"
    );
    assert!(!events[3].body.contains_key("return"));
    assert_eq!(events[4].body, doc! { "error": "DebugOnly { code: 2 }" });
    assert_eq!(events[5].body, doc! { "n": 1, "return": "2" });
    assert_eq!(
        events[6].body,
        doc! { "by": 2_i64, "calls": 1_i64, "return": "3" }
    );
}

// ---- sampling and the disabled path ----

#[ziggy::context("quiet", sample = ("quiet", 0.0), args, fields(f = ?Counted), ret)]
fn sampled_out(c: Counted) -> Counted {
    c
}

#[ziggy::context("quiet", sample = ("quiet", 0.0), args, fields(f = ?Counted), err(Debug), ret)]
async fn sampled_out_async(c: Counted) -> Result<Counted, Counted> {
    Err(c)
}

#[ziggy::context("quiet", args, fields(f = ?Counted), ret)]
fn unsampled(c: Counted) -> Counted {
    c
}

#[test]
fn nothing_is_recorded_nor_formatted_in_a_sampled_out_context() {
    FORMATTED.store(0, Ordering::SeqCst);
    let events = capture(|| {
        sampled_out(Counted);
        let _ = block_on(sampled_out_async(Counted));
    });
    assert!(events.is_empty());
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 0);
    // When kept: the argument, the field and the returned value, each formatted once.
    let events = capture(|| {
        unsampled(Counted);
    });
    assert_eq!(
        only_body(&events),
        &doc! { "c": "Counted", "f": "Counted", "return": "Counted" }
    );
}
