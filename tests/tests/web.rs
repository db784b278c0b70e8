//! The web view's JSON endpoints (docs/WEB.md), against `ziggyview serve` as a real process over
//! files written by an independent encoder, and live from a real ziggyd.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::minibson::event;
use common::web::*;
use common::*;

fn range() -> String {
    format!("from={DAY}&to={DAY}")
}

/// Every event of `request*` as `ziggyview --json` prints it, in its order.
fn cli_events(log: &str) -> Vec<serde_json::Value> {
    view_stdout(&[
        "--json",
        "--log-path",
        log,
        "request*",
        "--start-date",
        DAY,
        "--end-date",
        DAY,
    ])
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

#[test]
fn search_pages_through_every_event_once_in_the_viewers_order() {
    let dir = tempdir();
    known_events(dir.path());
    let server = Server::start(&["--log-path", dir.path().to_str().unwrap()]);
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "paging does not end");
        let mut target = format!("/api/search?channel=request*&{}&limit=7", range());
        if let Some(c) = &cursor {
            target.push_str(&format!("&cursor={c}"));
        }
        let page = server.json(&target);
        let got = page["events"].as_array().unwrap();
        assert!(got.len() <= 7);
        events.extend(got.iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["stopped"], "limit");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    let expected = cli_events(dir.path().to_str().unwrap());
    assert_eq!(expected.len(), 2 + 1 + 3 + 33 + 1 + 100);
    let shown: Vec<&serde_json::Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(shown, expected.iter().collect::<Vec<_>>());
    // Each event says where it is: day, channel, byte offset.
    assert_eq!(events[0]["at"], format!("{DAY}/request/0"));
    // Without a range, the newest day folder is searched.
    let page = server.json("/api/search?channel=request.cache");
    assert_eq!(page["count"], 1);
    assert_eq!(page["from"], DAY);
}

#[test]
fn id_body_filters_and_fields() {
    let dir = tempdir();
    known_events(dir.path());
    let server = Server::start(&["--log-path", dir.path().to_str().unwrap()]);
    let ids = |target: &str| -> Vec<String> {
        server.json(target)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["event"]["type"].as_str().unwrap(),
                    e["event"]["id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let r = range();
    assert_eq!(
        ids(&format!("/api/search?channel=request*&id=req-a&{r}")),
        [
            "request:req-a",
            "request.cache:req-a",
            "request.sql:req-a",
            "request.sql:req-a",
            "request.sql.conn:req-a"
        ]
    );
    assert_eq!(
        ids(&format!(
            "/api/search?channel=request&filter=response.status%3D500&{r}"
        )),
        ["request:req-b"]
    );
    assert_eq!(
        ids(&format!(
            "/api/search?channel=request&filter=request_time%3E%3D0.099&filter=path!%3D/a&{r}"
        )),
        ["request:req-b", "request:bulk-99", "request:bulk-100"]
    );
    assert_eq!(
        ids(&format!(
            "/api/search?channel=request.sql&filter=query_time%3C0.01&{r}"
        ))
        .len(),
        6 // bulk-3 … bulk-18: query_time i/2000 < 0.01
    );
    let page = server.json(&format!(
        "/api/search?channel=request&id=req-a&fields=response.status&{r}"
    ));
    assert_eq!(
        page["events"][0]["event"]["body"],
        serde_json::json!({ "response": { "status": 200 } })
    );
    // The hostile text comes back as JSON text, as stored.
    let page = server.json(&format!("/api/search?channel=request&id=req-b&{r}"));
    assert_eq!(
        page["events"][0]["event"]["body"]["path"]
            .as_str()
            .unwrap()
            .replace("\u{202e}", ""),
        HOSTILE.replace("\u{202e}", "")
    );
}

#[test]
fn one_request_is_a_tree_in_start_order() {
    let dir = tempdir();
    known_events(dir.path());
    let server = Server::start(&["--log-path", dir.path().to_str().unwrap()]);
    let answer = server.json(&format!("/api/request?id=req-a&{}", range()));
    assert_eq!(answer["partial"], false);
    let nodes: Vec<(String, u64, Option<u64>)> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["event"]["type"].as_str().unwrap().to_owned(),
                n["depth"].as_u64().unwrap(),
                n["parent"].as_u64(),
            )
        })
        .collect();
    let expected = [
        ("request", 0, None),
        ("request.cache", 1, Some(0)),
        ("request.sql", 1, Some(0)),
        ("request.sql", 1, Some(0)),
        ("request.sql.conn", 2, Some(3)),
    ];
    let expected: Vec<(String, u64, Option<u64>)> = expected
        .iter()
        .map(|(c, d, p)| (c.to_string(), *d, *p))
        .collect();
    assert_eq!(nodes, expected);
    // A sub-event alone is partial; an unknown id is an empty tree.
    let answer = server.json(&format!("/api/request?id=bulk-3&{}", range()));
    assert_eq!(answer["events"].as_array().unwrap().len(), 2);
    let answer = server.json(&format!("/api/request?id=nobody&{}", range()));
    assert_eq!(answer["events"].as_array().unwrap().len(), 0);
}

