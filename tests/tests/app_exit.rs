//! An application that never calls `ziggy::shutdown` still delivers what it queued: returning from
//! `main`, `std::process::exit` and a panic in `main` all flush. The daemon is not even listening
//! when the application ends: its events wait in the queue, and the exit handler waits for a
//! peer. Also: the development output (`ZIGGY_JSON`) and runtime sampling overrides
//! (`ZIGGY_SAMPLE`) as an application sees them from its environment.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pipes::{proc_of, read_all};

const APP: &str = env!("CARGO_BIN_EXE_app_exit");

/// Receives events at a PULL bound on `port` until `want` arrived or `quiet` passes with none.
fn pull_events(port: u16, want: usize, quiet: Duration) -> Vec<bson::Document> {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    pull.set_rcvtimeo(quiet.as_millis() as i32).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while events.len() < want && Instant::now() < deadline {
        let Ok(frame) = pull.recv_bytes(0) else { break };
        for doc in ziggy_proto::framing::documents(&frame) {
            let (_, bytes) = doc.expect("well-framed events");
            events.push(bson::Document::from_reader(bytes).unwrap());
        }
    }
    events
}

fn by_channel(events: &[bson::Document]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in events {
        *counts
            .entry(e.get_str("type").unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

/// Starts the app against a port where nobody listens yet, binds a PULL there after the app has
/// emitted everything, and returns what arrived and how the app exited.
fn run_app(ending: &str, count: u64, env: &[(&str, &str)]) -> (Vec<bson::Document>, i32) {
    let port = common::free_port();
    let mut cmd = Command::new(APP);
    cmd.args([&format!("127.0.0.1:{port}"), &count.to_string(), ending])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = read_all(child.stderr.take().unwrap());
    let mut proc = proc_of(child);
    // The app emits in a few milliseconds and then sits in its exit handler; without one it would
    // be gone, its queue lost.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "the app exited before any peer listened: its queued events were not waited for"
    );
    let want = count as usize * 3;
    let events = pull_events(port, want, Duration::from_secs(3));
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .expect("the app ends once its queue is delivered");
    let text =
        String::from_utf8_lossy(&stderr.recv_timeout(Duration::from_secs(5)).unwrap()).into_owned();
    if ending == "panic" {
        assert!(text.contains("ending by a panic"), "stderr: {text}");
    }
    (events, status.code().unwrap_or(-1))
}

#[test]
fn returning_from_main_without_shutdown_delivers_every_queued_event() {
    let (events, code) = run_app("return", 2_000, &[]);
    assert_eq!(code, 0);
    assert_eq!(events.len(), 6_000);
    let ns: std::collections::HashSet<i64> = events
        .iter()
        .filter(|e| e.get_str("type").ok() == Some("request"))
        .map(|e| e.get_document("body").unwrap().get_i64("n").unwrap())
        .collect();
    assert_eq!(ns.len(), 2_000, "every request event once");
}

#[test]
fn process_exit_and_a_panic_in_main_deliver_too() {
    let (events, code) = run_app("exit", 500, &[]);
    assert_eq!((events.len(), code), (1_500, 0));
    let (events, code) = run_app("panic", 500, &[]);
    assert_eq!((events.len(), code), (1_500, 101));
}

#[test]
fn sample_overrides_from_the_environment() {
    let (events, _) = run_app(
        "return",
        400,
        &[("ZIGGY_SAMPLE", "request.cache=off,request.sql=0,Bad.Name=1")],
    );
    let counts = by_channel(&events);
    assert_eq!(counts.get("request"), Some(&400));
    assert_eq!(counts.get("request.cache"), None);
    assert_eq!(counts.get("request.sql"), None);
}

#[test]
fn json_lines_on_stderr_instead_of_the_daemon() {
    let mut child = Command::new(APP)
        .args(["127.0.0.1:1", "50", "return"])
        .env("ZIGGY_JSON", "stderr")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = read_all(child.stderr.take().unwrap());
    let mut proc = proc_of(child);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .expect("the app ends");
    let stderr = String::from_utf8(stderr.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert!(status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each event line is JSON"))
        .collect();
    assert!(stderr.contains("ZIGGY_JSON=stderr"), "{}", stderr);
    assert_eq!(lines.len(), 150);
    let sql = lines.iter().find(|e| e["type"] == "request.sql").unwrap();
    assert_eq!(sql["body"]["query"], "SELECT 0");
    let keys: Vec<&str> = sql
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys[..3], ["id", "type", "host"]);
}
