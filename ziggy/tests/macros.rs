//! `#[ziggy::context]` and `#[ziggy::timeit]` on every fn shape, asserted through the test sink.

use std::collections::HashMap;
use std::fmt::Display;

use ziggy::testing::{Capture, capture, seed_rng};

ziggy::channels! {
    request { sql, memcache, handler },
    job,
    "2xx" { r#type },
}

struct Request {
    id: String,
    path: &'static str,
}

/// Doc comments and attributes survive expansion.
#[ziggy::context("request", id = req.id.clone())]
#[inline(never)]
pub fn handle(req: &Request) -> u16 {
    ziggy::set("path", req.path);
    let rows = query("SELECT 1").unwrap();
    for _ in 0..4 {
        cached("k");
    }
    ziggy::set("rows", rows);
    200
}

#[ziggy::context("request.sql")]
#[ziggy::timeit("query_time")]
fn query(sql: &str) -> Result<u32, String> {
    ziggy::set("sql", sql);
    if sql.is_empty() {
        return Err("empty query".to_owned());
    }
    let n: u32 = "1"
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(n)
}

#[ziggy::context("request.memcache", sample = ("request", 0.25))]
fn cached(key: &str) {
    ziggy::set("key", key);
}

#[ziggy::context("job")]
fn parse_number(s: &str) -> Result<i64, std::num::ParseIntError> {
    let n: i64 = s.parse()?;
    Ok(n * 2)
}

#[ziggy::timeit]
fn helper() -> u8 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    7
}

#[ziggy::timeit]
#[ziggy::context("job")]
fn timed_job() {
    ziggy::set("x", helper());
}

struct Service {
    calls: u32,
}

impl Service {
    #[ziggy::context("request.handler")]
    fn by_ref(&self) -> u32 {
        ziggy::set("calls", self.calls);
        self.calls
    }

    #[ziggy::context("request.handler")]
    fn by_mut(&mut self) {
        self.calls += 1;
        ziggy::set("calls", self.calls);
    }

    #[ziggy::context("request.handler")]
    fn by_value(self) -> u32 {
        self.calls
    }

    /// A `Result` holding a borrow of `self`.
    #[ziggy::context("request.handler")]
    fn calls_mut(&mut self, limit: u32) -> Result<&mut u32, String> {
        if self.calls > limit {
            return Err(format!("{} calls over {limit}", self.calls));
        }
        ziggy::set("limit", limit);
        Ok(&mut self.calls)
    }

    #[ziggy::context("request.handler")]
    fn borrowed_name(&self) -> &str {
        "svc"
    }
}

trait Greeter {
    fn greet(&self, who: &str) -> String;
}

impl Greeter for Service {
    #[ziggy::context("request.handler")]
    fn greet(&self, who: &str) -> String {
        ziggy::set("who", who);
        format!("hi {who}")
    }
}

#[ziggy::context("job")]
fn generic<T, U>(t: T, u: U) -> String
where
    T: Display,
    U: Into<i64>,
{
    ziggy::set("u", u.into());
    t.to_string()
}

#[ziggy::context("job")]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    ziggy::set("limit", limit);
    (0..limit).filter(|n| n % 2 == 0)
}

#[ziggy::context("job")]
unsafe fn raw_read(p: *const u32) -> u32 {
    unsafe { *p }
}

#[ziggy::context("job")]
fn explodes() {
    ziggy::set("before", true);
    panic!("kaboom");
}

#[ziggy::context("2xx.type")]
fn odd_names() {}

#[ziggy::context("request")]
async fn async_handle(n: u32) -> u32 {
    ziggy::set("n", n);
    let mut total = 0;
    for i in 0..n {
        tokio::task::yield_now().await;
        total += async_query(i).await.unwrap_or(0);
    }
    ziggy::set("total", total);
    total
}

#[ziggy::context("request.sql")]
#[ziggy::timeit]
async fn async_query(i: u32) -> Result<u32, String> {
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ziggy::set("i", i);
    if i == 2 {
        return Err(format!("row {i} locked"));
    }
    Ok(i)
}

