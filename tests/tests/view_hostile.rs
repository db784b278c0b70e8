//! ziggyview as a real process on hostile or odd input: terminal escapes in every field, events
//! nested thousands deep, a corrupt file among good ones, a FIFO in the log path, a range of
//! centuries, an empty channel pattern, and live output through a pipe (flushed per event, SIGTERM
//! and SIGINT exit 0, a daemon that goes away and comes back). Every run has a time bound.

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::minibson::{Value, encode, event};
use common::pipes::{Run, line_with, lines_of, proc_of, run_bounded};
use common::*;

// 2024-02-29 00:00:01 UTC
const T0: f64 = 1_709_164_801.0;
const DAY: &str = "20240229";

/// Runs ziggyview with `args` (and `stdin`), killed and failed if it runs longer than 20 s.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Run {
    run_bounded(&bin("ziggyview"), args, stdin, Duration::from_secs(20))
}

/// A process ended by an exit code of 0 or 1, never by a signal.
fn assert_clean_exit(status: ExitStatus, what: &str) {
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "{what}: ended by {status:?}, not an exit code of 0 or 1"
    );
}

/// A day file of `channel` holding one event `id`.
fn one_event_file(dir: &Path, channel: &str, id: &str) {
    write_day(dir, channel, &event(id, channel, T0, T0, vec![]));
}

