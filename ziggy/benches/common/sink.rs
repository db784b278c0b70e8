//! A PULL socket on a free loopback port, drained by a thread that counts events (frames hold one
//! or several concatenated events). Shared by the benches through `#[path]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Returns the sink's endpoint and its running count of events received.
pub fn sink() -> (String, Arc<AtomicU64>) {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.set_rcvhwm(100_000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = pull.get_last_endpoint().unwrap().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let _ctx = ctx;
        while let Ok(frame) = pull.recv_bytes(0) {
            let mut rest = &frame[..];
            let mut n = 0;
            while rest.len() >= 4 {
                let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                rest = &rest[len..];
                n += 1;
            }
            c.fetch_add(n, Ordering::Relaxed);
        }
    });
    (endpoint, count)
}
