//! NATS JetStream between host daemons and writers, with real `nats-server` processes (a 3-node
//! cluster where it matters), real ziggyd processes and the files read back by the independent
//! decoder.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::minibson::Value;
use common::nats::Cluster;
use common::*;
use ziggy_proto::jetstream::partition_of;

/// Channels of the test events, spread over two partitions.
const CHANNELS: [&str; 4] = ["request", "request.sql", "auth", "cache.get"];

/// The stream's size limit in these tests: the 10 GiB default is refused ("insufficient
/// resources") by a nats-server whose disk has less free space than that, as CI machines may.
const TEST_STREAM_BYTES: &str = "268435456";

fn start_local(t: &Tier, cluster: &Cluster, spool: &Path) -> Proc {
    start_ziggyd_at(
        &t.collect,
        &t.control,
        &[
            "--publish",
            &cluster.urls(),
            "--nats-partitions",
            "2",
            "--nats-max-bytes",
            TEST_STREAM_BYTES,
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    )
}

fn start_writer(t: &Tier, cluster: &Cluster, logs: &Path, partition: &str) -> Proc {
    start_ziggyd_at(
        &t.collect,
        &t.control,
        &[
            "--consume",
            &cluster.urls(),
            "--nats-partitions",
            "2",
            "--nats-max-bytes",
            TEST_STREAM_BYTES,
            "--partitions",
            partition,
            "--log-path",
            logs.to_str().unwrap(),
        ],
    )
}

/// Sends events `(t, i)` for `i` in `range`, channel by `i`, in frames of 100.
fn push_events(collect: &str, t: i64, range: std::ops::Range<i64>) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_sndhwm(0).unwrap();
    push.connect(&format!("tcp://{collect}")).unwrap();
    let mut frame = Vec::new();
    let end = range.end;
    for i in range {
        let start = 1.7e9 + i as f64 * 1e-3;
        let channel = CHANNELS[(i % CHANNELS.len() as i64) as usize];
        frame.extend(common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            channel,
            start,
            start + 0.001,
            vec![("t", Value::Int64(t)), ("i", Value::Int64(i))],
        ));
        if (i + 1) % 100 == 0 || i + 1 == end {
            push.send(std::mem::take(&mut frame), 0).unwrap();
        }
    }
    push.set_linger(10_000).unwrap();
}

fn total_written(logs: &Path) -> usize {
    read_all_events(logs).len()
}

#[test]
fn two_writers_split_the_partitions_and_write_every_event_once() {
    assert_ne!(
        partition_of("request", 2),
        partition_of("auth", 2),
        "the test channels must cover both partitions"
    );
    let cluster = Cluster::start(1);
    let root = tempdir();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (l, w0, w1) = (Tier::new(), Tier::new(), Tier::new());
    let _local = start_local(&l, &cluster, &root.path().join("spool"));
    let mut writer0 = start_writer(&w0, &cluster, &logs, "0");
    let mut writer1 = start_writer(&w1, &cluster, &logs, "1");
    const N: i64 = 20_000;
    push_events(&l.collect, 0, 0..N);
    assert!(
        wait_until(Duration::from_secs(60), || total_written(&logs)
            >= N as usize),
        "written {} of {N}; local {:?}",
        total_written(&logs),
        status_at(&l.control)
    );
    let found = copies(&logs);
    assert_eq!(found.len() as i64, N);
    assert!(
        found.values().all(|&n| n == 1),
        "no duplicates without crashes"
    );
    // Each writer wrote exactly the channels of its partition.
    for writer in [&mut writer0, &mut writer1] {
        if let Some(status) = writer.wait_exit(Duration::from_millis(10)) {
            panic!("a writer exited ({status}): {}", writer.stderr_text());
        }
    }
    let (s0, s1) = (
        status_at(&w0.control).unwrap(),
        status_at(&w1.control).unwrap(),
    );
    let per_partition = |p: u32| {
        (0..N)
            .filter(|i| partition_of(CHANNELS[(i % 4) as usize], 2) == p)
            .count() as i64
    };
    assert_eq!(num(&s0, "jetstream.events_written"), per_partition(0));
    assert_eq!(num(&s1, "jetstream.events_written"), per_partition(1));
    assert!(wait_until(Duration::from_secs(10), || {
        status_at(&l.control).is_some_and(|s| num(&s, "forward.spool_events") == 0)
    }));
    let s = status_at(&l.control).unwrap();
    assert!(num(&s, "jetstream.acked") > 0, "{s}");
    assert_eq!(num(&s, "forward.confirmed"), N);
}

