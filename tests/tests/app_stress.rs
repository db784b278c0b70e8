//! The application side under stress: 8 threads emitting as fast as they can while the daemon is
//! down, then up, then down again (twice as long). Memory stays bounded, emitting never blocks, and `stats()`
//! accounts for every event. Per-phase cost per event is printed (not asserted: timing is for
//! benchmarks).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn rss_kib() -> u64 {
    common::rss_kib(std::process::id())
}

fn phase(name: &str, secs: u64) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let emitted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (stop, emitted) = (stop.clone(), emitted.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..100 {
                        let _ctx = ziggy::Context::new("stress").enter();
                        ziggy::set("t", t);
                        ziggy::set("n", n);
                        n += 1;
                    }
                }
                emitted.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        peak = peak.max(rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let n = emitted.load(Ordering::Relaxed);
    let ns = started.elapsed().as_nanos() as f64 * 8.0 / n as f64;
    eprintln!(
        "{name}: {n} events from 8 threads, {ns:.0} ns per event per thread, peak RSS {peak} KiB"
    );
    (n, peak)
}

#[test]
fn eight_threads_daemon_down_up_down() {
    let collect = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    ziggy::configure(&collect).unwrap();
    let baseline = rss_kib();
    let (n1, peak1) = phase("daemon down", 3);
    let root = tempdir();
    let mut daemon = start_ziggyd_at(
        &collect,
        "127.0.0.1:0",
        &["--log-path", root.path().join("logs").to_str().unwrap()],
    );
    let (n2, peak2) = phase("daemon up", 3);
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let (n3, peak3) = phase("daemon down again", 3);
    let (n4, peak4) = phase("daemon still down", 3);
    let s = ziggy::stats();
    assert_eq!(s.emitted, n1 + n2 + n3 + n4);
    assert_eq!(s.sent + s.dropped + s.queued, s.emitted, "{s:?}");
    assert!(s.dropped > 0 && s.sent > 0, "{s:?}");
    // Bounded: the queue (100,000 events) plus ZeroMQ's send buffer (1,000 frames of ≤ 64 KiB).
    let bound = baseline + 100_000 * 256 / 1024 + 1_000 * 64 + 32 * 1024;
    for peak in [peak1, peak2, peak3, peak4] {
        assert!(
            peak < bound,
            "peak RSS {peak} KiB over {bound} KiB (baseline {baseline} KiB)"
        );
    }
    // Flat: more of the same outage, with new threads emitting as many events again, does not
    // grow memory (a leak per event or per thread would). The first outage is not the reference
    // for the second: a PUSH socket that was connected keeps up to its high-water mark of frames
    // (1,000 of ≤ 64 KiB) for the peer it lost, while one that never had a peer keeps none, so
    // the second outage may hold more than the first.
    assert!(
        peak4 < peak3 + 16 * 1024,
        "{peak1} KiB, {peak2} KiB, {peak3} KiB, then {peak4} KiB"
    );
    ziggy::shutdown();
    let s = ziggy::stats();
    assert_eq!(s.sent + s.dropped, s.emitted, "{s:?}");
}
