//! The runtime's contract (docs/PROTOCOL.md §1-2), through the in-process test sink.

use std::collections::HashMap;

use bson::{Bson, doc};
use ziggy::testing::{Capture, capture, seed_rng};
use ziggy::{Context, Instrument};

#[test]
fn one_event_per_context_with_all_fields() {
    let events = capture(|| {
        let _ctx = Context::new("request").enter();
        ziggy::set("response.status", 200);
        ziggy::set("response.size", 512i64);
        ziggy::set("ok", true);
    });
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.channel, "request");
    assert_eq!(e.id.len(), 32);
    assert_eq!(e.pid, std::process::id() as i32);
    assert!(!e.host.is_empty());
    assert!(e.end >= e.start && e.start > 1.6e9);
    assert_eq!(e.sample_rate, None);
    assert_eq!(
        e.body,
        doc! { "response": { "status": 200, "size": 512i64 }, "ok": true }
    );
}

#[test]
fn dotted_keys_merge_add_append_and_conflicts() {
    let before = ziggy::stats().conflicts;
    let events = capture(|| {
        let _ctx = Context::new("job").enter();
        ziggy::set("a.b", 1);
        ziggy::set("a.c", 2);
        ziggy::add("count", 2);
        ziggy::add("count", 3);
        ziggy::add("secs", 0.5);
        ziggy::add("missing.n", 7);
        ziggy::append("list", "x");
        ziggy::append("list", 2);
        ziggy::append("list", "z");
        ziggy::set("codes.200", 9);
        ziggy::set("n", 1);
        ziggy::set("n.deeper", 2); // conflict: the later write wins
        ziggy::append("count2", 1);
        ziggy::add("count2", 1); // conflict: an array where a number is needed
        ziggy::add("nonnum", "text"); // not a number: ignored
    });
    assert_eq!(
        events[0].body,
        doc! {
            "a": { "b": 1, "c": 2 },
            "count": 5,
            "secs": 0.5,
            "missing": { "n": 7 },
            "list": ["x", 2, "z"],
            "codes": { "200": 9 },
            "n": { "deeper": 2 },
            "count2": 1,
        }
    );
    assert!(ziggy::stats().conflicts >= before + 2);
}

#[test]
fn serde_values() {
    #[derive(serde::Serialize)]
    struct User {
        name: &'static str,
        roles: Vec<&'static str>,
    }
    let events = capture(|| {
        let _ctx = Context::new("request").enter();
        ziggy::set(
            "user",
            User {
                name: "ann",
                roles: vec!["admin"],
            },
        );
        ziggy::set("opt", None::<i32>);
    });
    assert_eq!(
        events[0].body,
        doc! { "user": { "name": "ann", "roles": ["admin"] }, "opt": Bson::Null }
    );
}

#[test]
fn writes_outside_a_context_are_no_ops() {
    let events = capture(|| {
        ziggy::set("a", 1);
        ziggy::add("b", 1);
        ziggy::append("c", 1);
        let _t = ziggy::timeit("t");
    });
    assert!(events.is_empty());
}

#[test]
fn nested_contexts_share_ids_and_keep_bodies_apart() {
    let events = capture(|| {
        let _r = Context::new("request").enter();
        ziggy::set("in_request", 1);
        {
            let _s = Context::new("request.sql").enter();
            ziggy::set("query", "SELECT 1");
            let _deeper = Context::new("request.sql.read").enter();
            ziggy::set("rows", 3);
        }
        {
            let _other = Context::new("audit").enter(); // not a descendant: its own id
        }
        {
            let _own = Context::new("request.cache").id("given-id").enter();
        }
        ziggy::set("after", 2);
    });
    let by: HashMap<_, _> = events.iter().map(|e| (e.channel.as_str(), e)).collect();
    let request = by["request"];
    assert_eq!(by["request.sql"].id, request.id);
    assert_eq!(by["request.sql.read"].id, request.id);
    assert_ne!(by["audit"].id, request.id);
    assert_eq!(by["request.cache"].id, "given-id");
    assert_eq!(request.body, doc! { "in_request": 1, "after": 2 });
    assert_eq!(by["request.sql"].body, doc! { "query": "SELECT 1" });
    assert_eq!(by["request.sql.read"].body, doc! { "rows": 3 });
    // Events close innermost first.
    let order: Vec<_> = events.iter().map(|e| e.channel.as_str()).collect();
    assert_eq!(
        order,
        [
            "request.sql.read",
            "request.sql",
            "audit",
            "request.cache",
            "request"
        ]
    );
}

#[test]
fn same_channel_nested_twice_is_two_real_events() {
    let events = capture(|| {
        let _outer = Context::new("request").enter();
        ziggy::set("level", 1);
        {
            let _inner = Context::new("request").enter();
            ziggy::set("level", 2);
        }
        ziggy::set("after_inner", true);
    });
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].body, doc! { "level": 2 });
    assert_eq!(events[1].body, doc! { "level": 1, "after_inner": true });
}

