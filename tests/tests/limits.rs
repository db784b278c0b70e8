//! Every size a ziggyd takes from outside has a limit, enforced on a real daemon: event, frame,
//! a frame past ZeroMQ's own cap, control request. Each refusal is counted or answered, and
//! the daemon goes on serving well-formed input.

mod common;

use std::time::Duration;

use bson::doc;
use common::minibson::Value;
use common::*;

fn event_with_padding(pad: usize) -> Vec<u8> {
    common::minibson::event(
        "0123456789abcdef0123456789abcdef",
        "request",
        1.7e9,
        1.7e9 + 0.001,
        vec![("pad", Value::String("x".repeat(pad)))],
    )
}

#[test]
fn oversized_events_frames_and_requests_are_refused_and_the_rest_served() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let daemon = start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--max-event-bytes",
        "1000",
        "--max-frame-bytes",
        "5000",
    ]);
    let ctx = zmq::Context::new();
    let push = |frame: Vec<u8>| {
        let s = ctx.socket(zmq::PUSH).unwrap();
        s.set_linger(2_000).unwrap();
        s.connect(&daemon.collect).unwrap();
        s.send(frame, 0).unwrap();
    };
    let small = event_with_padding(100);
    assert!(small.len() < 1000);

    // One event over --max-event-bytes (in a frame under the frame limit).
    push(event_with_padding(2_000));
    // A frame over --max-frame-bytes made of small, valid events.
    push(small.repeat(40));
    // Past 4 × the frame limit ZeroMQ itself cuts the connection (maxmsgsize): never buffered.
    push(small.repeat(200));
    // Then, well-formed input is still served.
    push(small.repeat(3));

    let invalid = |s: &bson::Document, key: &str| num(s, &format!("invalid.{key}"));
    assert!(
        wait_until(Duration::from_secs(10), || status_at(&daemon.control)
            .is_some_and(|s| num(&s, "events_written") == 3
                && invalid(&s, "event_too_large") == 1
                && invalid(&s, "frame_too_large") == 1)),
        "{:?}",
        status_at(&daemon.control)
    );
    std::thread::sleep(Duration::from_millis(500));
    let s = status_at(&daemon.control).unwrap();
    // The frame cut by ZeroMQ never reached the daemon: 3 valid events in, 2 refused, no more.
    assert_eq!(num(&s, "events_in"), 3, "{s}");
    assert_eq!(num(&s, "invalid_total"), 2, "{s}");

    // A control request over 64 KiB gets an error naming the limit; the next one is answered.
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_rcvtimeo(5_000).unwrap();
    req.connect(&daemon.control).unwrap();
    // Sizes from just over the limit to 16 MiB: each gets an error reply, none cuts the link.
    for size in [100 << 10, 1 << 20, 16 << 20] {
        let huge = doc! { "cmd": "STATUS", "pad": "x".repeat(size) };
        req.send(huge.to_vec().unwrap(), 0).unwrap();
        let reply = bson::Document::from_reader(&req.recv_bytes(0).unwrap()[..]).unwrap();
        assert!(reply.get_str("error").unwrap().contains("limit"), "{reply}");
    }
    // A request nested 8,000 deep (56 KB, under the limit) is refused, not a stack overflow.
    let mut deep = vec![5u8, 0, 0, 0, 0];
    for _ in 0..8_000 {
        let mut outer = Vec::with_capacity(deep.len() + 8);
        let len = (deep.len() + 4 + 1 + 2 + 1) as i32;
        outer.extend_from_slice(&len.to_le_bytes());
        outer.extend_from_slice(&[0x03, b'a', 0]);
        outer.extend_from_slice(&deep);
        outer.push(0);
        deep = outer;
    }
    req.send(deep, 0).unwrap();
    let reply = bson::Document::from_reader(&req.recv_bytes(0).unwrap()[..]).unwrap();
    assert!(
        reply.get_str("error").unwrap().contains("well-formed"),
        "{reply}"
    );
    req.send(doc! { "cmd": "STATUS" }.to_vec().unwrap(), 0)
        .unwrap();
    let reply = bson::Document::from_reader(&req.recv_bytes(0).unwrap()[..]).unwrap();
    assert_eq!(num(&reply, "events_written"), 3, "{reply}");
}