/// Fails unless `text` contains `needle`.
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// `--json --log-path DIR CHANNEL --start-date FROM --end-date TO`, run.
fn listing(dir: &Path, channel: &str, from: &str, to: &str) -> Run {
    let dir = dir.to_str().unwrap();
    let args = ["--json", "--log-path", dir, channel];
    run(
        &[&args[..], &["--start-date", from, "--end-date", to]].concat(),
        None,
    )
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn write_day(dir: &Path, channel: &str, bytes: &[u8]) -> std::path::PathBuf {
    let folder = dir.join(DAY);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!("{channel}.{DAY}.bson"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Bytes that must never reach the terminal raw: C0 but newline, DEL, C1 (as UTF-8), and the bidi
/// overrides and isolates.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202A}'..='\u{202E}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect()
}

#[test]
fn terminal_escapes_in_any_field_are_printed_escaped() {
    let dir = tempdir();
    let nasty = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{7f}\u{85}\u{9b}31m\u{202e}\u{2066}";
    let hostile = encode(&[
        ("id", s(&format!("id{nasty}"))),
        ("type", s(&format!("request{nasty}"))),
        ("host", s(&format!("host{nasty}"))),
        ("pid", Value::Int32(7)),
        ("start", Value::Double(T0)),
        ("end", Value::Double(T0 + 0.5)),
        (
            "body",
            Value::Doc(vec![
                (format!("key{nasty}"), s(&format!("value{nasty}"))),
                (
                    format!("outer{nasty}"),
                    Value::Doc(vec![("n".into(), Value::Double(1.5))]),
                ),
                ("list".into(), Value::Array(vec![s(nasty)])),
            ]),
        ),
    ]);
    let file = dir.path().join("hostile.bson");
    std::fs::write(&file, &hostile).unwrap();
    let f = file.to_str().unwrap();
    let stats_key = format!("outer{nasty}.n");
    for args in [
        vec!["--color", "never", f],
        vec!["--color", "always", f],
        vec!["--group", f],
        vec!["--stats", "n", f],
        vec!["--stats", &stats_key, f],
        vec!["--fields", "list", f],
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        let mut text = out.stdout.clone();
        if args[1] == "always" {
            // Our own colour codes are the only escape sequences allowed.
            for code in [
                "\u{1b}[0m",
                "\u{1b}[2m",
                "\u{1b}[1;36m",
                "\u{1b}[33m",
                "\u{1b}[32m",
            ] {
                text = text.replace(code, "");
            }
        }
        assert_eq!(
            raw_controls(&text),
            Vec::<char>::new(),
            "{args:?} printed {text:?}"
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let readable = run(&["--color", "never", f], None).stdout;
    for shown in [
        "id=id\\u001b]0;owned\\u0007\\u001b[2J\\u007f\\u0085\\u009b31m\\u202e\\u2066",
        "host=host\\u001b]0;",
        "request\\u001b]0;",
        "key\\u001b]0;owned",
        "outer\\u001b]0;owned\\u0007\\u001b[2J\\u007f\\u0085\\u009b31m\\u202e\\u2066.n = 1.5",
        "\"value\\u001b]0;owned\\u0007",
    ] {
        assert!(readable.contains(shown), "{shown:?} not in {readable}");
    }
    // JSON: valid, nothing raw, and the same strings once parsed.
    for args in [vec!["--json", f], vec!["--json", "--group", f]] {
        let out = run(&args, None);
        assert_eq!(
            raw_controls(&out.stdout),
            Vec::<char>::new(),
            "{}",
            out.stdout
        );
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        let e = if args.len() == 3 { &v["events"][0] } else { &v };
        assert_eq!(e["host"], format!("host{nasty}"));
        assert_eq!(e["body"][format!("key{nasty}")], format!("value{nasty}"));
    }
    // stdin takes the same path.
    let out = run(&["--color", "never"], Some(&hostile));
    assert_eq!(raw_controls(&out.stdout), Vec::<char>::new());
    assert!(out.stdout.contains("host=host\\u001b]0;"));
}

/// A document whose element `0` holds `levels` documents (tag 0x03) or arrays (tag 0x04) nested
/// in each other, built without recursion.
fn nested(levels: usize, tag: u8) -> Vec<u8> {
    let mut inner = vec![5, 0, 0, 0, 0];
    for _ in 0..levels {
        let mut outer = ((inner.len() + 8) as i32).to_le_bytes().to_vec();
        outer.extend_from_slice(&[tag, b'0', 0]);
        outer.extend_from_slice(&inner);
        outer.push(0);
        inner = outer;
    }
    inner
}

/// An event of channel `request` whose body is `body` (a BSON document's bytes).
fn event_with_body(id: &str, body: &[u8]) -> Vec<u8> {
    let head = encode(&[
        ("id", s(id)),
        ("type", s("request")),
        ("host", s("web1")),
        ("start", Value::Double(T0)),
        ("end", Value::Double(T0 + 1.0)),
    ]);
    let mut e = head[..head.len() - 1].to_vec();
    e.extend_from_slice(b"\x03body\0");
    e.extend_from_slice(body);
    e.push(0);
    let len = e.len() as i32;
    e[..4].copy_from_slice(&len.to_le_bytes());
    e
}

/// A body `{js: Code("f", scope)}` whose scope nests `levels` documents.
fn deep_scope_body(levels: usize) -> Vec<u8> {
    let scope = nested(levels, 0x03);
    let code = b"f\0";
    let total = 4 + 4 + code.len() + scope.len();
    let mut value = (total as i32).to_le_bytes().to_vec();
    value.extend_from_slice(&(code.len() as i32).to_le_bytes());
    value.extend_from_slice(code);
    value.extend_from_slice(&scope);
    let mut body = ((value.len() + 5 + 4) as i32).to_le_bytes().to_vec();
    body.extend_from_slice(b"\x0fjs\0");
    body.extend_from_slice(&value);
    body.push(0);
    body
}

#[test]
fn events_nested_thousands_deep_are_skipped_and_the_rest_printed() {
    let dir = tempdir();
    let mut bytes = event(
        "before",
        "request",
        T0,
        T0 + 0.25,
        vec![("t", Value::Double(0.25))],
    );
    let mut deep_offsets = Vec::new();
    for (id, body) in [
        ("deepdoc", nested(2_400, 0x03)),
        ("deeparray", nested(50_000, 0x04)),
        ("deepscope", deep_scope_body(3_000)),
    ] {
        deep_offsets.push(bytes.len());
        bytes.extend(event_with_body(id, &body));
    }
    // 1 (event) + 1 (body) + 98 = 100 levels: still shown.
    bytes.extend(event_with_body("hundred", &nested(98, 0x03)));
    bytes.extend(event(
        "after",
        "request",
        T0,
        T0 + 0.5,
        vec![("t", Value::Double(0.5))],
    ));
    let file = dir.path().join("deep.bson");
    std::fs::write(&file, &bytes).unwrap();
    let f = file.to_str().unwrap();
    for args in [
        vec!["--color", "never", f],
        vec!["--json", f],
        vec!["--stats", "t", f],
        vec!["--stats", "t", "--json", f],
        vec!["--group", f],
        vec!["--group", "--json", f],
        vec!["--fields", "t", f],
    ] {
        let out = run(&args, None);
        assert_clean_exit(out.status, &format!("{args:?}"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        for offset in &deep_offsets {
            let needle = format!(
                "{f}: event at byte {offset} skipped: documents nested deeper than 100 levels"
            );
            assert!(out.stderr.contains(&needle), "{args:?}: {}", out.stderr);
        }
        if args.contains(&"--stats") {
            assert!(out.stdout.contains("\"count\":2") || out.stdout.contains("  2 "));
        } else {
            for id in ["before", "hundred", "after"] {
                assert!(out.stdout.contains(id), "{args:?}: {id} missing");
            }
            assert!(!out.stdout.contains("deep"), "{args:?}");
        }
    }
    // From stdin too.
    let out = run(&["--json"], Some(&bytes));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert!(out.stderr.contains("<stdin>: event at byte"));
}

#[test]
fn a_corrupt_file_is_reported_and_the_other_files_still_read() {
    let dir = tempdir();
    one_event_file(dir.path(), "request", "a");
    let good = event("b1", "request.cache", T0, T0, vec![]);
    let mut corrupt = good.clone();
    corrupt.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0, 0]); // an absurd length prefix
    corrupt.extend(event("b2", "request.cache", T0, T0, vec![]));
    let corrupt_path = write_day(dir.path(), "request.cache", &corrupt);
    one_event_file(dir.path(), "request.sql", "c");
    let out = listing(dir.path(), "request*", DAY, DAY);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let ids: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids, ["\"a\"", "\"b1\"", "\"c\""]);
    let needle = format!(
        "{}: corrupt event at byte {}",
        corrupt_path.display(),
        good.len()
    );
    assert_has(&out.stderr, &needle);
    // Files named on the command line too, an unreadable one among them.
    let a = dir.path().join(DAY).join(format!("request.{DAY}.bson"));
    let out = run(
        &[
            "--json",
            corrupt_path.to_str().unwrap(),
            "/no/such/file.bson",
            a.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(out.stderr.contains("/no/such/file.bson") && out.stderr.contains(&needle));
}

#[test]
fn a_fifo_in_the_log_path_is_skipped_without_opening_it() {
    let dir = tempdir();
    one_event_file(dir.path(), "request", "a");
    let fifo = dir.path().join(DAY).join(format!("request.sql.{DAY}.bson"));
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    one_event_file(dir.path(), "request.zz", "z");
    let started = Instant::now();
    let out = listing(dir.path(), "request*", DAY, DAY);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert_has(
        &out.stderr,
        &format!("{}: not a regular file (a FIFO), skipped", fifo.display()),
    );
}

#[test]
fn a_range_of_centuries_prints_one_summary_line() {
    let dir = tempdir();
    one_event_file(dir.path(), "request", "a");
    std::fs::create_dir(dir.path().join("20240301")).unwrap();
    std::fs::create_dir(dir.path().join("not-a-day")).unwrap();
    let out = listing(dir.path(), "request", "19700101", "21060207");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_has(
        &out.stderr,
        "no day folder for 49709 of 49711 days in 19700101..21060207",
    );
    // A few missing days are named.
    let out = listing(dir.path(), "request", "20240228", "20240301");
    assert_eq!(out.status.code(), Some(0));
    assert_has(
        &out.stderr,
        "no day folder for 1 of 3 days in 20240228..20240301 under ",
    );
    assert_has(&out.stderr, ": 20240228");
}

#[test]
fn an_empty_channel_pattern_is_refused() {
    let dir = tempdir();
    one_event_file(dir.path(), "request", "a");
    let file = dir.path().join(DAY).join(format!("request.{DAY}.bson"));
    for args in [
        vec!["--log-path", dir.path().to_str().unwrap(), ""],
        vec!["--channel", "", file.to_str().unwrap()],
        vec!["-H", "127.0.0.1:9", ""],
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_has(&out.stderr, "empty channel pattern");
        assert!(out.stdout.is_empty());
    }
}

/// Starts `ziggyview ARGS` with stdout and stderr piped, read line by line.
fn spawn_view(args: &[&str]) -> (Proc, Receiver<String>, Receiver<String>) {
    let mut child = Command::new(bin("ziggyview"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    (proc_of(child), out, err)
}

/// Pushes `request` events `tag0`, `tag1`, … to `collect` (every 200 ms, at most 100) until one
/// comes out of the viewer's stdout: the viewer subscribes asynchronously.
fn push_until_seen(collect: &str, lines: &Receiver<String>, tag: &str) -> String {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(collect).unwrap();
    for n in 0..100 {
        let e = event(&format!("{tag}{n}"), "request", T0, T0 + 0.001, vec![]);
        push.send(e, 0).unwrap();
        if let Some(line) = line_with(lines, tag, Duration::from_millis(200)) {
            return line;
        }
    }
    panic!("no `{tag}` event came out of ziggyview within 20 s");
}

fn control_of(daemon: &Proc) -> String {
    daemon.control.trim_start_matches("tcp://").to_owned()
}

#[test]
fn live_output_reaches_a_pipe_per_event_and_sigterm_exits_0() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = control_of(&daemon);
    for readable in [false, true] {
        let mut args = vec!["-H", control.as_str(), "request*"];
        if !readable {
            args.push("--json");
        }
        let (mut viewer, out, _err) = spawn_view(&args);
        // One small event is far below any buffer size: it shows only if it is flushed.
        push_until_seen(&daemon.collect, &out, "first");
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.connect(&daemon.collect).unwrap();
        push.send(event("second", "request", T0, T0, vec![]), 0)
            .unwrap();
        assert!(
            line_with(&out, "second", Duration::from_secs(5)).is_some(),
            "the second event was not flushed"
        );
        viewer.signal("TERM");
        let status = viewer.wait_exit(Duration::from_secs(5));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "readable={readable}"
        );
    }
}

#[test]
fn live_statistics_are_printed_on_sigint() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = control_of(&daemon);
    // A JSON viewer beside it shows when the subscription is live.
    let (_probe, probe_out, _) = spawn_view(&["-H", &control, "request", "--json"]);
    let (mut viewer, out, _err) = spawn_view(&["-H", &control, "request", "--stats", "t"]);
    push_until_seen(&daemon.collect, &probe_out, "warmup");
    std::thread::sleep(Duration::from_millis(300));
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&daemon.collect).unwrap();
    for i in 0..10 {
        let e = event(
            &format!("s{i}"),
            "request",
            T0,
            T0,
            vec![("t", Value::Double(i as f64))],
        );
        push.send(e, 0).unwrap();
    }
    assert!(line_with(&probe_out, "s9", Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(300));
    viewer.signal("INT");
    let status = viewer.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let mut text = Vec::new();
    while let Ok(line) = out.recv_timeout(Duration::from_secs(2)) {
        text.push(line);
    }
    assert!(
        text.iter().any(|l| l.starts_with("t: ")) && text.iter().any(|l| l.starts_with("request")),
        "{text:?}"
    );
}

#[test]
fn a_daemon_that_goes_away_is_reported_and_followed_when_it_returns() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = control_of(&daemon);
    let collect = daemon.collect.trim_start_matches("tcp://").to_owned();
    let (mut viewer, out, err) =
        spawn_view(&["-H", &control, "request", "--json", "--timeout-ms", "500"]);
    push_until_seen(&daemon.collect, &out, "before");
    drop(daemon); // SIGKILL: no goodbye
    let gone = line_with(&err, "is not answering", Duration::from_secs(15));
    assert!(gone.is_some(), "no message that the daemon went away");
    assert!(gone.unwrap().contains("still trying"));
    assert!(viewer.child.try_wait().unwrap().is_none(), "it kept going");
    // The same control and collect ports again; the stream port is a new one.
    let daemon = start_ziggyd_at(&collect, &control, &["--stream-only"]);
    assert!(
        line_with(&err, "answers again", Duration::from_secs(15)).is_some(),
        "no message that the daemon is back"
    );
    push_until_seen(&daemon.collect, &out, "after");
    viewer.signal("TERM");
    let status = viewer.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

/// A stand-in for ziggyd's control endpoint on a free port: answers every request with `reply`
/// for up to 30 s, or until the returned sender is dropped.
fn fake_control(reply: Vec<u8>) -> (String, std::sync::mpsc::Sender<()>) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let rep = ctx.socket(zmq::REP).unwrap();
        rep.set_rcvtimeo(100).unwrap();
        rep.set_linger(0).unwrap();
        rep.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = rep.get_last_endpoint().unwrap().unwrap();
        ready_tx.send(endpoint).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && matches!(
                stopped.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty)
            )
        {
            if rep.recv_bytes(0).is_ok() {
                rep.send(reply.clone(), 0).unwrap();
            }
        }
    });
    let endpoint = ready.recv_timeout(Duration::from_secs(5)).unwrap();
    (endpoint.trim_start_matches("tcp://").to_owned(), stop)
}

