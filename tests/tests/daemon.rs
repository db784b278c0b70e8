//! ziggyd as a real process: app → ziggyd → files, hostile input, control, stream, shutdown.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bson::doc;
use common::minibson::Value;
use common::*;
use ziggyd::client::control_request;

const T: Duration = Duration::from_secs(5);

fn status(proc: &Proc) -> bson::Document {
    control_request(&proc.control, "STATUS", T).expect("STATUS answered")
}

/// The smallest valid event of `channel`.
fn event(channel: &str) -> Vec<u8> {
    doc! { "id": "a", "type": channel, "host": "h", "pid": 1, "start": 1.0, "end": 2.0, "body": {} }
        .to_vec()
        .unwrap()
}

fn count(doc: &bson::Document, key: &str) -> i64 {
    doc.get_i64(key).unwrap()
}

#[test]
fn app_to_ziggyd_to_files_in_order_and_byte_exact() {
    let logs = tempdir();
    let log_path = logs.path().join("logs");
    let daemon = start_ziggyd(&["--log-path", log_path.to_str().unwrap()]);
    ziggy::configure(&daemon.collect).unwrap();

    const THREADS: i64 = 4;
    const PER_THREAD: i64 = 25_000;
    let channels = [
        "request",
        "request.sql",
        "request.cache",
        "job",
        "audit.login",
    ];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let channel = channels[(i % 5) as usize];
                    let _ctx = ziggy::Context::new(channel).enter();
                    ziggy::set("thread", t);
                    ziggy::set("seq", i);
                    ziggy::set("payload.text", "x".repeat((i % 7) as usize));
                    // The queue holds 100,000; pace a little so nothing is dropped.
                    if i % 2_000 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            });
        }
    });
    assert!(ziggy::flush(Duration::from_secs(30)));
    let stats = ziggy::stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let total = THREADS * PER_THREAD;
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &status(&daemon),
            "events_written"
        ) == total),
        "{}",
        status(&daemon)
    );
    // Files are flushed within a second even without shutdown.
    assert!(wait_until(
        Duration::from_secs(5),
        || read_all_events(&log_path).len() as i64 == total
    ));

    let events = read_all_events(&log_path);
    let mut last_seq: HashMap<(String, i64), i64> = HashMap::new();
    for (path, e) in &events {
        let channel = e.get("type").and_then(Value::str).unwrap();
        let start = e.get("start").and_then(Value::double).unwrap();
        let day = ziggy_proto::day::Day::from_unix(start);
        assert_eq!(
            *path,
            ziggy_proto::day::log_file_path(&log_path, channel, day)
        );
        for field in ["id", "host", "pid", "end", "body"] {
            assert!(e.get(field).is_some(), "{field}");
        }
        let body = e.get("body").unwrap();
        let thread = body.get("thread").and_then(Value::int).unwrap();
        let seq = body.get("seq").and_then(Value::int).unwrap();
        assert_eq!(channel, channels[(seq % 5) as usize]);
        assert_eq!(
            body.get("payload")
                .unwrap()
                .get("text")
                .and_then(Value::str)
                .unwrap()
                .len() as i64,
            seq % 7
        );
        // Per sender and channel, events are in the order they were sent.
        let key = (channel.to_owned(), thread);
        if let Some(prev) = last_seq.insert(key, seq) {
            assert!(seq > prev, "out of order: {prev} then {seq}");
        }
    }
    assert_eq!(events.len() as i64, total);
    ziggy::shutdown();
}

