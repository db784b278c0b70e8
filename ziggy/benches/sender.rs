//! Sender-thread capacity: events per CPU-second of the `ziggy-sender` thread, against a thread
//! sending the same events as pre-encoded frames over raw ZeroMQ PUSH → PULL, in the same run.
//! CPU time (from /proc) rather than wall time, because on a 2-core machine the application
//! thread, the sender and the receiving thread share the cores.
//! Run: `cargo bench -p ziggy --bench sender`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "common/sink.rs"]
mod common_sink;
use common_sink::sink;

ziggy::channels! { request }

#[ziggy::context("request")]
fn event(i: u64) {
    ziggy::set("path", "/users/42");
    ziggy::set("response.status", 200);
    ziggy::set("response.size", i);
    ziggy::set("cached", true);
    ziggy::set("ratio", 0.25);
}

/// CPU seconds used so far by this process's thread named `name`.
fn thread_cpu(name: &str) -> f64 {
    // A thread names itself once it runs: give a just-spawned one a moment.
    for _ in 0..1000 {
        if let Some(cpu) = try_thread_cpu(name) {
            return cpu;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no thread {name}");
}

fn try_thread_cpu(name: &str) -> Option<f64> {
    let ticks = 100.0; // USER_HZ
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            let (utime, stime): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
            return Some((utime + stime) / ticks);
        }
    }
    None
}

fn main() {
    const N: u64 = 2_000_000;
    let size = {
        let events = ziggy::testing::capture(|| event(7));
        events[0].to_vec().unwrap().len()
    };
    for run in 1..=3 {
        let (endpoint, count) = sink();
        ziggy::configure_with(
            &endpoint,
            ziggy::TransportConfig::default().with_queue_capacity(1 << 20),
        )
        .unwrap();
        let cpu0 = thread_cpu("ziggy-sender");
        let t0 = Instant::now();
        let mut emitted = 0;
        while emitted < N {
            if ziggy::stats().queued < 900_000 {
                for i in 0..1_000 {
                    event(i);
                }
                emitted += 1_000;
            } else {
                std::thread::yield_now();
            }
        }
        while count.load(Ordering::Relaxed) < N {
            std::thread::sleep(Duration::from_millis(1));
        }
        let wall = t0.elapsed().as_secs_f64();
        let ziggy_cpu = thread_cpu("ziggy-sender") - cpu0;
        ziggy::shutdown();

        let (raw_endpoint, raw_count) = sink();
        let frame = {
            let mut f = vec![0u8; size];
            f[..4].copy_from_slice(&(size as i32).to_le_bytes());
            f
        };
        let raw = std::thread::Builder::new()
            .name("raw-sender".into())
            .spawn(move || {
                let ctx = zmq::Context::new();
                let push = ctx.socket(zmq::PUSH).unwrap();
                push.connect(&raw_endpoint).unwrap();
                let cpu0 = thread_cpu("raw-sender");
                for _ in 0..N {
                    push.send(&frame[..], 0).unwrap();
                }
                while raw_count.load(Ordering::Relaxed) < N {
                    std::thread::sleep(Duration::from_millis(1));
                }
                thread_cpu("raw-sender") - cpu0
            })
            .unwrap();
        let raw_cpu = raw.join().unwrap();
        let (z, r) = (N as f64 / ziggy_cpu, N as f64 / raw_cpu);
        println!(
            "run {run}: {N} events of {size} B | ziggy sender {:.0} k events per CPU-s ({ziggy_cpu:.2} CPU-s; pipeline wall {:.0} k/s) | raw PUSH {:.0} k events per CPU-s ({raw_cpu:.2} CPU-s) | ratio {:.0}%",
            z / 1e3,
            N as f64 / wall / 1e3,
            r / 1e3,
            100.0 * z / r
        );
    }
}
