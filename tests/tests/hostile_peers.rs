//! Peers that misbehave, against a real ziggyd process: a frame over ZeroMQ's cap (which ends
//! its connection), megabyte host names, thousands of distinct hosts and channels. Each is
//! counted in STATUS, logged where it loses data, and leaves the daemon small and responsive.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bson::doc;
use common::minibson::Value;
use common::*;

const T: Duration = Duration::from_secs(10);

fn event(n: i64, host: &str, channel: &str) -> Vec<u8> {
    doc! { "id": "0123456789abcdef0123456789abcdef", "type": channel, "host": host, "pid": 7,
    "start": 1_700_000_000.5, "end": 1_700_000_001.0, "body": { "n": n } }
    .to_vec()
    .unwrap()
}

fn status(daemon: &Proc) -> bson::Document {
    status_at(&daemon.control).expect("STATUS answered")
}

/// The `body.n` of every event written under `dir`.
fn written(dir: &std::path::Path) -> BTreeSet<i64> {
    read_all_events(dir)
        .iter()
        .filter_map(|(_, e)| e.get("body")?.get("n").and_then(Value::int))
        .collect()
}

fn push_socket(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(2_000).unwrap();
    push.set_sndtimeo(10_000).unwrap();
    push.connect(endpoint).unwrap();
    push
}

/// On a new PUSH socket, once connected, sends an oversized frame of `size` bytes and events
/// `first..first + 10` right behind it; waits for the daemon to count the cut, then after a
/// pause sends `first + 10..first + 20` on the same socket. Returns the socket (kept open).
///
/// With `stopped`, the daemon is stopped (SIGSTOP) while they are sent, so that the sender
/// writes them all into the connection before the daemon reads the oversized frame's header;
/// otherwise the daemon may cut the connection before the sender writes the next frames, which
/// then stay in its pipe.
fn cut_then_resend(
    daemon: &Proc,
    ctx: &zmq::Context,
    size: usize,
    first: i64,
    stopped: bool,
) -> zmq::Socket {
    let before = status(daemon);
    let push = push_socket(ctx, &daemon.collect);
    // Connected, and seen connected by the daemon, before anything is sent.
    let connections = num(&before, "collect_in.connections");
    assert!(
        wait_until(T, || num(&status(daemon), "collect_in.connections")
            == connections + 1),
        "{}",
        status(daemon)
    );
    if stopped {
        daemon.signal("STOP");
    }
    push.send(vec![0xA5u8; size], 0).unwrap();
    for n in first..first + 10 {
        push.send(event(n, "h", "request"), 0).unwrap();
    }
    if stopped {
        // The kernel takes the bytes for the stopped process meanwhile.
        std::thread::sleep(Duration::from_millis(500));
        daemon.signal("CONT");
    }
    let cuts = num(&before, "collect_in.cut_oversized");
    assert!(
        wait_until(T, || num(&status(daemon), "collect_in.cut_oversized")
            == cuts + 1),
        "{}",
        status(daemon)
    );
    std::thread::sleep(Duration::from_millis(500));
    for n in first + 10..first + 20 {
        push.send(event(n, "h", "request"), 0).unwrap();
    }
    push
}

#[test]
fn an_oversized_frame_cuts_its_connection_and_the_cut_is_counted_and_logged() {
    let root = tempdir();
    let logs = root.path().join("logs");
    // ZeroMQ's cap is 4 × 1,000 = 4,000 bytes.
    let mut daemon = start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--max-frame-bytes",
        "1000",
        "--flush-ms",
        "50",
    ]);
    let ctx = zmq::Context::new();

    // 1. 5,000 bytes, just over the cap, and ten events behind it, all written into the
    //    connection before the daemon reads it: the daemon reads the frame's header, cuts the
    //    connection, and the ten events go with it.
    let a = cut_then_resend(&daemon, &ctx, 5_000, 100, true);
    // 2. 48 MiB, more than any kernel buffers hold: the daemon cuts while the sender is still
    //    writing the frame, so the ten events behind it are still in the sender's ZeroMQ pipe
    //    and arrive after its automatic reconnect: none lost.
    let b = cut_then_resend(&daemon, &ctx, 48 << 20, 200, false);

    let later: BTreeSet<i64> = (110..120).chain(200..220).collect();
    assert!(
        wait_until(T, || written(&logs).is_superset(&later)),
        "{:?} {}",
        written(&logs),
        status(&daemon)
    );
    let got = written(&logs);
    let lost: Vec<i64> = (100..120)
        .chain(200..220)
        .filter(|n| !got.contains(n))
        .collect();
    assert_eq!(lost, (100..110).collect::<Vec<_>>(), "written: {got:?}");

    let s = status(&daemon);
    assert_eq!(num(&s, "collect_in.cut_oversized"), 2, "{s}");
    // Two PUSH sockets, each connected again after its cut.
    assert_eq!(num(&s, "collect_in.connections"), 2, "{s}");
    assert_eq!(num(&s, "collect_in.disconnects"), 2, "{s}");
    // Neither oversized frame reached the validator.
    assert_eq!(num(&s, "invalid_total"), 0, "{s}");
    drop((a, b));
    assert!(
        wait_until(T, || {
            let s = status(&daemon);
            num(&s, "collect_in.connections") == 0 && num(&s, "collect_in.disconnects") == 4
        }),
        "{}",
        status(&daemon)
    );
    // Peers closing are not cuts.
    assert_eq!(num(&status(&daemon), "collect_in.cut_oversized"), 2);

    daemon.signal("TERM");
    assert!(daemon.wait_exit(T).is_some_and(|s| s.success()));
    let stderr = daemon.stderr_text();
    let cut = stderr
        .lines()
        .find(|l| l.contains("cut the connection from 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no cut logged: {stderr}"));
    for words in [
        "a frame over 4000 bytes",
        "ends a connection",
        "lost with it",
        "automatic reconnect",
    ] {
        assert!(cut.contains(words), "{words:?} missing: {cut}");
    }
}

