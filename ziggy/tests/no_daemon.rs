//! With nobody listening, emitting never blocks, the queue stays bounded and drops are counted;
//! when a daemon appears, the drops are reported to it as `ziggy.dropped` events.

mod common;

use std::time::{Duration, Instant};

#[test]
fn a_million_events_without_a_peer_return_promptly_and_are_accounted() {
    // A port nobody listens on: bind a socket to get a free port, then close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ziggy::TransportConfig::default()
        .with_queue_capacity(10_000)
        .with_drop_report_interval(Duration::from_millis(200));
    ziggy::configure_with(&format!("127.0.0.1:{port}"), config).unwrap();

    let started = Instant::now();
    let mut max_queued = 0;
    for i in 0..1_000_000u32 {
        let _ctx = ziggy::Context::new("request").enter();
        ziggy::set("i", i);
        if i % 10_000 == 0 {
            max_queued = max_queued.max(ziggy::stats().queued);
        }
    }
    let elapsed = started.elapsed();
    let stats = ziggy::stats();
    assert_eq!(stats.emitted, 1_000_000);
    // The queue, plus the one frame the sender holds while ZeroMQ refuses it (64 KiB of events).
    assert!(max_queued <= 10_000 + 2_000, "queue bounded: {max_queued}");
    assert!(stats.dropped > 0);
    assert_eq!(
        stats.sent + stats.dropped + stats.queued,
        stats.emitted,
        "{stats:?}"
    );
    // "Promptly": generous bound against a blocked app thread (which would never finish).
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");

    // A daemon appears on that port: what was dropped while nobody listened is reported to it.
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let dropped = ziggy::stats().dropped;
    let (mut reported, mut app_events) = (0i64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reported < dropped as i64 && Instant::now() < deadline {
        if pull.poll(zmq::POLLIN, 100).unwrap() == 0 {
            continue;
        }
        for event in common::split_frame(&pull.recv_bytes(0).unwrap()) {
            if event.get_str("type").unwrap() != "ziggy.dropped" {
                app_events += 1;
                continue;
            }
            let body = event.get_document("body").unwrap();
            reported += body.get_i64("dropped").unwrap();
            let total = body.get_i64("dropped_total").unwrap();
            assert_eq!(total, reported, "totals add up: {body}");
        }
    }
    assert_eq!(reported, dropped as i64, "every drop reported");
    assert!(app_events > 0, "queued events were delivered too");

    // Shutdown gives up on what cannot be delivered, and counts it.
    let begun = Instant::now();
    ziggy::shutdown();
    assert!(begun.elapsed() < Duration::from_secs(30));
    let after = ziggy::stats();
    assert_eq!(after.queued, 0);
    assert_eq!(after.sent + after.dropped, after.emitted, "{after:?}");
}
