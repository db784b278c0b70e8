//! Forwarding between real daemon processes: nothing lost across kill -9 of either tier, bounded
//! memory while the master is away, a damaged spool recovered.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::minibson::Value;
use common::*;

fn start_master(t: &Tier, logs: &Path) -> Proc {
    start_ziggyd_at(
        &t.collect,
        &t.control,
        &["--log-path", logs.to_str().unwrap()],
    )
}

fn start_local(t: &Tier, master: &Tier, spool: &Path) -> Proc {
    start_ziggyd_at(
        &t.collect,
        &t.control,
        &[
            "--publish",
            &master.collect,
            "--publish-control",
            &master.control,
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    )
}

/// A tiny xorshift, seeded and printed, for the kill points.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn emit(threads: i64, per_thread: i64) {
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..per_thread {
                    let _ctx = ziggy::Context::new("request").enter();
                    ziggy::set("t", t);
                    ziggy::set("i", i);
                    if i % 5_000 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            });
        }
    });
    assert!(ziggy::flush(Duration::from_secs(60)));
}

#[test]
fn two_tiers_lose_nothing_across_kill_9_of_master_then_local() {
    let seed = std::env::var("ZIGGY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill-point seed: {seed} (rerun with ZIGGY_SEED={seed})");
    let mut rng = Rng(seed);
    let root = tempdir();
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    let (m, l) = (Tier::new(), Tier::new());
    let mut master = start_master(&m, &logs);
    let mut local = start_local(&l, &m, &spool);

    let config = ziggy::TransportConfig::default().with_queue_capacity(300_000);
    ziggy::configure_with(&l.collect, config).unwrap();
    const THREADS: i64 = 4;
    const PER_THREAD: i64 = 50_000;
    const TOTAL: i64 = THREADS * PER_THREAD;
    let emitter = std::thread::spawn(|| emit(THREADS, PER_THREAD));

    // Kill the master once it has written some of the stream, at a seeded point.
    let kill_master_at = 20_000 + rng.below(60_000) as i64;
    assert!(wait_until(Duration::from_secs(120), || status_at(
        &m.control
    )
    .is_some_and(|s| num(&s, "events_written") >= kill_master_at)));
    eprintln!("killing the master after {kill_master_at} written");
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(rng.below(1_000)));
    let master2 = start_master(&m, &logs);

    emitter.join().unwrap();
    assert_eq!(
        ziggy::stats().dropped,
        0,
        "the app dropped events: {:?}",
        ziggy::stats()
    );
    // Everything the app sent reached the local daemon.
    assert!(
        wait_until(Duration::from_secs(60), || status_at(&l.control)
            .is_some_and(
                |s| num(&s, "events_in") == TOTAL && num(&s, "forward.spooled_seq") == TOTAL
            )),
        "{:?}",
        status_at(&l.control)
    );
    // Then kill the local daemon mid-forwarding, at a seeded point, and restart it on its spool.
    let kill_local_at = rng.below(40_000) as i64;
    assert!(wait_until(Duration::from_secs(120), || status_at(
        &m.control
    )
    .is_some_and(|s| num(&s, "events_written") >= kill_local_at)));
    local.child.kill().unwrap();
    local.child.wait().unwrap();
    let local2 = start_local(&l, &m, &spool);

    assert!(
        wait_until(Duration::from_secs(180), || {
            status_at(&l.control).is_some_and(|s| num(&s, "forward.spool_events") == 0)
                && copies(&logs).len() as i64 == TOTAL
        }),
        "local {:?}\nmaster {:?}\nunique {} of {TOTAL}; first missing {:?}",
        status_at(&l.control),
        status_at(&m.control),
        copies(&logs).len(),
        {
            let found = copies(&logs);
            (0..THREADS)
                .flat_map(|t| (0..PER_THREAD).map(move |i| (t, i)))
                .filter(|k| !found.contains_key(k))
                .take(5)
                .collect::<Vec<_>>()
        }
    );
    let master_status = status_at(&m.control).unwrap();
    let possible = num(&master_status, "forward_in.possible_duplicates");
    let found = copies(&logs);
    let duplicates: i64 = found.values().map(|&n| n as i64 - 1).sum();
    eprintln!(
        "events {TOTAL}, unique in master files {}, duplicates {duplicates} (counted as possible: {possible}), deduplicated by seq {}",
        found.len(),
        num(&master_status, "forward_in.deduplicated")
    );
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            assert!(
                found.contains_key(&(t, i)),
                "lost event {t}/{i} (seed {seed})"
            );
        }
    }
    assert!(
        duplicates <= possible,
        "uncounted duplicates: {duplicates} > {possible} (seed {seed})"
    );
    ziggy::shutdown();
    drop((local2, master2));
}