impl Service {
    #[ziggy::context("request.handler")]
    async fn async_method(&self) -> u32 {
        tokio::task::yield_now().await;
        ziggy::set("calls", self.calls);
        self.calls
    }
}

fn by_channel(events: &[ziggy::Event]) -> HashMap<&str, Vec<&ziggy::Event>> {
    let mut map: HashMap<&str, Vec<&ziggy::Event>> = HashMap::new();
    for e in events {
        map.entry(e.channel.as_str()).or_default().push(e);
    }
    map
}

#[test]
fn request_with_subcontexts_shares_ids_and_records_timers() {
    let req = Request {
        id: "req-1".into(),
        path: "/users",
    };
    let events = capture(|| assert_eq!(handle(&req), 200));
    let by = by_channel(&events);
    let request = by["request"][0];
    assert_eq!(request.id, "req-1");
    assert_eq!(request.body.get_str("path").unwrap(), "/users");
    assert_eq!(
        request
            .body
            .get_i64("rows")
            .unwrap_or_else(|_| request.body.get_i32("rows").unwrap() as i64),
        1
    );
    let sql = by["request.sql"][0];
    assert_eq!(sql.id, "req-1");
    assert!(sql.body.get_f64("query_time").unwrap() > 0.0);
    assert!(!sql.body.contains_key("error"));
    // memcache sampled all-or-none: 0 or 4 events with this id.
    let memcache = by.get("request.memcache").map_or(0, Vec::len);
    assert!(memcache == 0 || memcache == 4, "{memcache}");
}

#[test]
fn sampling_is_all_or_none_per_request_through_the_macro() {
    seed_rng(3);
    let events = capture(|| {
        for i in 0..4_000 {
            handle(&Request {
                id: format!("{i:032x}"),
                path: "/",
            });
        }
    });
    let mut per: HashMap<&str, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.channel == "request.memcache") {
        assert_eq!(e.sample_rate, Some(0.25));
        *per.entry(e.id.as_str()).or_default() += 1;
    }
    assert!(per.values().all(|&n| n == 4));
    let kept = per.len() as f64 / 4_000.0;
    assert!((0.2..=0.3).contains(&kept), "{kept}");
}

#[test]
fn err_and_question_mark_set_body_error() {
    let events = capture(|| {
        assert!(query("").is_err());
        assert!(parse_number("nope").is_err());
        assert_eq!(parse_number("21"), Ok(42));
    });
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].body.get_str("error").unwrap(), "empty query");
    assert!(events[0].body.get_f64("query_time").is_ok());
    assert_eq!(
        events[1].body.get_str("error").unwrap(),
        "invalid digit found in string"
    );
    assert!(!events[2].body.contains_key("error"));
}

#[test]
fn timeit_composes_in_either_order_and_times_into_the_caller() {
    let events = capture(timed_job);
    assert_eq!(events.len(), 1);
    let body = &events[0].body;
    assert_eq!(body.get_i32("x").ok(), Some(7));
    assert!(body.get_f64("helper_time").unwrap() >= 0.002);
    assert!(body.get_f64("timed_job_time").unwrap() >= body.get_f64("helper_time").unwrap());
}

#[test]
fn methods_trait_impls_generics_impl_trait_unsafe() {
    let events = capture(|| {
        let mut svc = Service { calls: 1 };
        assert_eq!(svc.by_ref(), 1);
        svc.by_mut();
        assert_eq!(svc.borrowed_name(), "svc");
        *svc.calls_mut(10).unwrap() += 1;
        assert_eq!(svc.calls_mut(0), Err("3 calls over 0".into()));
        svc.calls -= 1;
        assert_eq!(svc.greet("bo"), "hi bo");
        assert_eq!(svc.by_value(), 2);
        assert_eq!(generic(5, 6u8), "5");
        assert_eq!(evens(5).collect::<Vec<_>>(), [0, 2, 4]);
        let x = 9u32;
        assert_eq!(unsafe { raw_read(&x) }, 9);
        odd_names();
    });
    let channels: Vec<_> = events.iter().map(|e| e.channel.as_str()).collect();
    assert_eq!(
        channels,
        [
            "request.handler",
            "request.handler",
            "request.handler",
            "request.handler",
            "request.handler",
            "request.handler",
            "request.handler",
            "job",
            "job",
            "job",
            "2xx.type"
        ]
    );
    assert_eq!(events[1].body.get_i64("calls").ok(), Some(2));
    // `&mut self` → `Result<&mut u32, _>`: Ok records the body, Err records body.error.
    assert_eq!(events[3].body.get_i64("limit").ok(), Some(10));
    assert!(events[3].body.get("error").is_none());
    assert_eq!(events[4].body.get_str("error").unwrap(), "3 calls over 0");
    assert_eq!(events[5].body.get_str("who").unwrap(), "bo");
    assert_eq!(events[7].body.get_i64("u").ok(), Some(6));
    assert_eq!(events[8].body.get_i64("limit").ok(), Some(5));
}

