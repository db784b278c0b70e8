//! Shared helpers of the end-to-end tests: locating the binaries, running daemons as real
//! processes, reading their files.

#![allow(dead_code)]

pub mod browser;
pub mod minibson;
pub mod nats;
pub mod pipes;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Path to a workspace binary, built once if the test run did not build it.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned(); // target/<profile>
    let path = dir.join(name);
    BUILD.call_once(|| {
        let profile_release = dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "ziggyd", "-p", "ziggyview"])
            .args(["--features", "ziggyd/jetstream"]);
        if profile_release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(status.success(), "building ziggyd and ziggyview failed");
    });
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub collect: String,
    pub control: String,
    pub stream: String,
    pub stderr: Option<std::process::ChildStderr>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends a signal (e.g. libc SIGTERM = 15) by the `kill` command.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the process wrote to stderr (after it exited).
    pub fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

/// Starts `ziggyd` on free loopback ports with extra `args`; returns once it printed its
/// addresses.
pub fn start_ziggyd(args: &[&str]) -> Proc {
    start_ziggyd_at("127.0.0.1:0", "127.0.0.1:0", args)
}

/// Starts `ziggyd` on the given collect and control addresses.
pub fn start_ziggyd_at(collect: &str, control: &str, args: &[&str]) -> Proc {
    let mut child = Command::new(bin("ziggyd"))
        .args(["-H", collect, "--control", control, "-v"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ziggyd");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() >= 7 && words[1] == "collect",
        "unexpected start line {line:?}"
    );
    let stderr = child.stderr.take();
    Proc {
        child,
        collect: words[2].into(),
        control: words[4].into(),
        stream: words[6].into(),
        stderr,
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Decodes every channel file under `dir` with the independent decoder.
pub fn read_all_events(dir: &Path) -> Vec<(PathBuf, minibson::Value)> {
    let mut out = Vec::new();
    for f in files_under(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "bson"))
    {
        let bytes = std::fs::read(&f).unwrap();
        // The daemon may be writing the file now: a last event cut short is not there yet.
        let docs =
            minibson::decode_complete(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        out.extend(docs.into_iter().map(|d| (f.clone(), d)));
    }
    out
}

/// Polls `f` every 20 ms until it returns true, at most `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A free TCP port on loopback (for a daemon that must come back on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fixed free ports, so a daemon can be restarted where its peer looks for it.
pub struct Tier {
    pub collect: String,
    pub control: String,
}

impl Tier {
    pub fn new() -> Tier {
        Tier {
            collect: format!("127.0.0.1:{}", free_port()),
            control: format!("127.0.0.1:{}", free_port()),
        }
    }
}

/// A fresh temporary directory (removed at drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Resident memory of process `pid`, in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A daemon's STATUS, or `None` if it does not answer within 2 s.
pub fn status_at(control: &str) -> Option<bson::Document> {
    ziggyd::client::control_request(control, "STATUS", Duration::from_secs(2)).ok()
}

/// An integer in a STATUS document by dotted path (`forward.spool_events`), 0 if absent.
pub fn num(doc: &bson::Document, path: &str) -> i64 {
    match ziggy::event::lookup(doc, path) {
        Some(bson::Bson::Int64(v)) => *v,
        Some(bson::Bson::Int32(v)) => *v as i64,
        Some(bson::Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

/// `(t, i)` of each event's body → how many times it is in the files under `logs`.
pub fn copies(logs: &Path) -> std::collections::HashMap<(i64, i64), usize> {
    let mut map = std::collections::HashMap::new();
    for (_, e) in read_all_events(logs) {
        let body = e.get("body").unwrap();
        let key = (
            body.get("t").and_then(minibson::Value::int).unwrap(),
            body.get("i").and_then(minibson::Value::int).unwrap(),
        );
        *map.entry(key).or_default() += 1;
    }
    map
}