#[test]
fn hostile_frames_are_counted_and_never_written() {
    let root = tempdir();
    let log_path = root.path().join("logs");
    let daemon = start_ziggyd(&[
        "--log-path",
        log_path.to_str().unwrap(),
        "--max-frame-bytes",
        "65536",
    ]);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();

    let good = |channel: &str, n: i32| {
        doc! { "id": "0123456789abcdef0123456789abcdef", "type": channel, "host": "h", "pid": 7,
        "start": 1_700_000_000.5, "end": 1_700_000_001.0, "body": { "n": n, "s": "text" } }
        .to_vec()
        .unwrap()
    };
    let limits = ziggyd::validate::Limits {
        max_frame_bytes: 65536,
        ..Default::default()
    };
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut expect_valid = 0i64;
    let mut expect_invalid = 0i64;
    for i in 0..10_000 {
        let frame: Vec<u8> = match i % 8 {
            0 => (0..(next() % 200) as usize).map(|_| next() as u8).collect(), // garbage
            1 => {
                let mut f = good("request", i);
                let cut = (next() as usize) % f.len();
                f.truncate(cut);
                f
            }
            2 => {
                let mut f = good("request", i);
                let at = (next() as usize) % f.len();
                f[at] ^= 1 << (next() % 8);
                f
            }
            3 => good(["../etc", "a/b", "A", "a..b", ""][(i as usize / 8) % 5], i),
            4 => doc! { "id": 5, "type": "request", "host": "h", "pid": 1, "start": 1.0, "end": 2.0, "body": {} }
                .to_vec()
                .unwrap(),
            5 => vec![0u8; 70_000], // over the frame limit
            6 => {
                let mut f = good("request", i);
                f.extend(good("request.sql", i));
                f
            }
            _ if i == 7 => Vec::new(), // a zero-length frame
            _ if i == 15 => doc! { "id": "x", "type": "request", "host": "h", "pid": 1,
                "start": 1e300, "end": 2.0, "body": {} }
            .to_vec()
            .unwrap(),
            _ => good("request", i),
        };
        for item in ziggyd::validate::split_frame(&frame, limits) {
            if item.is_ok() {
                expect_valid += 1;
            } else {
                expect_invalid += 1;
            }
        }
        push.send(frame, 0).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            let s = status(&daemon);
            count(&s, "events_in") == expect_valid && count(&s, "invalid_total") == expect_invalid
        }),
        "expected {expect_valid} valid, {expect_invalid} invalid; got {}",
        status(&daemon)
    );
    let s = status(&daemon);
    let invalid = s.get_document("invalid").unwrap();
    for reason in [
        "malformed_bson",
        "bad_channel",
        "wrong_type",
        "frame_too_large",
        "empty_frame",
        "time_out_of_range",
    ] {
        assert!(invalid.get_i64(reason).unwrap() > 0, "{reason}: {invalid}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || count(
            &status(&daemon),
            "events_written"
        ) == expect_valid),
        "{}",
        status(&daemon)
    );
    // Nothing outside the log path; every file inside is a clean concatenation of valid events.
    let top: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["logs"]);
    assert!(wait_until(
        Duration::from_secs(5),
        || read_all_events(&log_path).len() as i64 == expect_valid
    ));
    for (path, e) in read_all_events(&log_path) {
        let channel = e.get("type").and_then(Value::str).unwrap();
        assert!(
            ziggy::channel::validate_channel_name(channel).is_ok(),
            "{channel}"
        );
        assert!(path.starts_with(&log_path));
    }
}

