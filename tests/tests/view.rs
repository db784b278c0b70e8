//! ziggyview as a real process over files written by an independent encoder, and live against a
//! real ziggyd.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::minibson::{Value, event};
use common::*;

fn view(args: &[&str]) -> Output {
    Command::new(bin("ziggyview")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

// 2024-02-29 00:00:01 UTC
const T0: f64 = 1_709_164_801.0;

#[test]
fn readable_and_json_output_exactly() {
    let dir = tempdir();
    let e = event(
        "abc",
        "request",
        T0,
        T0 + 0.0125,
        vec![
            ("path", s("/x")),
            (
                "response",
                Value::Doc(vec![("status".into(), Value::Int32(200))]),
            ),
        ],
    );
    let file = dir.path().join("f.bson");
    std::fs::write(&file, &e).unwrap();
    let out = view(&["--color", "never", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "2024-02-29 00:00:01.000000 request 12.500ms id=abc host=web1 pid=42\n  path = \"/x\"\n  response.status = 200\n\n"
    );
    let out = view(&["--json", file.to_str().unwrap()]);
    assert_eq!(
        stdout(&out),
        "{\"id\":\"abc\",\"type\":\"request\",\"host\":\"web1\",\"pid\":42,\"start\":1709164801.0,\"end\":1709164801.0125,\"body\":{\"path\":\"/x\",\"response\":{\"status\":200}}}\n"
    );
    // Colours only when asked (stdout here is a pipe).
    let out = view(&["--color", "always", file.to_str().unwrap()]);
    assert!(stdout(&out).contains("\x1b[1;36mrequest\x1b[0m"));
    // stdin, and --fields.
    let mut child = Command::new(bin("ziggyview"))
        .args(["--json", "--fields", "response.status"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&e).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).ends_with("\"body\":{\"response\":{\"status\":200}}}\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn date_range_and_prefix_filter() {
    let dir = tempdir();
    for (i, day) in ["20240101", "20240102", "20240103"].iter().enumerate() {
        let t = 1_704_067_200.0 + 86_400.0 * i as f64;
        common::web::write_events(
            dir.path(),
            day,
            "request",
            &[event(&format!("r{i}"), "request", t, t + 1.0, vec![])],
        );
        common::web::write_events(
            dir.path(),
            day,
            "request.sql",
            &[event(&format!("r{i}"), "request.sql", t, t + 0.5, vec![])],
        );
        common::web::write_events(
            dir.path(),
            day,
            "job",
            &[event(&format!("j{i}"), "job", t, t + 0.1, vec![])],
        );
    }
    let log = dir.path().to_str().unwrap();
    let ids = |o: &Output| -> Vec<String> {
        stdout(o)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                format!(
                    "{}:{}",
                    v["type"].as_str().unwrap(),
                    v["id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let out = view(&[
        "--json",
        "--log-path",
        log,
        "request",
        "--start-date",
        "20240102",
        "--end-date",
        "20240103",
    ]);
    assert_eq!(ids(&out), ["request:r1", "request:r2"]);
    let out = view(&[
        "--json",
        "--log-path",
        log,
        "request*",
        "--start-date",
        "20240101",
        "--end-date",
        "20240101",
    ]);
    assert_eq!(ids(&out), ["request:r0", "request.sql:r0"]);
    // Missing day folder, bad date: one clear line, non-zero.
    let out = view(&[
        "--log-path",
        log,
        "request",
        "--start-date",
        "20230101",
        "--end-date",
        "20230101",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no day folder") && stderr(&out).contains("20230101"),
        "{}",
        stderr(&out)
    );
    let out = view(&["--log-path", log, "request", "--start-date", "2024-01-01"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad date"));
    let out = view(&["--log-path", "/no/such/dir", "request"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/dir"));
}

#[test]
fn grouping_builds_trees_and_keeps_partial_groups() {
    let dir = tempdir();
    let file = dir.path().join("all.bson");
    let mut bytes = Vec::new();
    // Children close before their parent, as the runtime emits them.
    bytes.extend(event(
        "g1",
        "request.sql",
        T0 + 0.1,
        T0 + 0.2,
        vec![("q", s("a"))],
    ));
    bytes.extend(event("g2", "request.sql", T0 + 0.1, T0 + 0.2, vec![])); // parent never arrives
    bytes.extend(event("g1", "request.cache", T0 + 0.05, T0 + 0.06, vec![]));
    bytes.extend(event("g1", "request", T0, T0 + 1.0, vec![]));
    std::fs::write(&file, bytes).unwrap();
    let out = view(&["--json", "--group", file.to_str().unwrap()]);
    let groups: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(groups.len(), 2);
    let g1 = groups.iter().find(|g| g["id"] == "g1").unwrap();
    assert_eq!(g1["partial"], false);
    assert_eq!(g1["events"].as_array().unwrap().len(), 1);
    let root = &g1["events"][0];
    assert_eq!(root["type"], "request");
    let children: Vec<_> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["request.cache", "request.sql"]); // start order
    let g2 = groups.iter().find(|g| g["id"] == "g2").unwrap();
    assert_eq!(g2["partial"], true);
    let out = view(&["--group", "--color", "never", file.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("group g2 (1 events) (partial"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn stats_of_a_timer() {
    let dir = tempdir();
    let file = dir.path().join("t.bson");
    let mut bytes = Vec::new();
    for i in 1..=100 {
        bytes.extend(event(
            "x",
            "request",
            T0,
            T0 + 1.0,
            vec![("request_time", Value::Double(i as f64 / 1000.0))],
        ));
    }
    bytes.extend(event("y", "request", T0, T0 + 1.0, vec![])); // no timer
    std::fs::write(&file, bytes).unwrap();
    let out = view(&["--stats", "request_time", "--json", file.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["count"], 100);
    assert_eq!(v["min"], 0.001);
    assert_eq!(v["p50"], 0.05);
    assert_eq!(v["p90"], 0.09);
    assert_eq!(v["p99"], 0.099);
    assert_eq!(v["max"], 0.1);
    let out = view(&["--stats", "request_time", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("1 events without it") && text.contains("#"),
        "{text}"
    );
}

#[test]
fn old_binary_strings_large_documents_and_truncation() {
    let dir = tempdir();
    let file = dir.path().join("old.bson");
    let bin = |t: &str| Value::Binary(0, t.as_bytes().to_vec());
    let old = common::minibson::encode(&[
        ("id", bin("legacy")),
        ("type", bin("request")),
        ("host", bin("py1")),
        ("pid", Value::Int32(1)),
        ("start", Value::Double(T0)),
        ("end", Value::Double(T0 + 1.0)),
        ("body", Value::Doc(vec![("agent".into(), bin("curl"))])),
    ]);
    let big = event(
        "big",
        "request",
        T0,
        T0,
        vec![("blob", s(&"z".repeat(200_000)))],
    );
    let third = event("cut", "request", T0, T0, vec![]);
    let mut bytes = old.clone();
    bytes.extend(&big);
    let cut_at = bytes.len();
    bytes.extend(&third[..third.len() - 3]);
    std::fs::write(&file, &bytes).unwrap();
    let out = view(&["--json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "every complete event first");
    assert_eq!(lines[0]["id"], "legacy");
    assert_eq!(lines[0]["body"]["agent"], "curl");
    assert_eq!(lines[1]["body"]["blob"].as_str().unwrap().len(), 200_000);
    let err = stderr(&out);
    assert!(
        err.contains(file.to_str().unwrap()) && err.contains(&format!("byte {cut_at}")),
        "{err}"
    );
    // Unreadable path.
    let out = view(&["/no/such/file.bson"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/no/such/file.bson"));
}

#[test]
fn live_from_a_real_daemon() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = daemon.control.trim_start_matches("tcp://").to_owned();
    let viewer = Command::new(bin("ziggyview"))
        .args(["-H", &control, "request*", "--count", "3", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    // Keep sending until the viewer (which subscribes asynchronously) has seen three.
    let mut viewer = viewer;
    let mut n = 0;
    let done = wait_until(Duration::from_secs(20), || {
        n += 1;
        push.send(event(&format!("e{n}"), "job", T0, T0, vec![]), 0)
            .unwrap();
        push.send(event(&format!("e{n}"), "request.sql", T0, T0, vec![]), 0)
            .unwrap();
        viewer.try_wait().unwrap().is_some()
    });
    assert!(done, "viewer did not finish");
    let out = viewer.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["type"] == "request.sql"));

    // No daemon there: a clear error within the timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = view(&[
        "-H",
        &format!("127.0.0.1:{port}"),
        "request",
        "--timeout-ms",
        "300",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no answer"), "{}", stderr(&out));
}
