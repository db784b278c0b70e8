//! The transport against a real ZeroMQ PULL socket on a free loopback port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

mod common;

use common::split_frame;

#[test]
fn ten_thousand_events_from_four_threads_arrive_as_bson() {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = pull.get_last_endpoint().unwrap().unwrap();
    ziggy::configure(&endpoint).unwrap();

    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..2_500 {
                    let _ctx = ziggy::Context::new("request").enter();
                    ziggy::set("thread", t);
                    ziggy::set("seq", i);
                }
            });
        }
    });
    assert!(ziggy::flush(Duration::from_secs(10)));

    pull.set_rcvtimeo(5_000).unwrap();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 10_000 && Instant::now() < deadline {
        let frame = pull.recv_bytes(0).expect("frames arrive");
        for doc in split_frame(&frame) {
            for field in ["id", "type", "host", "pid", "start", "end", "body"] {
                assert!(doc.contains_key(field), "{field} missing in {doc}");
            }
            assert_eq!(doc.get_str("type").unwrap(), "request");
            assert_eq!(doc.get_str("id").unwrap().len(), 32);
            assert_eq!(doc.get_i32("pid").unwrap(), std::process::id() as i32);
            assert!(doc.get_f64("end").unwrap() >= doc.get_f64("start").unwrap());
            let body = doc.get_document("body").unwrap();
            let key = (
                body.get_i32("thread").unwrap(),
                body.get_i32("seq").unwrap(),
            );
            assert!(seen.insert(key), "duplicate {key:?}");
        }
    }
    assert_eq!(seen.len(), 10_000);
    let stats = ziggy::stats();
    assert_eq!(stats.sent, 10_000);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.queued, 0);
    ziggy::shutdown();
}

#[test]
fn a_json_output_that_cannot_be_opened_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("events.jsonl");
    let err = ziggy::configure_json(ziggy::JsonOutput::File(missing.clone())).unwrap_err();
    assert!(
        matches!(&err, ziggy::ConfigureError::JsonOutput { output, .. } if *output == ziggy::JsonOutput::File(missing.clone())),
        "{err:?}"
    );
    assert!(err.to_string().contains("events.jsonl"), "{err}");
}