#[test]
fn guards_dropped_out_of_order_still_emit_both() {
    let events = capture(|| {
        let outer = Context::new("request").enter();
        let inner = Context::new("request.sql").enter();
        drop(outer);
        ziggy::set("still_inner", 1);
        drop(inner);
    });
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].channel, "request.sql");
    assert_eq!(events[1].body, doc! { "still_inner": 1 });
}

#[test]
fn invalid_channel_is_inert_and_counted() {
    let before = ziggy::stats().invalid;
    let events = capture(|| {
        let _bad = Context::new("../etc").enter();
        ziggy::set("x", 1);
        let _bad2 = Context::new("Request").enter();
    });
    assert!(events.is_empty());
    assert!(ziggy::stats().invalid >= before + 2);
}

#[test]
fn keys_with_a_nul_or_empty_are_refused_and_counted_by_every_writer() {
    let before = ziggy::stats().invalid;
    let events = capture(|| {
        let _ctx = Context::new("request").enter();
        ziggy::set("a\0b", 1);
        ziggy::set("", 1);
        ziggy::append("tags.\0", "x");
        ziggy::add("n\0", 1);
        let _t = ziggy::timeit("time\0d");
        ziggy::set("kept", true);
    });
    assert_eq!(events.len(), 1);
    // The event is still well-formed BSON (capture decoded it) and holds only the good write.
    assert_eq!(events[0].body, bson::doc! { "kept": true });
    assert!(ziggy::stats().invalid >= before + 5);
}

#[test]
fn timeit_records_seconds_into_the_context_it_started_in() {
    let events = capture(|| {
        let _ctx = Context::new("request").enter();
        let t = ziggy::timeit("request_time");
        std::thread::sleep(std::time::Duration::from_millis(20));
        {
            let _sql = Context::new("request.sql").enter();
            drop(t); // stops while a child is open: still recorded on `request`
        }
    });
    let request = events.iter().find(|e| e.channel == "request").unwrap();
    let secs = request.body.get_f64("request_time").unwrap();
    assert!((0.02..5.0).contains(&secs), "{secs}");
    let sql = events.iter().find(|e| e.channel == "request.sql").unwrap();
    assert!(sql.body.is_empty());
}

#[test]
fn panic_unwinding_a_context_emits_with_error() {
    let capture = Capture::new();
    let result = std::panic::catch_unwind(|| {
        capture.run(|| {
            let _ctx = Context::new("request").enter();
            ziggy::set("step", 1);
            let _sql = Context::new("request.sql").enter();
            panic!("database on fire");
        })
    });
    assert!(result.is_err());
    let events = capture.events();
    assert_eq!(events.len(), 2);
    for e in &events {
        let error = e.body.get_str("error").unwrap();
        assert!(error.contains("database on fire"), "{error}");
    }
    assert_eq!(events[1].body.get_i32("step").ok(), Some(1));
}