#[test]
fn a_second_writer_for_the_same_partition_and_directory_is_refused() {
    let cluster = Cluster::start(1);
    let root = tempdir();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (w0, w1) = (Tier::new(), Tier::new());
    let _writer = start_writer(&w0, &cluster, &logs, "0");
    // The first writer locks its partition once the stream is there (it creates it).
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_dir(&logs).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-p0.lock")
        })
    }));
    let second = std::process::Command::new(bin("ziggyd"))
        .args(["-H", &w1.collect, "--control", &w1.control])
        .args([
            "--consume",
            &cluster.urls(),
            "--partitions",
            "0",
            "--log-path",
        ])
        .arg(&logs)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("locked by another ziggyd"), "{err}");
    // A master on that directory is refused too: writers share it.
    let m = Tier::new();
    let mut master = std::process::Command::new(bin("ziggyd"))
        .args(["-H", &m.collect, "--control", &m.control, "--log-path"])
        .arg(&logs)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = master.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    master
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("locked by another ziggyd"), "{err}");
}

/// Publishes raw bytes on a subject over the NATS text protocol (a hostile or broken publisher).
fn nats_publish_raw(port: u16, subject: &str, payload: &[u8]) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut info = [0u8; 4096];
    let _ = s.read(&mut info).unwrap();
    write!(
        s,
        "CONNECT {{\"verbose\":false}}\r\nPUB {subject} {}\r\n",
        payload.len()
    )
    .unwrap();
    s.write_all(payload).unwrap();
    s.write_all(b"\r\nPING\r\n").unwrap();
    let mut pong = [0u8; 64];
    let _ = s.read(&mut pong).unwrap();
}

#[test]
fn a_foreign_message_on_the_stream_is_counted_and_the_rest_written() {
    let cluster = Cluster::start(1);
    let root = tempdir();
    let logs = root.path().join("logs");
    let (l, w) = (Tier::new(), Tier::new());
    let _local = start_local(&l, &cluster, &root.path().join("spool"));
    let _writer = start_writer(&w, &cluster, &logs, "0,1");
    push_events(&l.collect, 0, 0..100);
    assert!(wait_until(Duration::from_secs(30), || total_written(&logs) == 100));
    let port = cluster.nodes[0].client_port;
    nats_publish_raw(port, "ziggy.events.p0", b"\x1b[2Jnot a batch");
    nats_publish_raw(port, "ziggy.events.p1", &[0xff; 300]);
    push_events(&l.collect, 1, 0..100);
    assert!(wait_until(Duration::from_secs(30), || total_written(&logs) == 200));
    assert!(wait_until(Duration::from_secs(10), || {
        status_at(&w.control).is_some_and(|s| num(&s, "jetstream.malformed") == 2)
    }));
    assert!(copies(&logs).values().all(|&n| n == 1));
}

