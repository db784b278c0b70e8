//! With nobody listening, emitting never blocks, the queue stays bounded and drops are counted.

use std::time::{Duration, Instant};

#[test]
fn a_million_events_without_a_peer_return_promptly_and_are_accounted() {
    // A port nobody listens on: bind a socket to get a free port, then close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ziggy::TransportConfig {
        queue_capacity: 10_000,
        ..Default::default()
    };
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

    // Shutdown gives up on what cannot be delivered, and counts it.
    let begun = Instant::now();
    ziggy::shutdown();
    assert!(begun.elapsed() < Duration::from_secs(30));
    let after = ziggy::stats();
    assert_eq!(after.queued, 0);
    assert_eq!(after.sent + after.dropped, after.emitted, "{after:?}");
}