#[test]
fn megabyte_hosts_are_refused_and_the_daemon_stays_small_and_quick() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let pid = daemon.child.id();
    let ctx = zmq::Context::new();
    let push = push_socket(&ctx, &daemon.collect);
    push.send(event(0, "h", "warmup"), 0).unwrap();
    assert!(wait_until(T, || num(&status(&daemon), "events_in") == 1));
    let baseline = rss_kib(pid);
    assert!(baseline > 0);

    // 400 events, each with its own 1 MB host, in groups of 20 so that at most a few MB wait in
    // queues at any time: what is measured is what the daemon keeps.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = baseline;
    for group in 0..20 {
        for i in 0..20 {
            let host = format!("{group}-{i}-{}", "h".repeat(1 << 20));
            push.send(event(1, &host, "request"), 0).unwrap();
        }
        let sent = (group + 1) * 20;
        while num(&status(&daemon), "invalid.host_too_long") < sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        peak = peak.max(rss_kib(pid));
    }
    // An id over 256 bytes (docs/PROTOCOL.md §1) is refused too.
    let long_id = doc! { "id": "i".repeat(257), "type": "request", "host": "h", "pid": 7,
    "start": 1_700_000_000.5, "end": 1_700_000_001.0, "body": {} };
    push.send(long_id.to_vec().unwrap(), 0).unwrap();
    assert!(
        wait_until(T, || num(&status(&daemon), "invalid.id_too_long") == 1),
        "{}",
        status(&daemon)
    );

    let started = Instant::now();
    let s = status(&daemon);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "STATUS took {took:?}");
    assert_eq!(num(&s, "invalid.host_too_long"), 400, "{s}");
    assert_eq!(num(&s, "events_in"), 1, "{s}");
    assert_eq!(s.get_document("hosts").unwrap().len(), 1, "{s}");
    peak = peak.max(rss_kib(pid));
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("RSS {baseline} KiB at start, peak {peak} KiB");
    assert!(growth_mib < 64, "RSS grew by {growth_mib} MiB");
}

#[test]
fn thousands_of_hosts_and_channels_keep_status_bounded() {
    const EVENTS: i64 = 5_000;
    let daemon = start_ziggyd(&["--stream-only"]);
    let ctx = zmq::Context::new();
    let push = push_socket(&ctx, &daemon.collect);
    // Every event with its own host and channel, 100 to a frame.
    for frame in 0..EVENTS / 100 {
        let mut bytes = Vec::new();
        for i in frame * 100..(frame + 1) * 100 {
            bytes.extend(event(
                i,
                &format!("host-{i}.example.com"),
                &format!("ch{i}"),
            ));
        }
        push.send(bytes, 0).unwrap();
    }
    assert!(
        wait_until(T, || num(&status(&daemon), "events_in") == EVENTS),
        "{}",
        status(&daemon)
    );
    let started = Instant::now();
    let s = status(&daemon);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "STATUS took {took:?}");
    for section in ["hosts", "channels"] {
        let counts = s.get_document(section).unwrap();
        assert!(counts.len() <= 1_001, "{section}: {} keys", counts.len());
        let sum: i64 = counts.values().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(sum, EVENTS, "{section}");
        assert!(
            counts.get_i64("(other)").unwrap() >= EVENTS - 1_000,
            "{section}"
        );
    }
    let size = s.to_vec().unwrap().len();
    assert!(size < 128 << 10, "STATUS is {size} bytes");
}

#[test]
fn an_oversized_frame_on_the_forward_socket_is_counted_there() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let daemon = start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--max-frame-bytes",
        "1000",
    ]);
    let reply = ziggyd::client::control_request(&daemon.control, "SOCK_FORWARD", T).unwrap();
    let port = reply.get_i32("port").unwrap();
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    assert!(
        wait_until(T, || num(&status(&daemon), "forward_in.connections") == 1),
        "{}",
        status(&daemon)
    );
    dealer.send(vec![0u8; 5_000], 0).unwrap();
    assert!(
        wait_until(T, || num(&status(&daemon), "forward_in.cut_oversized") == 1),
        "{}",
        status(&daemon)
    );
    let s = status(&daemon);
    assert_eq!(num(&s, "forward_in.disconnects"), 1, "{s}");
    assert_eq!(num(&s, "collect_in.cut_oversized"), 0, "{s}");
    assert_eq!(num(&s, "forward_in.batches"), 0, "{s}");
}