#[test]
fn timers_are_the_numbers_of_ziggyview_stats() {
    let dir = tempdir();
    known_events(dir.path());
    let log = dir.path().to_str().unwrap();
    let server = Server::start(&["--log-path", log]);
    for (channel, key) in [("request", "request_time"), ("request*", "query_time")] {
        let answer = server.json(&format!(
            "/api/timers?channel={channel}&key={key}&{}",
            range()
        ));
        let stats: Vec<serde_json::Value> = view_stdout(&[
            "--log-path",
            log,
            channel,
            "--start-date",
            DAY,
            "--end-date",
            DAY,
            "--stats",
            key,
            "--json",
        ])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let channels = answer["channels"].as_array().unwrap();
        assert_eq!(channels.len(), stats.len());
        for (web, cli) in channels.iter().zip(&stats) {
            for field in [
                "channel",
                "count",
                "min",
                "p50",
                "p90",
                "p99",
                "max",
                "histogram",
            ] {
                assert_eq!(web[field], cli[field], "{channel} {key} {field}");
            }
            // Per step: every value once, in the summary's buckets.
            let minutes = web["series"].as_array().unwrap();
            let count: u64 = minutes.iter().map(|m| m["count"].as_u64().unwrap()).sum();
            assert_eq!(count, cli["count"].as_u64().unwrap());
            for (b, bucket) in cli["histogram"].as_array().unwrap().iter().enumerate() {
                let in_minutes: u64 = minutes
                    .iter()
                    .map(|m| m["buckets"][b].as_u64().unwrap())
                    .sum();
                assert_eq!(in_minutes, bucket["count"].as_u64().unwrap());
            }
        }
    }
    let answer = server.json(&format!(
        "/api/timers?channel=request&key=request_time&{}",
        range()
    ));
    // A day is shown in 2-minute steps (at most 720 columns): bulk requests are 6 s apart from
    // 00:00:17, in five steps, plus req-a's and req-b's.
    assert_eq!(answer["step"], 120);
    let steps = answer["channels"][0]["series"].as_array().unwrap();
    let at: Vec<i64> = steps.iter().map(|m| m["at"].as_i64().unwrap()).collect();
    assert_eq!(at.len(), 6, "{at:?}");
    assert_eq!(at[0], 1_709_164_800);
    assert!(at.iter().all(|t| (t - 1_709_164_800) % 120 == 0), "{at:?}");
}