#[test]
fn control_answers_under_flood_and_stream_filters_by_prefix() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let ctx = zmq::Context::new();
    // A plain REQ client, as the 2012 tools were.
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_rcvtimeo(5_000).unwrap();
    req.connect(&daemon.control).unwrap();
    let ask = |cmd: &str| {
        req.send(doc! { "cmd": cmd }.to_vec().unwrap(), 0).unwrap();
        bson::Document::from_reader(&req.recv_bytes(0).unwrap()[..]).unwrap()
    };
    let stream_port = ask("SOCK_STREAM").get_i32("port").unwrap();
    let collect_port = ask("SOCK_COLLECT").get_i32("port").unwrap();
    assert!(daemon.collect.ends_with(&format!(":{collect_port}")));
    assert!(daemon.stream.ends_with(&format!(":{stream_port}")));
    // A malformed request gets an error reply, not a crash.
    req.send(&b"not bson"[..], 0).unwrap();
    let reply = bson::Document::from_reader(&req.recv_bytes(0).unwrap()[..]).unwrap();
    assert!(reply.get_str("error").is_ok());
    assert!(
        ask("NOPE")
            .get_str("error")
            .unwrap()
            .contains("unknown cmd")
    );

    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"request").unwrap();
    sub.set_rcvtimeo(5_000).unwrap();
    sub.connect(&format!("tcp://127.0.0.1:{stream_port}"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let the subscription reach the publisher

    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    push.send(event("job"), 0).unwrap();
    push.send(event("request.sql"), 0).unwrap();
    let topic = sub.recv_bytes(0).unwrap();
    let body = sub.recv_bytes(0).unwrap();
    assert_eq!(topic, b"request.sql");
    assert_eq!(body, event("request.sql"));

    // Flood from another thread while STATUS is asked repeatedly.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collect = daemon.collect.clone();
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let push = ctx.socket(zmq::PUSH).unwrap();
            push.set_linger(0).unwrap();
            push.connect(&collect).unwrap();
            let frame = event("flood");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                if push.send(&frame[..], zmq::DONTWAIT).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let s = ask("STATUS");
        slowest = slowest.max(t.elapsed());
        assert!(s.get_i64("events_in").unwrap() > 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(flood.join().unwrap() > 0);
    // Not a benchmark: a daemon that serves control only when idle would take seconds here.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest STATUS under flood: {slowest:?}"
    );
    eprintln!("slowest STATUS under flood: {slowest:?}");

    assert!(ask("SHUTDOWN").get_bool("ok").unwrap());
    let mut daemon = daemon;
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SHUTDOWN");
    assert!(status.success());
}

/// The stream publishes only what some subscriber asked for: subscribers that come, overlap and
/// go each keep receiving exactly their topics.
#[test]
fn live_stream_follows_subscriptions_as_they_come_and_go() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let ctx = zmq::Context::new();
    let subscriber = |topic: &[u8]| {
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_subscribe(topic).unwrap();
        sub.set_rcvtimeo(200).unwrap();
        sub.set_linger(0).unwrap();
        sub.connect(&daemon.stream).unwrap();
        sub
    };
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    // Everything a subscriber receives until it has been quiet for 200 ms (at most 5 s).
    let received = |sub: &zmq::Socket| {
        let mut channels = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Ok(topic) = sub.recv_bytes(0) else { break };
            let event = sub.recv_bytes(0).unwrap();
            let doc = bson::Document::from_reader(&event[..]).unwrap();
            assert_eq!(doc.get_str("type").unwrap().as_bytes(), &topic[..]);
            channels.push(String::from_utf8(topic).unwrap());
        }
        channels
    };
    // Sends a marker of each channel until `sub` sees `until` (a subscription takes a moment to
    // reach the daemon), then the real events; returns what each subscriber then received.
    let settle = |sub: &zmq::Socket, until: &str| {
        for _ in 0..50 {
            push.send(event(until), 0).unwrap();
            if sub.recv_bytes(0).is_ok() {
                sub.recv_bytes(0).unwrap();
                break;
            }
        }
        // Drain the extra markers.
        while sub.recv_bytes(0).is_ok() {}
    };

    let requests = subscriber(b"request");
    settle(&requests, "request.warmup");
    let everything = subscriber(b"");
    settle(&everything, "warmup");
    while requests.recv_bytes(0).is_ok() {}
    let more_requests = subscriber(b"request");
    // `more_requests` shares a topic already subscribed: give its connection time to join.
    settle(&more_requests, "request.warmup");
    while requests.recv_bytes(0).is_ok() {}
    while everything.recv_bytes(0).is_ok() {}
    for channel in ["job", "request", "request.sql", "other"] {
        push.send(event(channel), 0).unwrap();
    }
    assert_eq!(received(&requests), ["request", "request.sql"]);
    assert_eq!(received(&more_requests), ["request", "request.sql"]);
    assert_eq!(
        received(&everything),
        ["job", "request", "request.sql", "other"]
    );

    // The first `request` subscriber leaves: the topic stays subscribed by the other one.
    drop(requests);
    drop(everything);
    std::thread::sleep(Duration::from_millis(300));
    for channel in ["job", "request.cache"] {
        push.send(event(channel), 0).unwrap();
    }
    assert_eq!(received(&more_requests), ["request.cache"]);
    // All gone, then one comes back: it receives again.
    drop(more_requests);
    std::thread::sleep(Duration::from_millis(300));
    push.send(event("request"), 0).unwrap();
    let back = subscriber(b"job");
    settle(&back, "job");
    push.send(event("job"), 0).unwrap();
    push.send(event("request"), 0).unwrap();
    assert_eq!(received(&back), ["job"]);
    assert!(count(&status(&daemon), "events_in") >= 10);
}

#[test]
fn sigterm_during_a_flood_exits_zero_with_everything_on_disk() {
    let root = tempdir();
    let log_path = root.path().join("logs");
    let mut daemon = start_ziggyd(&["--log-path", log_path.to_str().unwrap()]);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&daemon.collect).unwrap();
    let frame =
        doc! { "id": "a", "type": "request", "host": "h", "pid": 1, "start": 1.7e9, "end": 1.7e9,
        "body": { "pad": "y".repeat(100) } }
        .to_vec()
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(2) && sent < 2_000_000 {
        if push.send(&frame[..], zmq::DONTWAIT).is_ok() {
            sent += 1;
        }
        if sent == 20_000 {
            daemon.signal("TERM");
        }
    }
    drop(push);
    let status = daemon
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let stderr = daemon.stderr_text();
    // The final line: "ziggyd: stopped; N events in, M written, ..."
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let numbers: Vec<i64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    let (events_in, written) = (numbers[0], numbers[1]);
    assert!(events_in > 0);
    assert_eq!(events_in, written, "{line}");
    assert_eq!(read_all_events(&log_path).len() as i64, written);
}

