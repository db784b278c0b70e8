//! The application thread's hot path, for instruction counting (`bench/callgrind.sh`): the fn the
//! benches measure (a context, a timer and five `set`s of str, int, int, str, bool), called
//! `COUNT` times, with ziggy configured to a PULL socket in this process (`enabled`) or not
//! (`disabled`).
//!
//! `cargo run --release -p ziggy --example hot_path -- enabled 100000`

use std::hint::black_box;

ziggy::channels! { request }

#[inline(never)]
#[ziggy::context("request")]
fn handle(i: u64) -> u64 {
    let _t = ziggy::timeit("request_time");
    ziggy::set("user_agent", "curl/8.5");
    ziggy::set("response.status", 200);
    ziggy::set("response.size", i);
    ziggy::set("path", "/users/42");
    ziggy::set("cached", true);
    i
}

#[inline(never)]
fn bare(i: u64) -> u64 {
    i.wrapping_mul(31).rotate_left(7)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("enabled", String::as_str);
    let count: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = pull.get_last_endpoint().unwrap().unwrap();
    let drain = std::thread::spawn(move || {
        pull.set_rcvtimeo(500).unwrap();
        while pull.recv_bytes(0).is_ok() {}
    });
    if mode == "enabled" {
        let config = ziggy::TransportConfig::default().with_queue_capacity(1 << 20);
        ziggy::configure_with(&endpoint, config).unwrap();
    }
    let mut sum = 0u64;
    let started = std::time::Instant::now();
    for i in 0..count {
        sum = sum.wrapping_add(if mode == "bare" {
            bare(black_box(i))
        } else {
            handle(black_box(i))
        });
    }
    let per_call = started.elapsed().as_nanos() as f64 / count.max(1) as f64;
    ziggy::shutdown();
    drop(drain);
    println!(
        "{mode}: {count} calls, {per_call:.1} ns per call, checksum {sum}, {:?}",
        ziggy::stats()
    );
}