#[test]
fn bad_input_is_a_clear_4xx_and_nothing_outside_the_log_path_is_read() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    known_events(&logs);
    // A file outside the log path, and a channel file linking to it.
    let secret = dir.path().join("secret.bson");
    std::fs::write(&secret, event("SECRET", "leak", T0, T0, vec![])).unwrap();
    std::os::unix::fs::symlink(&secret, logs.join(DAY).join(format!("leak.{DAY}.bson"))).unwrap();
    let server = Server::start(&["--log-path", logs.to_str().unwrap()]);
    let r = range();
    let refused: Vec<(String, u16, &str)> = vec![
        (
            format!("/api/search?channel=request&filter=status&{r}"),
            400,
            "bad filter",
        ),
        (
            format!("/api/search?channel=request&filter=path%3E%3Eabc&{r}"),
            400,
            "bad filter",
        ),
        (
            format!("/api/search?channel=request&filter=a..b%3D1&{r}"),
            400,
            "empty segment",
        ),
        (
            "/api/search?from=19700101&to=20991231".into(),
            400,
            "at most 31",
        ),
        (
            "/api/timers?key=request_time&from=20240101&to=20240301".into(),
            400,
            "at most 31",
        ),
        ("/api/search?from=2024-02-29".into(), 400, "bad date"),
        ("/api/search?from=20240230".into(), 400, "bad date"),
        (
            "/api/search?from=20240301&to=20240229".into(),
            400,
            "before",
        ),
        (
            format!("/api/search?channel=../../etc/passwd&{r}"),
            400,
            "channel",
        ),
        (
            format!("/api/search?channel=/etc/passwd&{r}"),
            400,
            "channel",
        ),
        (
            format!("/api/search?channel=request&cursor=../../../etc/passwd&{r}"),
            400,
            "cursor",
        ),
        (
            format!("/api/search?channel=request&cursor=/etc/passwd/0&{r}"),
            400,
            "cursor",
        ),
        (
            format!("/api/search?channel=request&cursor={DAY}/..%2F..%2Fetc/0&{r}"),
            400,
            "cursor",
        ),
        (
            format!("/api/search?channel=request&cursor={DAY}/request.sql/0&{r}"),
            400,
            "names no file",
        ),
        (
            format!("/api/search?channel=request&cursor={DAY}/request/x&{r}"),
            400,
            "offset",
        ),
        (
            format!("/api/search?id={}&{r}", "x".repeat(300)),
            400,
            "at most 256",
        ),
        (format!("/api/request?{r}"), 400, "give the id"),
        (
            format!("/api/search?path=/etc/passwd&{r}"),
            400,
            "unknown parameter",
        ),
        (format!("/api/search?limit=100000&{r}"), 400, "limit"),
        (format!("/api/search?limit=-1&{r}"), 400, "limit"),
        (format!("/api/timers?channel=request&{r}"), 400, "key"),
        (format!("/api/timers?key=a..b&{r}"), 400, "bad key"),
        (format!("/api/search?id=a&id=b&{r}"), 400, "twice"),
        ("/api/live".into(), 404, "no -H"),
        ("/../../etc/passwd".into(), 404, "no such page"),
        ("/api/../../../../etc/passwd".into(), 404, "no such page"),
        ("/%2e%2e/%2e%2e/etc/passwd".into(), 404, "no such page"),
        (
            "/app.js/..%2f..%2f..%2fetc%2fpasswd".into(),
            404,
            "no such page",
        ),
        (format!("/{DAY}/request.{DAY}.bson"), 404, "no such page"),
        ("/api/nothing".into(), 404, "no such page"),
    ];
    for (target, status, says) in &refused {
        let answer = server.get(target);
        let body = answer.text();
        assert_eq!(answer.status, *status, "{target}: {body}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains(says),
            "{target}: {error:?} should say {says:?}"
        );
        assert!(!body.contains("root:"), "{target} leaked a file: {body}");
    }
    // A page on another host name that resolves to 127.0.0.1 (DNS rebinding) reads nothing.
    let answer = server.get_as(&format!("/api/search?{r}"), "evil.example:80");
    assert_eq!(answer.status, 421, "{}", answer.text());
    // The linked file is listed but never read (not even its size); the page says why.
    let channels = server.json(&format!("/api/channels?{r}"))["channels"].clone();
    let leak = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "leak")
        .unwrap_or_else(|| panic!("{channels}"));
    assert_eq!(leak["bytes"], 0, "{channels}");
    let page = server.json(&format!("/api/search?channel=*&limit=1000&{r}"));
    assert!(!page.to_string().contains("SECRET"), "{page}");
    let problems = page["problems"].to_string();
    assert!(
        problems.contains("leak") && problems.contains("outside the log path"),
        "{problems}"
    );
    let answer = server.json(&format!("/api/request?id=SECRET&{r}"));
    assert_eq!(answer["events"].as_array().unwrap().len(), 0);
    // A cursor into the middle of an event: a problem said, no crash.
    let page = server.json(&format!(
        "/api/search?channel=request&cursor={DAY}/request/3&{r}"
    ));
    assert!(page["problem_count"].as_u64().unwrap() >= 1, "{page}");
    // Still serving, and the page's headers forbid inline script and framing.
    let index = server.get("/");
    assert_eq!(index.status, 200);
    let policy = index.header("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert!(server.json("/api/info")["files"].as_bool().unwrap());
}