#[test]
fn operator_commands_and_flag_errors() {
    // No daemon: `ziggyd status` fails clearly with exit 1 within its timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::process::Command::new(bin("ziggyd"))
        .args([
            "--control",
            &format!("127.0.0.1:{port}"),
            "status",
            "--timeout-ms",
            "300",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no answer"),
        "{out:?}"
    );

    // A bad flag: exit 2 with clap's message.
    let out = std::process::Command::new(bin("ziggyd"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));

    // An address it cannot bind: exit 2, naming it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(bin("ziggyd"))
        .args(["-H", &addr, "--control", "127.0.0.1:0", "--stream-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&addr),
        "{out:?}"
    );

    // Addresses that cannot be: exit 2, naming them.
    for (collect, says) in [
        ("localhost:99999", "99999"),
        (
            "no-such-host.invalid:3514",
            "cannot resolve host name \"no-such-host.invalid\"",
        ),
        ("localhost", "not HOST:PORT"),
    ] {
        let out = std::process::Command::new(bin("ziggyd"))
            .args(["-H", collect, "--stream-only"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{collect}: {stderr}");
        assert!(stderr.contains(says), "{collect}: {stderr}");
    }

    // Flags that cannot work: exit 2, saying what would.
    let logs = tempdir();
    let log_path = logs.path().to_str().unwrap();
    for (args, says) in [
        (vec![], "--stream-only"),
        (vec!["--log-path", log_path, "--flush-ms", "0"], "1..=60000"),
        (
            vec!["--publish", "127.0.0.1:9", "--spool-segment-bytes", "0"],
            "4096..=1073741824",
        ),
        (
            vec![
                "--publish",
                "127.0.0.1:9",
                "--spool-segment-bytes",
                "1000000",
                "--spool-max-bytes",
                "5000",
            ],
            "below one segment",
        ),
    ] {
        let out = std::process::Command::new(bin("ziggyd"))
            .args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    // A running daemon: table, JSON, shutdown.
    let mut daemon = start_ziggyd(&["--stream-only"]);
    let out = std::process::Command::new(bin("ziggyd"))
        .args(["--control", &daemon.control, "status"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("events_in") && table.contains("uptime"),
        "{table}"
    );
    let out = std::process::Command::new(bin("ziggyd"))
        .args(["--control", &daemon.control, "status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["events_in"], 0);
    // The table shows every field STATUS has.
    for (key, value) in json.as_object().unwrap() {
        assert!(
            table.contains(key.as_str()),
            "{key} missing from the table:\n{table}"
        );
        if let Some(section) = value.as_object() {
            for key in section.keys() {
                assert!(table.contains(key.as_str()), "{key} missing:\n{table}");
            }
        }
    }
    let out = std::process::Command::new(bin("ziggyd"))
        .args(["--control", &daemon.control, "shutdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(daemon.wait_exit(Duration::from_secs(10)).unwrap().success());
}

#[test]
fn files_moved_by_logrotate_are_reopened() {
    let root = tempdir();
    let log_path = root.path().join("logs");
    let daemon = start_ziggyd(&[
        "--log-path",
        log_path.to_str().unwrap(),
        "--flush-ms",
        "100",
    ]);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    let event = |n: i32| {
        doc! { "id": "a", "type": "request", "host": "h", "pid": 1, "start": 1.7e9, "end": 1.7e9, "body": { "n": n } }
            .to_vec()
            .unwrap()
    };
    let file = ziggy_proto::day::log_file_path(
        &log_path,
        "request",
        ziggy_proto::day::Day::from_unix(1.7e9),
    );
    for n in 0..10 {
        push.send(event(n), 0).unwrap();
    }
    assert!(wait_until(T, || std::fs::metadata(&file)
        .map(|m| m.len())
        .unwrap_or(0)
        == 10 * event(0).len() as u64));
    // logrotate (create mode): move the file away, then keep logging.
    let rotated = file.with_extension("bson.1");
    std::fs::rename(&file, &rotated).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // a flush tick notices the move
    for n in 10..15 {
        push.send(event(n), 0).unwrap();
    }
    assert!(wait_until(T, || file.exists()
        && std::fs::metadata(&file).unwrap().len()
            == 5 * event(0).len() as u64));
    assert_eq!(
        std::fs::metadata(&rotated).unwrap().len(),
        10 * event(0).len() as u64
    );
    // Deleted outright: reopened too.
    std::fs::remove_file(&file).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    push.send(event(99), 0).unwrap();
    assert!(wait_until(T, || file.exists()
        && std::fs::metadata(&file).unwrap().len()
            == event(0).len() as u64));
}
