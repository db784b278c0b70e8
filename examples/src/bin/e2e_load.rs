//! Load generator for `bench/e2e.sh`.
//! - `e2e_load ziggy ADDR N THREADS`: N events from THREADS app threads through the ziggy runtime
//!   to ADDR; prints `emitted dropped seconds`.
//! - `e2e_load raw N SIZE FILE`: the baseline: N pre-encoded frames of SIZE bytes, PUSH → PULL on
//!   loopback → appended to FILE through a buffered writer; prints `seconds`.
//! - `e2e_load wait CONTROL N`: polls the master's STATUS every 10 ms (a cheap poller: the
//!   machine's two cores are what is measured) until it has written N events (`probe` events not
//!   counted), or nothing moved for 5 s; prints `written unix_time` of the last progress.
//! - `e2e_load probe ADDR LOGDIR SECS`: latency from an event's `end` to its bytes being in the
//!   master's file: one `probe` event every 5 ms through the runtime to ADDR, while a reader tails
//!   `LOGDIR/<day>/probe.<day>.bson` (written by the master only after its fsync for forwarded
//!   events); prints `count p50_ms p99_ms max_ms`.

use std::io::Write;
use std::time::{Duration, Instant};

ziggy::channels! { request { sql }, probe }

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
                ziggy::TransportConfig::default().with_queue_capacity(1 << 20),
            )
            .unwrap();
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        for i in 0..n / threads {
                            // Stay under the queue bound: this measures throughput, not drops.
                            // (Looked at every 256 events: `stats()` sums every counter.)
                            while i % 256 == 0 && ziggy::stats().queued > 900_000 {
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
        Some("wait") => {
            let (control, n): (&str, u64) = (&a[2], a[3].parse().unwrap());
            wait_written(control, n);
        }
        Some("probe") => {
            let (addr, logdir, secs): (&str, &str, f64) = (&a[2], &a[3], a[4].parse().unwrap());
            probe(
                addr,
                std::path::Path::new(logdir),
                Duration::from_secs_f64(secs),
            );
        }
        _ => {
            eprintln!(
                "usage: e2e_load ziggy ADDR N THREADS | e2e_load raw N SIZE FILE | e2e_load wait CONTROL N | e2e_load probe ADDR LOGDIR SECS"
            );
            std::process::exit(2);
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until the daemon at `control` has written `n` events other than probes, or nothing
/// moved for 5 s.
fn wait_written(control: &str, n: u64) {
    let written = || {
        let reply = ziggy_proto::client::control_request(control, "STATUS", Duration::from_secs(5))
            .expect("the master answers STATUS");
        let status = ziggy_proto::status::Status::from_document(&reply).expect("a STATUS reply");
        status.events_written - status.channels.get("probe").copied().unwrap_or(0)
    };
    let (mut last, mut moved_at, mut moved_unix) = (written(), Instant::now(), unix_now());
    while last < n && moved_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
        let now = written();
        if now != last {
            (last, moved_at, moved_unix) = (now, Instant::now(), unix_now());
        }
    }
    println!("{last} {moved_unix:.6}");
}

fn probe(addr: &str, logdir: &std::path::Path, run_for: Duration) {
    ziggy::configure(addr).unwrap();
    let started = Instant::now();
    // The file may hold probes of an earlier run: only this run's count.
    let since = unix_now();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        while started.elapsed() < run_for {
            {
                let _ctx = ziggy::Context::new("probe").enter();
                ziggy::set("seq", sent);
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        ziggy::flush(Duration::from_secs(10));
        sent
    });
    // Tail the probe file (named by the UTC day of the events' start) and time each new event.
    let day = ziggy_proto::day::Day::from_unix(unix_now());
    let path = ziggy_proto::day::log_file_path(logdir, "probe", day);
    let mut latencies_ms = Vec::new();
    let mut offset = 0usize;
    let deadline = Instant::now() + run_for + Duration::from_secs(30);
    let mut sent = None;
    let mut sender = Some(sender);
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(&path) {
            while bytes.len() >= offset + 4 {
                let len =
                    i32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
                if bytes.len() < offset + len {
                    break;
                }
                let seen = unix_now();
                let event = ziggy::Event::from_slice(&bytes[offset..offset + len]).unwrap();
                if event.start >= since {
                    latencies_ms.push((seen - event.end) * 1e3);
                }
                offset += len;
            }
        }
        if sender.as_ref().is_some_and(|s| s.is_finished()) {
            sent = sender.take().map(|s| s.join().unwrap());
        }
        if sent.is_some_and(|n| latencies_ms.len() as u64 >= n) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    ziggy::shutdown();
    latencies_ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies_ms
            .get(((latencies_ms.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{} {:.1} {:.1} {:.1}",
        latencies_ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
