//! The 2012 README's commands, as typed, on one machine: a master (`127.0.0.2` stands for the
//! master host), a local daemon on `localhost:3514` forwarding to it, a plain pyzmq PUSH client,
//! and the three `ziggyview` commands. This is the one test on fixed ports (the ones the README
//! shows): it says SKIPPED and returns when they are taken, or when pyzmq is missing.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::minibson::Value;
use common::*;

const DAY: &str = "20231114";

fn port_free(ip: &str, port: u16) -> bool {
    std::net::TcpListener::bind((ip, port)).is_ok()
}

/// Starts `ziggyd ARGS` (the README's words) and waits for its start line.
fn ziggyd(args: &[&str]) -> Proc {
    let mut child = Command::new(bin("ziggyd"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len() >= 7, "ziggyd {args:?} did not start: {line:?}");
    Proc {
        stderr: child.stderr.take(),
        child,
        collect: words[2].into(),
        control: words[4].into(),
        stream: words[6].into(),
    }
}

/// A plain pyzmq PUSH client, one BSON event per frame, as the 2012 clients sent them.
fn pyzmq_send(addr: &str, events: &[Vec<u8>]) {
    let dir = tempdir();
    let file = dir.path().join("events.bin");
    std::fs::write(&file, events.concat()).unwrap();
    let script = r#"
import sys, struct, zmq
data = open(sys.argv[2], "rb").read()
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.connect(sys.argv[1])
at = 0
while at < len(data):
    n = struct.unpack("<i", data[at:at + 4])[0]
    s.send(data[at:at + n])
    at += n
s.close(linger=5000)
ctx.term()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &format!("tcp://{addr}")])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn event(marker: &str, i: i64) -> Vec<u8> {
    common::minibson::event(
        "0123456789abcdef0123456789abcdef",
        "request",
        1.7e9 + i as f64,
        1.7e9 + i as f64 + 0.25,
        vec![
            ("marker", Value::String(marker.into())),
            ("i", Value::Int64(i)),
        ],
    )
}

fn ziggyview(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(bin("ziggyview"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_2012_readme_commands_work_as_typed() {
    let python = Command::new("python3")
        .args(["-c", "import zmq"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        eprintln!("SKIPPED: python3 with pyzmq is not available (pip install pyzmq)");
        return;
    }
    let taken: Vec<String> = [
        ("127.0.0.2", 3514),
        ("127.0.0.2", 3513),
        ("127.0.0.1", 3514),
        ("127.0.0.1", 3513),
    ]
    .iter()
    .filter(|(ip, port)| !port_free(ip, *port))
    .map(|(ip, port)| format!("{ip}:{port}"))
    .collect();
    if !taken.is_empty() {
        eprintln!("SKIPPED: the README's ports are taken here: {taken:?}");
        return;
    }
    let root = tempdir();
    let logs = format!("{}/", root.path().join("ziggy").display());
    // The default spool of a daemon collecting on port 3514; removed afterwards only if this
    // test made it.
    let spool = std::path::Path::new("/var/tmp/ziggyd/spool-3514");
    let spool_was_there = spool.exists();
    struct Cleanup<'a>(&'a std::path::Path, bool);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::fs::remove_dir_all(self.0);
            }
        }
    }
    let _cleanup = Cleanup(spool, spool_was_there);

    // On the master host, and on the application host: the README's two lines.
    let master = ziggyd(&["-H", "127.0.0.2:3514", &format!("--log-path={logs}")]);
    assert_eq!(master.control, "tcp://127.0.0.2:3513");
    let local = ziggyd(&["-H", "localhost:3514", "--publish=127.0.0.2:3514"]);
    assert_eq!(local.collect, "tcp://127.0.0.1:3514");

    let marker = format!("readme-{}", std::process::id());
    let events: Vec<Vec<u8>> = (0..20).map(|i| event(&marker, i)).collect();
    pyzmq_send("localhost:3514", &events);
    let file = root
        .path()
        .join("ziggy")
        .join(DAY)
        .join(format!("request.{DAY}.bson"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = || {
        std::fs::read(&file)
            .map(|b| String::from_utf8_lossy(&b).matches(marker.as_str()).count())
            .unwrap_or(0)
    };
    while count() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(), 20, "events forwarded to the master's file");

    // cat /var/log/ziggy/request.120310.bson | ziggyview
    let bytes = std::fs::read(&file).unwrap();
    let (code, out, err) = ziggyview(&[], Some(&bytes));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches(marker.as_str()).count(), 20, "{out}");

    // ziggyview --log-path=/var/log/ziggy request --start-date=20120313 --end-date=20120315
    let (code, out, err) = ziggyview(
        &[
            &format!("--log-path={logs}"),
            "request",
            &format!("--start-date={DAY}"),
            &format!("--end-date={DAY}"),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches(marker.as_str()).count(), 20);

    // ziggyview -H localhost:3514 request  (the collect port: it finds the control port below;
    // every event is flushed as it arrives, so a pipe sees it at once)
    let mut live = Command::new(bin("ziggyview"))
        .args(["-H", "localhost:3514", "request"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(live.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("streaming from") && line.contains("control endpoint localhost:3513"),
        "{line}"
    );
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = live.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The subscription needs a moment to reach the daemon; send until one arrives.
    let live_marker = format!("live-{}", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    let mut i = 100;
    while !seen && Instant::now() < deadline {
        pyzmq_send("localhost:3514", &[event(&live_marker, i)]);
        i += 1;
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen |= line.contains(&live_marker);
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &live.id().to_string()])
        .status();
    let status = live.wait().unwrap();
    assert!(seen, "no live event within 20 s");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    drop((local, master));
}
