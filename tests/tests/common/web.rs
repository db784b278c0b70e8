//! The web view under test: a log directory of known events, `ziggyview serve` as a real process
//! on a free loopback port, and plain HTTP/1.1 requests written by hand (so a test can send a
//! request target no client library would: `/../../etc/passwd`, a forged Host).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::bin;
use super::minibson::{Value, event};

/// 2024-02-29 00:00:01 UTC.
pub const T0: f64 = 1_709_164_801.0;
/// Its day.
pub const DAY: &str = "20240229";

/// A running `ziggyview serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `ziggyview serve --listen 127.0.0.1:0` with `args`; returns once it serves.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", args)
    }

    /// Starts `ziggyview serve --listen LISTEN` with `args`; returns once it serves (its address
    /// is the one it printed).
    pub fn start_on(listen: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin("ziggyview"))
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting ziggyview serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `GET target` with this server's Host.
    pub fn get(&self, target: &str) -> Answer {
        self.get_as(target, &self.addr)
    }

    /// `GET target` with the given Host header.
    pub fn get_as(&self, target: &str, host: &str) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        Answer::parse(&raw)
    }

    /// `GET /api/…` answered 200 with JSON.
    pub fn json(&self, target: &str) -> serde_json::Value {
        let answer = self.get(target);
        assert_eq!(answer.status, 200, "{target}: {}", answer.text());
        answer.json()
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[split + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn doc(fields: &[(&str, Value)]) -> Value {
    Value::Doc(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// Appends events to `DIR/DAY/<channel>.DAY.bson`.
pub fn write_events(dir: &Path, day: &str, channel: &str, events: &[Vec<u8>]) {
    let folder = dir.join(day);
    std::fs::create_dir_all(&folder).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(folder.join(format!("{channel}.{day}.bson")))
        .unwrap();
    for e in events {
        f.write_all(e).unwrap();
    }
}

/// Text that would run script if a page put it in as markup.
pub const HOSTILE: &str =
    "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>\u{202e}";

/// The known events, on [`DAY`]:
/// - `req-a`: a `request` (100 ms) with a `request.cache`, two `request.sql` (the second with a
///   `request.sql.conn` inside) — five events, a tree three levels deep;
/// - `req-b`: a `request` that failed (`body.error` holds [`HOSTILE`], status 500), one
///   `request.sql`;
/// - `bulk-1` … `bulk-100`: `request`s with `request_time` = i/1000 s, 6 s apart (10 minutes),
///   status 200, and every third one a `request.sql` with `query_time`.
pub fn known_events(dir: &Path) {
    let status = |n: i32| ("response", doc(&[("status", Value::Int32(n))]));
    write_events(
        dir,
        DAY,
        "request",
        &[
            event(
                "req-a",
                "request",
                T0,
                T0 + 0.100,
                vec![
                    ("path", s("/a")),
                    status(200),
                    ("request_time", Value::Double(0.100)),
                ],
            ),
            event(
                "req-b",
                "request",
                T0 + 1.0,
                T0 + 1.250,
                vec![
                    ("path", s(HOSTILE)),
                    status(500),
                    ("error", s(&format!("boom {HOSTILE}"))),
                    ("request_time", Value::Double(0.250)),
                ],
            ),
        ],
    );
    write_events(
        dir,
        DAY,
        "request.cache",
        &[event(
            "req-a",
            "request.cache",
            T0 + 0.005,
            T0 + 0.006,
            vec![("hit", Value::Bool(true))],
        )],
    );
    write_events(
        dir,
        DAY,
        "request.sql",
        &[
            event(
                "req-a",
                "request.sql",
                T0 + 0.010,
                T0 + 0.030,
                vec![
                    ("query", s("SELECT 1")),
                    ("query_time", Value::Double(0.020)),
                ],
            ),
            event(
                "req-a",
                "request.sql",
                T0 + 0.040,
                T0 + 0.070,
                vec![
                    ("query", s("SELECT 2")),
                    ("query_time", Value::Double(0.030)),
                ],
            ),
            event(
                "req-b",
                "request.sql",
                T0 + 1.010,
                T0 + 1.200,
                vec![("query_time", Value::Double(0.190))],
            ),
        ],
    );
    write_events(
        dir,
        DAY,
        "request.sql.conn",
        &[event(
            "req-a",
            "request.sql.conn",
            T0 + 0.041,
            T0 + 0.045,
            vec![],
        )],
    );
    let mut bulk = Vec::new();
    let mut sql = Vec::new();
    for i in 1..=100 {
        let t = T0 + 10.0 + 6.0 * f64::from(i);
        let id = format!("bulk-{i}");
        let time = f64::from(i) / 1000.0;
        bulk.push(event(
            &id,
            "request",
            t,
            t + time,
            vec![
                ("path", s(&format!("/bulk/{i}"))),
                status(200),
                ("request_time", Value::Double(time)),
            ],
        ));
        if i % 3 == 0 {
            sql.push(event(
                &id,
                "request.sql",
                t,
                t + time / 2.0,
                vec![("query_time", Value::Double(time / 2.0))],
            ));
        }
    }
    write_events(dir, DAY, "request", &bulk);
    write_events(dir, DAY, "request.sql", &sql);
}

/// `ziggyview ARGS` as a process; its stdout.
pub fn view_stdout(args: &[&str]) -> String {
    let out = Command::new(bin("ziggyview")).args(args).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}