#[test]
fn deep_documents_from_a_hostile_daemon_are_refused_live() {
    // A control reply nested 5,000 deep: refused before the `bson` crate's recursive decoder.
    let (control, _stop) = fake_control(nested(5_000, 0x03));
    let out = run(&["-H", &control, "request", "--timeout-ms", "2000"], None);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_has(&out.stderr, "is not a BSON document");
    // A stream carrying an event nested 3,000 deep among good ones: skipped, the rest shown.
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::PUB).unwrap();
    publisher.set_linger(0).unwrap();
    publisher.bind("tcp://127.0.0.1:*").unwrap();
    let stream = publisher.get_last_endpoint().unwrap().unwrap();
    let port: i32 = stream.rsplit(':').next().unwrap().parse().unwrap();
    let (control, _stop) = fake_control(bson::doc! { "port": port }.to_vec().unwrap());
    let (mut viewer, out, err) = spawn_view(&["-H", &control, "request", "--json"]);
    let deep = event_with_body("deep", &nested(3_000, 0x03));
    let mut seen = false;
    for n in 0..100 {
        publisher
            .send_multipart([&b"request"[..], &deep], 0)
            .unwrap();
        let good = event(&format!("good{n}"), "request", T0, T0, vec![]);
        publisher
            .send_multipart([&b"request"[..], &good], 0)
            .unwrap();
        if line_with(&out, "good", Duration::from_millis(200)).is_some() {
            seen = true;
            break;
        }
    }
    assert!(seen, "no event came through the fake stream");
    let skipped = line_with(&err, "skipped", Duration::from_secs(5)).unwrap();
    assert_has(&skipped, "documents nested deeper than 100 levels");
    viewer.signal("TERM");
    let status = viewer.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
