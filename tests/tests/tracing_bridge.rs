//! The `tracing` bridge: spans become events with shared ids, tracing events `.log` sub-events,
//! across threads, shipped over real ZeroMQ like any ziggy event.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

#[tracing::instrument(fields(rows))]
fn query(sql: &str) -> u32 {
    tracing::Span::current().record("rows", 3);
    tracing::debug!(sql, "running");
    3
}

#[tracing::instrument]
fn handle(path: &str) -> u32 {
    let worker = tracing::Span::current();
    std::thread::scope(|s| {
        s.spawn(|| worker.in_scope(|| query("SELECT 1")))
            .join()
            .unwrap()
    })
}

#[test]
fn spans_and_events_through_a_real_socket() {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    pull.set_rcvtimeo(5_000).unwrap();
    ziggy::configure(&pull.get_last_endpoint().unwrap().unwrap()).unwrap();
    let subscriber = tracing_subscriber::registry().with(ziggy::tracing_bridge::ZiggyLayer::new());
    // Global, so the worker thread reports to it too.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    for _ in 0..3 {
        handle("/users");
    }
    tracing::warn!("outside any span");
    assert!(ziggy::flush(Duration::from_secs(5)));
    let mut events = Vec::new();
    while events.len() < 10 {
        let Ok(frame) = pull.recv_bytes(0) else {
            panic!(
                "only {:?}",
                events
                    .iter()
                    .map(|e: &ziggy::Event| e.channel.clone())
                    .collect::<Vec<_>>()
            )
        };
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            events.push(ziggy::Event::from_slice(&rest[..len]).unwrap());
            rest = &rest[len..];
        }
    }
    let channels: Vec<_> = events.iter().map(|e| e.channel.as_str()).collect();
    assert_eq!(channels.iter().filter(|c| **c == "handle").count(), 3);
    assert_eq!(channels.iter().filter(|c| **c == "handle.query").count(), 3);
    assert_eq!(
        channels
            .iter()
            .filter(|c| **c == "handle.query.log")
            .count(),
        3
    );
    assert_eq!(channels.last(), Some(&"log"));
    for q in events.iter().filter(|e| e.channel == "handle.query") {
        assert!(
            events.iter().any(|h| h.channel == "handle" && h.id == q.id),
            "sub-span shares its root's id"
        );
        assert_eq!(q.body.get_i64("rows").unwrap(), 3);
        assert_eq!(q.body.get_str("sql").unwrap(), "SELECT 1");
    }
    let log = events
        .iter()
        .find(|e| e.channel == "handle.query.log")
        .unwrap();
    assert_eq!(log.body.get_str("message").unwrap(), "running");
    assert_eq!(log.body.get_str("level").unwrap(), "DEBUG");
    ziggy::shutdown();
}