#[test]
fn sampling_with_ancestor_target_is_all_or_none_per_request_and_near_rate() {
    seed_rng(42);
    let events = capture(|| {
        for _ in 0..20_000 {
            let _r = Context::new("request").enter();
            for _ in 0..3 {
                let _m = Context::new("request.memcache")
                    .sample("request", 0.25)
                    .enter();
                ziggy::set("k", 1);
            }
        }
    });
    let mut per_request: HashMap<String, usize> = HashMap::new();
    let mut requests = 0;
    for e in &events {
        match e.channel.as_str() {
            "request" => {
                requests += 1;
                assert_eq!(e.sample_rate, None);
            }
            "request.memcache" => {
                assert_eq!(e.sample_rate, Some(0.25));
                *per_request.entry(e.id.clone()).or_default() += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(requests, 20_000);
    assert!(
        per_request.values().all(|&n| n == 3),
        "all or none per request"
    );
    let kept = per_request.len() as f64 / 20_000.0;
    assert!((0.22..=0.28).contains(&kept), "kept {kept}");
}

#[test]
fn sampling_on_self_and_unsampled_parent_silences_subtree() {
    seed_rng(7);
    let events = capture(|| {
        for _ in 0..20_000 {
            let _r = Context::new("request").sample("request", 0.25).enter();
            ziggy::set("r", 1);
            let _s = Context::new("request.sql").enter();
            ziggy::set("s", 1);
        }
    });
    let requests = events.iter().filter(|e| e.channel == "request").count();
    let sqls: Vec<_> = events
        .iter()
        .filter(|e| e.channel == "request.sql")
        .collect();
    assert_eq!(
        requests,
        sqls.len(),
        "a sub-context lives only under a kept parent"
    );
    let kept = requests as f64 / 20_000.0;
    assert!((0.22..=0.28).contains(&kept), "kept {kept}");
    // Deterministic: the same seed gives the same count.
    seed_rng(7);
    let again = capture(|| {
        for _ in 0..20_000 {
            let _r = Context::new("request").sample("request", 0.25).enter();
        }
    });
    assert_eq!(again.len(), requests);
}

#[test]
fn two_processes_agree_on_a_request_id() {
    // The decision depends only on (request id, channel): recomputing it elsewhere agrees.
    let decide = || {
        capture(|| {
            let _r = Context::new("request")
                .id("0123456789abcdef0123456789abcdef")
                .enter();
            let _m = Context::new("request.memcache")
                .sample("request", 0.5)
                .enter();
        })
        .len()
    };
    let first = decide();
    for _ in 0..10 {
        assert_eq!(decide(), first);
    }
}

#[test]
fn threads_have_their_own_stacks() {
    let capture = Capture::new();
    std::thread::scope(|scope| {
        for t in 0..2 {
            let capture = &capture;
            scope.spawn(move || {
                capture.run(|| {
                    for i in 0..500 {
                        let _ctx = Context::new("request").enter();
                        ziggy::set("thread", t);
                        ziggy::set("i", i);
                        std::thread::yield_now();
                        let _sql = Context::new("request.sql").enter();
                        ziggy::set("thread", t);
                    }
                });
            });
        }
    });
    let events = capture.events();
    assert_eq!(events.len(), 2_000);
    let requests: HashMap<_, _> = events
        .iter()
        .filter(|e| e.channel == "request")
        .map(|e| (e.id.clone(), e.body.get_i32("thread").unwrap()))
        .collect();
    assert_eq!(requests.len(), 1_000);
    for e in events.iter().filter(|e| e.channel == "request.sql") {
        assert_eq!(requests[&e.id], e.body.get_i32("thread").unwrap());
    }
}

#[test]
fn async_contexts_follow_tasks_across_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let capture = Capture::new();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..50 {
            let fut = capture.wrap(
                async move {
                    ziggy::set("task", task);
                    for step in 0..5 {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        tokio::task::yield_now().await;
                        ziggy::append("steps", step);
                        async {
                            ziggy::set("task", task);
                            tokio::task::yield_now().await;
                        }
                        .in_context(Context::new("request.sql"))
                        .await;
                    }
                }
                .in_context(Context::new("request")),
            );
            tasks.push(tokio::spawn(fut));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let events = capture.events();
    assert_eq!(events.len(), 50 * 6);
    let requests: HashMap<_, _> = events
        .iter()
        .filter(|e| e.channel == "request")
        .map(|e| (e.id.clone(), e.body.clone()))
        .collect();
    assert_eq!(requests.len(), 50);
    for body in requests.values() {
        assert_eq!(body.get_array("steps").unwrap().len(), 5);
    }
    for e in events.iter().filter(|e| e.channel == "request.sql") {
        assert_eq!(
            requests[&e.id].get_i32("task").ok(),
            e.body.get_i32("task").ok()
        );
    }
}

#[test]
fn dropped_future_emits_cancelled() {
    let capture = Capture::new();
    capture.run(|| {
        let fut = async { std::future::pending::<()>().await }.in_context(Context::new("job"));
        let mut fut = Box::pin(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    });
    let events = capture.events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0]
            .body
            .get_str("error")
            .unwrap()
            .starts_with("cancelled")
    );
}

#[test]
fn ids_from_a_seeded_rng_repeat() {
    seed_rng(1);
    let a = capture(|| drop(Context::new("x").enter()));
    seed_rng(1);
    let b = capture(|| drop(Context::new("x").enter()));
    assert_eq!(a[0].id[8..], b[0].id[8..]);
}

#[test]
fn a_panicking_captured_future_restores_the_outer_capture() {
    let outer = Capture::new();
    let inner = Capture::new();
    outer.run(|| {
        let mut fut = Box::pin(inner.wrap(async { panic!("inside the wrapped future") }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = fut.as_mut().poll(&mut cx);
        }));
        assert!(polled.is_err());
        // Opened after the panic: it belongs to `outer` again, not to `inner`.
        drop(Context::new("after").enter());
    });
    let outer_channels: Vec<_> = outer.events().into_iter().map(|e| e.channel).collect();
    assert_eq!(outer_channels, ["after"]);
    assert!(inner.events().is_empty());
}

#[test]
fn an_event_too_large_for_a_daemon_becomes_an_error_event() {
    let before = ziggy::stats().invalid;
    let events = ziggy::testing::capture(|| {
        let _ctx = ziggy::Context::new("request").enter();
        let chunk = "x".repeat(1 << 20);
        for i in 0..20 {
            ziggy::set(&format!("k{i}"), &chunk);
        }
    });
    assert_eq!(events.len(), 1);
    let error = events[0].body.get_str("error").unwrap();
    assert!(
        error.contains("over the 16777216 a daemon accepts"),
        "{error}"
    );
    assert!(ziggy::stats().invalid > before);
}

/// A value whose `Serialize` itself calls ziggy: both writes land.
#[test]
fn a_serialize_impl_that_writes_to_ziggy_loses_nothing() {
    struct Chatty;
    impl serde::Serialize for Chatty {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ziggy::set("inner", 1);
            s.serialize_str("outer value")
        }
    }
    let events = ziggy::testing::capture(|| {
        let _ctx = ziggy::Context::new("request").enter();
        ziggy::set("outer", Chatty);
    });
    assert_eq!(events[0].body.get_i32("inner").ok(), Some(1));
    assert_eq!(events[0].body.get_str("outer").ok(), Some("outer value"));
}
