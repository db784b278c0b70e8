//! Interop with the Python world the 2012 Ziggy came from: files read by pymongo's `bson`, and a
//! plain pyzmq PUSH client (as the 2012 clients were) accepted by ziggyd. `.ci/run` installs both
//! modules; without them these tests say so and return.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn python_with(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with `{modules}` is not available (pip install pymongo pyzmq)");
    }
    ok
}

#[test]
fn pyzmq_client_events_are_written_and_read_back_by_pymongo_bson() {
    if !python_with("bson, zmq") {
        return;
    }
    let root = tempdir();
    let logs = root.path().join("logs");
    let daemon = start_ziggyd(&["--log-path", logs.to_str().unwrap()]);
    // A 2012-style client: one BSON document per frame, strings as binary subtype 0 (old
    // Python 2 clients), and a modern one with real strings.
    let script = r#"
import sys, time, zmq, bson
from bson.binary import Binary
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.connect(sys.argv[1])
now = time.time()
for i in range(50):
    s.send(bson.encode({"id": Binary(b"py%d" % i, 0), "type": Binary(b"request", 0), "host": Binary(b"pyhost", 0),
                        "pid": 99, "start": now, "end": now + 0.01, "body": {"i": i, "agent": Binary(b"py2", 0)}}))
    s.send(bson.encode({"id": "new%d" % i, "type": "request.sql", "host": "pyhost", "pid": 99,
                        "start": now, "end": now + 0.01, "body": {"i": i}}))
s.close(linger=5000)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &daemon.collect])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let control = daemon.control.clone();
    assert!(wait_until(Duration::from_secs(10), || {
        ziggyd::client::control_request(&control, "STATUS", Duration::from_secs(2))
            .is_ok_and(|s| s.get_i64("events_written").unwrap_or(0) == 100)
    }));
    assert!(wait_until(Duration::from_secs(5), || read_all_events(
        &logs
    )
    .len()
        == 100));
    // Every file decodes with pymongo's bson, document by document.
    let reader = r#"
import sys, os, bson
total = 0
for dirpath, _, files in os.walk(sys.argv[1]):
    for name in files:
        if not name.endswith(".bson"):
            continue
        with open(os.path.join(dirpath, name), "rb") as f:
            docs = bson.decode_all(f.read())
        for d in docs:
            assert set(["id", "type", "host", "pid", "start", "end", "body"]) <= set(d), d
        total += len(docs)
print(total)
"#;
    let out = Command::new("python3")
        .args(["-c", reader, logs.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");
    // ziggyview shows the 2012 binary strings as text.
    let out = Command::new(bin("ziggyview"))
        .args([
            "--json",
            "--log-path",
            logs.to_str().unwrap(),
            "request",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["host"], "pyhost");
    assert_eq!(line["body"]["agent"], "py2");
}