#[test]
fn bad_nats_flags_exit_2_with_the_reason() {
    for (args, expected) in [
        (vec!["--publish", "nats://"], "not a NATS address list"),
        (
            vec!["--consume", "nats://127.0.0.1:4222"],
            "--consume needs --log-path",
        ),
        (
            vec!["--publish", "nats://127.0.0.1:1", "--nats-partitions", "0"],
            "--nats-partitions 0 is out of range",
        ),
        (
            vec![
                "--consume",
                "nats://127.0.0.1:1",
                "--log-path",
                "/tmp",
                "--partitions",
                "x",
            ],
            "expected partition numbers",
        ),
    ] {
        let out = std::process::Command::new(bin("ziggyd"))
            .args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// Sends quarter `q` of each local's events (`quarter` events), from two app threads per local.
fn send_quarter(q: i64, quarter: i64, collects: [String; 2]) {
    std::thread::scope(|s| {
        for (l, collect) in collects.iter().enumerate() {
            for half in 0..2 {
                let collect = collect.clone();
                let start = q * quarter + half * quarter / 2;
                s.spawn(move || push_events(&collect, l as i64, start..start + quarter / 2));
            }
        }
    });
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

#[test]
fn a_three_node_cluster_loses_nothing_across_kill_9_of_leader_writer_and_local() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    eprintln!("seed {seed}");
    let mut cluster = Cluster::start(3);
    let root = tempdir();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let spools = [root.path().join("spool-a"), root.path().join("spool-b")];
    let locals_t = [Tier::new(), Tier::new()];
    let writers_t = [Tier::new(), Tier::new()];
    let mut locals: Vec<Proc> = (0..2)
        .map(|i| start_local(&locals_t[i], &cluster, &spools[i]))
        .collect();
    let mut writers: Vec<Proc> = ["0", "1"]
        .iter()
        .enumerate()
        .map(|(i, p)| start_writer(&writers_t[i], &cluster, &logs, p))
        .collect();
    const PER_LOCAL: i64 = 100_000;
    const TOTAL: usize = 2 * PER_LOCAL as usize;
    // Each local gets its events from two app threads, a quarter at a time with the kills between.
    let quarter = PER_LOCAL / 4;
    let collects = || [locals_t[0].collect.clone(), locals_t[1].collect.clone()];
    send_quarter(0, quarter, collects());

    // The stream is up and both locals are publishing before anything is killed.
    assert!(
        wait_until(Duration::from_secs(60), || {
            locals_t
                .iter()
                .all(|t| status_at(&t.control).is_some_and(|s| num(&s, "forward.confirmed") > 0))
        }),
        "the locals confirm nothing: {:?}",
        locals_t
            .iter()
            .map(|t| status_at(&t.control))
            .collect::<Vec<_>>()
    );
    // 1. kill -9 the stream leader mid-stream; restart it after a pause.
    let leader = (0..100)
        .find_map(|_| {
            cluster.stream_leader("ZIGGY").or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("a stream leader");
    let pause = 1 + rng.below(3);
    eprintln!("kill -9 stream leader n{} for {pause} s", leader + 1);
    let sending = {
        let collects = collects();
        std::thread::spawn(move || send_quarter(1, quarter, collects))
    };
    std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
    cluster.kill(leader);
    sending.join().unwrap();
    std::thread::sleep(Duration::from_secs(pause));
    cluster.start_node(leader);

    // 2. kill -9 one writer; restart it.
    let w = rng.below(2) as usize;
    let pause = rng.below(3);
    eprintln!("kill -9 writer {w} for {pause} s");
    drop(writers.remove(w));
    send_quarter(2, quarter, collects());
    std::thread::sleep(Duration::from_secs(pause));
    let partition = if w == 0 { "0" } else { "1" };
    writers.insert(w, start_writer(&writers_t[w], &cluster, &logs, partition));

    // 3. kill -9 one local once it has spooled all it received; restart it.
    send_quarter(3, quarter, collects());
    let l = rng.below(2) as usize;
    assert!(wait_until(Duration::from_secs(60), || {
        status_at(&locals_t[l].control).is_some_and(|s| {
            num(&s, "events_in") == PER_LOCAL && num(&s, "forward.spooled") == PER_LOCAL
        })
    }));
    let s = status_at(&locals_t[l].control).unwrap();
    eprintln!(
        "kill -9 local {l} with {} events unconfirmed in its spool",
        num(&s, "forward.spool_events")
    );
    drop(locals.remove(l));
    locals.insert(l, start_local(&locals_t[l], &cluster, &spools[l]));

    let done = wait_until(Duration::from_secs(240), || {
        locals_t
            .iter()
            .all(|t| status_at(&t.control).is_some_and(|s| num(&s, "forward.spool_events") == 0))
            && total_written(&logs) >= TOTAL
    });
    let found = copies(&logs);
    let duplicates: usize = found.values().map(|&n| n - 1).sum();
    let counted: i64 = writers_t
        .iter()
        .filter_map(|t| status_at(&t.control))
        .map(|s| num(&s, "jetstream.possible_duplicates"))
        .sum();
    eprintln!(
        "seed {seed}: {} distinct of {TOTAL}, {duplicates} duplicates ({counted} counted as \
         possible by the writers)",
        found.len()
    );
    if !done {
        let missing: Vec<(i64, i64)> = (0..2)
            .flat_map(|t| (0..PER_LOCAL).map(move |i| (t, i)))
            .filter(|k| !found.contains_key(k))
            .collect();
        eprintln!(
            "missing {} events, first {:?}, last {:?}",
            missing.len(),
            missing.first(),
            missing.last()
        );
        eprintln!("stream holds {} messages", cluster.stream_messages("ZIGGY"));
        for t in locals_t.iter().chain(&writers_t) {
            let s = status_at(&t.control).unwrap_or_default();
            eprintln!("forward {:?}", s.get("forward"));
            eprintln!("jetstream {:?}", s.get("jetstream"));
        }
    }
    assert!(done, "not drained: {} of {TOTAL} distinct", found.len());
    assert_eq!(found.len(), TOTAL, "every event is in the files");
    assert!(
        duplicates as i64 <= counted,
        "every duplicate is counted: {duplicates} > {counted}"
    );
}

#[test]
fn the_cluster_down_for_30s_events_spool_with_flat_memory_then_drain() {
    let mut cluster = Cluster::start(1);
    let root = tempdir();
    let logs = root.path().join("logs");
    let (l, w) = (Tier::new(), Tier::new());
    let local = start_local(&l, &cluster, &root.path().join("spool"));
    let _writer = start_writer(&w, &cluster, &logs, "0,1");
    push_events(&l.collect, 0, 0..1_000);
    assert!(wait_until(Duration::from_secs(30), || total_written(&logs) == 1_000));
    cluster.kill(0);
    const DOWN: i64 = 300_000;
    let started = Instant::now();
    let sender = {
        let collect = l.collect.clone();
        std::thread::spawn(move || push_events(&collect, 1, 0..DOWN))
    };
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_kib(local.child.id()));
        std::thread::sleep(Duration::from_millis(100));
    }
    sender.join().unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        status_at(&l.control).is_some_and(|s| num(&s, "forward.spool_events") == DOWN)
    }));
    let s = status_at(&l.control).unwrap();
    eprintln!(
        "cluster down 30 s: local peak RSS {peak} KiB, spool {} bytes, {} events unconfirmed",
        num(&s, "forward.spool_bytes"),
        num(&s, "forward.spool_events")
    );
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
    let link = s.get_document("jetstream").unwrap();
    assert_eq!(link.get_bool("connected").ok(), Some(false), "{link}");
    assert!(num(&s, "jetstream.failed") > 0, "{link}");
    cluster.start_node(0);
    assert!(
        wait_until(Duration::from_secs(180), || {
            peak = peak.max(rss_kib(local.child.id()));
            total_written(&logs) == 1_000 + DOWN as usize
        }),
        "{:?}",
        status_at(&l.control)
    );
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB while draining");
    assert!(copies(&logs).values().all(|&n| n == 1));
}
