//! Load generator for `bench/e2e.sh`.
//! - `e2e_load ziggy ADDR N THREADS`: N events from THREADS app threads through the ziggy runtime
//!   to ADDR; prints `emitted dropped seconds`.
//! - `e2e_load raw N SIZE FILE`: the baseline: N pre-encoded frames of SIZE bytes, PUSH → PULL on
//!   loopback → appended to FILE through a buffered writer; prints `seconds`.

use std::io::Write;
use std::time::{Duration, Instant};

ziggy::channels! { request { sql } }

#[ziggy::context("request")]
fn request(t: u64, i: u64) {
    ziggy::set("thread", t);
    ziggy::set("seq", i);
    ziggy::set("path", "/users/42");
    ziggy::set("response.status", 200);
    ziggy::set("ratio", 0.25);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("ziggy") => {
            let (addr, n, threads): (&str, u64, u64) =
                (&a[2], a[3].parse().unwrap(), a[4].parse().unwrap());
            ziggy::configure_with(
                addr,
                ziggy::TransportConfig {
                    queue_capacity: 1 << 20,
                    ..Default::default()
                },
            )
            .unwrap();
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        for i in 0..n / threads {
                            // Stay under the queue bound: this measures throughput, not drops.
                            while ziggy::stats().queued > 900_000 {
                                std::thread::yield_now();
                            }
                            request(t, i);
                        }
                    });
                }
            });
            ziggy::flush(Duration::from_secs(60));
            let s = ziggy::stats();
            ziggy::shutdown();
            println!(
                "{} {} {:.3}",
                s.emitted,
                s.dropped,
                started.elapsed().as_secs_f64()
            );
        }
        Some("raw") => {
            let (n, size, file): (u64, usize, &str) =
                (a[2].parse().unwrap(), a[3].parse().unwrap(), &a[4]);
            let ctx = zmq::Context::new();
            let pull = ctx.socket(zmq::PULL).unwrap();
            pull.bind("tcp://127.0.0.1:*").unwrap();
            let endpoint = pull.get_last_endpoint().unwrap().unwrap();
            let path = file.to_owned();
            let writer = std::thread::spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(
                    256 << 10,
                    std::fs::File::create(path).unwrap(),
                );
                for _ in 0..n {
                    out.write_all(&pull.recv_bytes(0).unwrap()).unwrap();
                }
                out.flush().unwrap();
                out.get_ref().sync_data().unwrap();
            });
            let push = ctx.socket(zmq::PUSH).unwrap();
            push.connect(&endpoint).unwrap();
            let frame = vec![7u8; size];
            let started = Instant::now();
            for _ in 0..n {
                push.send(&frame[..], 0).unwrap();
            }
            writer.join().unwrap();
            println!("{:.3}", started.elapsed().as_secs_f64());
        }
        _ => {
            eprintln!("usage: e2e_load ziggy ADDR N THREADS | e2e_load raw N SIZE FILE");
            std::process::exit(2);
        }
    }
}