#[test]
fn panic_in_an_annotated_fn_sets_error() {
    let capture = Capture::new();
    let result = std::panic::catch_unwind(|| capture.run(explodes));
    assert!(result.is_err());
    let events = capture.events();
    assert_eq!(events.len(), 1);
    assert!(events[0].body.get_str("error").unwrap().contains("kaboom"));
    assert_eq!(events[0].body.get_bool("before").ok(), Some(true));
}

#[test]
fn async_fns_follow_their_future_across_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_time()
        .build()
        .unwrap();
    let capture = Capture::new();
    let totals = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            tasks.push(tokio::spawn(capture.wrap(async_handle(4))));
        }
        let svc = Service { calls: 3 };
        assert_eq!(capture.wrap(svc.async_method()).await, 3);
        let mut totals = Vec::new();
        for t in tasks {
            totals.push(t.await.unwrap());
        }
        totals
    });
    assert!(totals.iter().all(|&t| t == 4)); // 0 + 1 + (2 fails → 0) + 3
    let events = capture.events();
    let by = by_channel(&events);
    assert_eq!(by["request"].len(), 20);
    assert_eq!(by["request.sql"].len(), 80);
    assert_eq!(by["request.handler"].len(), 1);
    let ids: std::collections::HashSet<_> = by["request"].iter().map(|e| &e.id).collect();
    for sql in &by["request.sql"] {
        assert!(ids.contains(&sql.id));
        assert!(sql.body.get_f64("async_query_time").unwrap() >= 0.001);
        let i = sql.body.get_i64("i").unwrap();
        assert_eq!(
            sql.body.get_str("error").ok(),
            (i == 2).then_some("row 2 locked")
        );
    }
    for r in &by["request"] {
        assert_eq!(r.body.get_i64("total").ok(), Some(4));
    }
}

#[test]
fn catalogue_lists_declared_channels_and_instrumented_fns() {
    let catalogue = ziggy::channels();
    let names: Vec<_> = catalogue.iter().map(|c| c.name).collect();
    for expected in [
        "2xx",
        "2xx.type",
        "job",
        "request",
        "request.handler",
        "request.memcache",
        "request.sql",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let sql = catalogue.iter().find(|c| c.name == "request.sql").unwrap();
    let fns: Vec<_> = sql.functions.iter().map(|f| f.function()).collect();
    assert!(fns.iter().any(|f| f.ends_with("::query")), "{fns:?}");
    assert!(fns.iter().any(|f| f.ends_with("::async_query")), "{fns:?}");
    let memcache = catalogue
        .iter()
        .find(|c| c.name == "request.memcache")
        .unwrap();
    assert_eq!(memcache.functions[0].sample(), Some(("request", 0.25)));
    assert!(memcache.functions[0].file().ends_with("macros.rs"));
}

#[test]
fn unconfigured_calls_emit_nothing() {
    // No capture, no transport: the annotated fns run as plain fns.
    let before = ziggy::stats().emitted;
    assert_eq!(parse_number("2"), Ok(4));
    let _ = ziggy::current_id();
    assert!(ziggy::stats().emitted >= before); // other tests may emit concurrently; nothing panics
}