/// `GET target` from `addr` with these headers (Host among them): the status and the headers.
fn raw_get(addr: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("GET {target} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut raw);
    let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {raw}"));
    (status, raw)
}

/// The headers every answer carries, refusals included.
fn assert_security_headers(what: &str, raw: &str) {
    for header in [
        "content-security-policy: default-src 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
    ] {
        assert!(raw.contains(header), "{what}: no {header:?} in {raw}");
    }
}

#[test]
fn other_hosts_and_other_sites_pages_are_refused() {
    let dir = tempdir();
    known_events(dir.path());
    let log = dir.path().to_str().unwrap();
    let server = Server::start(&["--log-path", log]);
    let addr = server.addr.as_str();
    let own = format!("http://{addr}");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("/api/info", vec![("Host", addr)], 200),
        ("/api/info", vec![("Host", "evil.example")], 421),
        ("/", vec![("Host", "evil.example:80")], 421),
        (
            "/api/info",
            vec![("Host", addr), ("Sec-Fetch-Site", "same-origin")],
            200,
        ),
        (
            "/api/timers?key=request_time",
            vec![("Host", addr), ("Sec-Fetch-Site", "cross-site")],
            403,
        ),
        (
            "/api/search",
            vec![("Host", addr), ("Sec-Fetch-Site", "same-site")],
            403,
        ),
        (
            "/api/info",
            vec![("Host", addr), ("Origin", "http://evil.example")],
            403,
        ),
        ("/api/info", vec![("Host", addr), ("Origin", "null")], 403),
        ("/api/info", vec![("Host", addr), ("Origin", &own)], 200),
        // A link from another site to the page itself opens it.
        (
            "/",
            vec![("Host", addr), ("Sec-Fetch-Site", "cross-site")],
            200,
        ),
    ];
    for (target, headers, status) in &cases {
        let (got, raw) = raw_get(addr, target, headers);
        assert_eq!(got, *status, "{target} {headers:?}: {raw}");
        assert_security_headers(&format!("{target} {headers:?}"), &raw);
    }
    drop(server);

    // Listening beyond loopback, the Host is still checked: loopback names, the address, and
    // the names of --allow-host.
    let wide = Server::start_on(
        "0.0.0.0:0",
        &["--log-path", log, "--allow-host", "Box.Example"],
    );
    let port = wide.addr.rsplit(':').next().unwrap().to_owned();
    let local = format!("127.0.0.1:{port}");
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("box.example:{port}"), 200),
        (format!("evil.example:{port}"), 421),
        ("box.example".to_owned(), 421),
    ] {
        let (got, raw) = raw_get(&local, "/api/info", &[("Host", &host)]);
        assert_eq!(got, status, "{host}: {raw}");
    }
    drop(wide);
    let out = std::process::Command::new(bin("ziggyview"))
        .args(["serve", "--log-path", log, "--allow-host", "a/b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_stops_within_seconds_whatever_a_client_holds() {
    let dir = tempdir();
    known_events(dir.path());
    let mut server = Server::start(&["--log-path", dir.path().to_str().unwrap()]);
    // A client that never finishes its request keeps its connection busy.
    let mut stuck = TcpStream::connect(&server.addr).unwrap();
    write!(stuck, "GET /api/info HTTP/1.1\r\nHost: {}\r\n", server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = i32::try_from(server.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let began = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    drop(stuck);
}

#[test]
fn serve_needs_something_to_serve_and_the_viewer_keeps_its_arguments() {
    let out = std::process::Command::new(bin("ziggyview"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-path"));
    let out = std::process::Command::new(bin("ziggyview"))
        .args(["serve", "--log-path", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
    // `serve` after a flag is still a channel, as before the web view.
    let dir = tempdir();
    write_events(
        dir.path(),
        DAY,
        "serve",
        &[event("s1", "serve", T0, T0, vec![])],
    );
    let out = view_stdout(&[
        "--json",
        "--log-path",
        dir.path().to_str().unwrap(),
        "serve",
        "--start-date",
        DAY,
    ]);
    assert!(out.contains("\"id\":\"s1\""), "{out}");
}

#[test]
fn live_events_stream_to_a_browser_with_its_filters() {
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = daemon.control.trim_start_matches("tcp://").to_owned();
    let server = Server::start(&["-H", &control]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        // HTTP/1.0: the stream comes as plain lines, not in chunks.
        "GET /api/live?channel=request*&filter=n%3E%3D2 HTTP/1.0\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut shown, mut statuses, mut n) = (Vec::<serde_json::Value>::new(), 0, 0);
    let (mut kind, mut line) = (String::new(), String::new());
    while shown.len() < 3 && Instant::now() < deadline {
        n += 1;
        let body = |v: i32| vec![("n", common::minibson::Value::Int32(v))];
        push.send(event(&format!("j{n}"), "job", T0, T0, body(5)), 0)
            .unwrap();
        push.send(event(&format!("a{n}"), "request", T0, T0, body(1)), 0)
            .unwrap();
        push.send(event(&format!("b{n}"), "request.sql", T0, T0, body(2)), 0)
            .unwrap();
        // A read that times out keeps what it got in `line`, for the next.
        while reader.read_line(&mut line).is_ok_and(|got| got > 0) {
            let text = line.trim_end().to_owned();
            line.clear();
            if let Some(k) = text.strip_prefix("event: ") {
                kind = k.to_owned();
            } else if let Some(data) = text.strip_prefix("data: ") {
                let value: serde_json::Value = serde_json::from_str(data).unwrap();
                if kind == "event" {
                    shown.push(value);
                } else if kind == "status" {
                    statuses += 1;
                    assert_eq!(value["daemon"], control.as_str());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shown.len() >= 3, "no live events within 30 s");
    assert!(statuses >= 1);
    assert!(
        shown.iter().all(|e| e["type"] == "request.sql"),
        "{shown:?}"
    );
    // The daemon goes away mid-stream: the status says so; it comes back: the trouble clears.
    let (collect, control_at) = (
        daemon.collect.trim_start_matches("tcp://").to_owned(),
        control.clone(),
    );
    drop(push);
    drop(daemon);
    let mut trouble_of_status = |want_trouble: bool| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            while reader.read_line(&mut line).is_ok_and(|got| got > 0) {
                let text = line.trim_end().to_owned();
                line.clear();
                if let Some(k) = text.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(data) = text.strip_prefix("data: ")
                    && kind == "status"
                {
                    let value: serde_json::Value = serde_json::from_str(data).unwrap();
                    if value["trouble"].is_null() != want_trouble {
                        return value;
                    }
                }
            }
        }
        panic!("no status with trouble={want_trouble} within 30 s");
    };
    let away = trouble_of_status(true);
    assert!(
        away["trouble"].as_str().unwrap().contains("not answering"),
        "{away}"
    );
    let _daemon = start_ziggyd_at(&collect, &control_at, &["--stream-only"]);
    trouble_of_status(false);
    // No log path: the file endpoints say so.
    let answer = server.get(&format!("/api/search?{}", range()));
    assert_eq!(answer.status, 404);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("--log-path")
    );
}