/// Sends `n` events numbered `t = 0, i = 0..n` in frames of 100 concatenated events.
fn push_events(collect: &str, n: i64) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&format!("tcp://{collect}")).unwrap();
    let mut frame = Vec::new();
    for i in 0..n {
        let t = 1.7e9 + i as f64 * 1e-3;
        frame.extend(common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            "request",
            t,
            t + 0.001,
            vec![("t", Value::Int64(0)), ("i", Value::Int64(i))],
        ));
        if (i + 1) % 100 == 0 || i + 1 == n {
            push.send(std::mem::take(&mut frame), 0).unwrap();
        }
    }
}

#[test]
fn master_away_for_30s_a_million_events_flat_memory_then_drained() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    let (m, l) = (Tier::new(), Tier::new());
    let local = start_local(&l, &m, &spool);
    const TOTAL: i64 = 1_000_000;
    let started = Instant::now();
    let sender = {
        let collect = l.collect.clone();
        std::thread::spawn(move || push_events(&collect, TOTAL))
    };
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_kib(local.child.id()));
        std::thread::sleep(Duration::from_millis(100));
    }
    sender.join().unwrap();
    assert!(wait_until(Duration::from_secs(60), || {
        peak = peak.max(rss_kib(local.child.id()));
        status_at(&l.control).is_some_and(|s| num(&s, "forward.spooled_seq") == TOTAL)
    }));
    let s = status_at(&l.control).unwrap();
    eprintln!(
        "local peak RSS {peak} KiB while the master was away; spool {} bytes",
        num(&s, "forward.spool_bytes")
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    assert_eq!(num(&s, "forward.spool_events"), TOTAL);
    assert!(num(&s, "forward.oldest_unconfirmed_age") >= 1);

    let _master = start_master(&m, &logs);
    assert!(
        wait_until(Duration::from_secs(300), || {
            peak = peak.max(rss_kib(local.child.id()));
            status_at(&l.control).is_some_and(|s| num(&s, "forward.spool_events") == 0)
        }),
        "{:?}",
        status_at(&l.control)
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB while draining");
    let found = copies(&logs);
    assert_eq!(found.len() as i64, TOTAL);
    assert!(
        found.values().all(|&n| n == 1),
        "no duplicates without crashes"
    );
}

#[test]
fn a_spool_segment_truncated_by_hand_is_reported_and_the_rest_forwarded() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    let (m, l) = (Tier::new(), Tier::new());
    let local_args = |spool: &Path| {
        vec![
            "--publish".to_owned(),
            m.collect.clone(),
            "--publish-control".to_owned(),
            m.control.clone(),
            "--spool-dir".to_owned(),
            spool.to_str().unwrap().to_owned(),
            "--spool-segment-bytes".to_owned(),
            "100000".to_owned(),
        ]
    };
    let args = local_args(&spool);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut local = start_ziggyd_at(&l.collect, &l.control, &args);
    const TOTAL: i64 = 10_000;
    push_events(&l.collect, TOTAL);
    assert!(wait_until(Duration::from_secs(60), || status_at(
        &l.control
    )
    .is_some_and(|s| num(&s, "forward.spooled_seq") == TOTAL)));
    local.signal("TERM");
    assert!(local.wait_exit(Duration::from_secs(20)).unwrap().success());

    let mut segments: Vec<_> = files_under(&spool)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "zsp"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 5, "{segments:?}");
    let damaged = &segments[1];
    let len = std::fs::metadata(damaged).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(damaged)
        .unwrap()
        .set_len(len / 2 + 7)
        .unwrap();

    let mut local = start_ziggyd_at(&l.collect, &l.control, &args);
    let s = status_at(&l.control).unwrap();
    assert_eq!(num(&s, "forward.spool_corrupt"), 1);
    let _master = start_master(&m, &logs);
    assert!(wait_until(Duration::from_secs(60), || status_at(
        &l.control
    )
    .is_some_and(|s| num(&s, "forward.spool_events") == 0)));
    let found = copies(&logs);
    let lost = TOTAL - found.len() as i64;
    eprintln!(
        "{lost} events lost with the damaged half segment, {} forwarded",
        found.len()
    );
    assert!(lost > 0 && lost < TOTAL / 5, "{lost}");
    // Everything before and after the damaged segment arrived.
    assert!(found.contains_key(&(0, 0)) && found.contains_key(&(0, TOTAL - 1)));
    local.signal("TERM");
    assert!(local.wait_exit(Duration::from_secs(20)).unwrap().success());
    let stderr = local.stderr_text();
    assert!(stderr.contains("damaged place"), "{stderr}");
}
