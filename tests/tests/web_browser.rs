//! The web view in a real headless Chromium (WebDriver): search, one request's waterfall, a
//! timer's histogram against `ziggyview --stats`, and live events from a real ziggyd.
//!
//! `ZIGGY_SCREENSHOTS=DIR` saves the screenshots shown in the README.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::browser::Browser;
use common::minibson::{Value as Bson, event};
use common::web::*;
use common::*;

/// The page loaded, its first requests answered.
fn open(browser: &Browser, url: &str) {
    browser.goto(url);
    browser.wait_for("the page", "return document.body.dataset.ready === 'true';");
}

/// No markup from an event reached the page, and none of its script ran.
fn assert_no_injection(browser: &Browser) {
    let injected = browser.eval(
        "return [window.__xss === undefined, document.querySelectorAll('main img, main script').length];",
        json!([]),
    );
    assert_eq!(injected, json!([true, 0]), "event text became markup");
}

#[test]
fn search_then_one_request_as_a_waterfall() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempdir();
    known_events(dir.path());
    let log = dir.path().to_str().unwrap();
    let server = Server::start(&["--log-path", log]);
    open(&browser, &server.url());

    // Search every request* event of the day, a page of 50 at a time.
    browser.type_into("#search-channel", "request*");
    browser.type_into("#search-fields", "path, response.status");
    browser.click("#search-go");
    browser.wait_for(
        "the first page",
        "return document.querySelectorAll('#search-results tbody tr').length === 50;",
    );
    browser.screenshot("web-search");
    for page in 2..=3 {
        browser.click("#search-more");
        browser.wait_for(
            "the next page",
            &format!(
                "return document.querySelectorAll('#search-results tbody tr').length === {};",
                (page * 50).min(140)
            ),
        );
    }
    browser.wait_for(
        "the last page",
        "return document.getElementById('search-more').hidden;",
    );
    let rows = browser.eval(
        "return [...document.querySelectorAll('#search-results tbody tr')]
           .map(r => [...r.cells].map(c => c.textContent));",
        json!([]),
    );
    let rows = rows.as_array().unwrap();
    let cli: Vec<Value> =
        view_stdout(&["--json", "--log-path", log, "request*", "--start-date", DAY])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(rows.len(), cli.len());
    for (row, event) in rows.iter().zip(&cli) {
        // time, channel, duration, id, host, then the chosen body fields.
        assert_eq!(row[1], event["type"]);
        assert_eq!(row[3], event["id"]);
        let path = event["body"]["path"].as_str().unwrap_or("");
        assert_eq!(row[5], path);
    }
    assert!(
        rows[1][5]
            .as_str()
            .unwrap()
            .starts_with("<img src=x onerror=")
    );
    assert_eq!(rows[1][6], "500");
    assert_no_injection(&browser);

    // Its id opens the request: five events, nested by channel, in start order.
    browser.click("#search-results tbody tr:first-child a");
    browser.wait_for(
        "the waterfall",
        "return document.querySelectorAll('#waterfall .row[data-index]').length === 5;",
    );
    let bars = browser.eval(
        "return [...document.querySelectorAll('#waterfall .row[data-index]')].map(r => [
           r.dataset.channel, +r.dataset.depth, r.dataset.parent,
           parseFloat(r.querySelector('.bar').style.left),
           parseFloat(r.querySelector('.label').style.paddingLeft) || 0]);",
        json!([]),
    );
    let expected = [
        ("request", 0, ""),
        ("request.cache", 1, "0"),
        ("request.sql", 1, "0"),
        ("request.sql", 1, "0"),
        ("request.sql.conn", 2, "3"),
    ];
    let bars = bars.as_array().unwrap();
    for (bar, (channel, depth, parent)) in bars.iter().zip(expected) {
        assert_eq!(
            (
                bar[0].as_str().unwrap(),
                bar[1].as_u64().unwrap(),
                bar[2].as_str().unwrap()
            ),
            (channel, depth, parent)
        );
    }
    // Bars start where their events start (req-a: 0, 5, 10, 40, 41 ms of 100), labels indent
    // with depth.
    let lefts: Vec<f64> = bars.iter().map(|b| b[3].as_f64().unwrap()).collect();
    for (left, want) in lefts.iter().zip([0.0, 5.0, 10.0, 40.0, 41.0]) {
        assert!((left - want).abs() < 0.01, "{lefts:?}");
    }
    let indents: Vec<f64> = bars.iter().map(|b| b[4].as_f64().unwrap()).collect();
    assert!(
        indents[0] < indents[1] && indents[3] < indents[4],
        "{indents:?}"
    );
    browser.click("#waterfall .row[data-index='3']");
    browser.wait_for(
        "the body of the second query",
        "return document.getElementById('detail-body').textContent.includes('SELECT 2');",
    );
    assert_eq!(
        browser.eval(
            "return document.getElementById('detail-error').hidden;",
            json!([])
        ),
        true
    );
    browser.screenshot("web-request");

    // The failed request: its bar is marked, its error shown as text.
    browser.type_into("#request-id", "req-b");
    browser.click("#request-go");
    browser.wait_for(
        "req-b",
        "return document.querySelectorAll('#waterfall .row[data-index]').length === 2;",
    );
    let marked = browser.eval(
        "return [...document.querySelectorAll('#waterfall .row[data-index]')].map(r => r.classList.contains('error'));",
        json!([]),
    );
    assert_eq!(marked, json!([true, false]));
    browser.click("#waterfall .row[data-index='0']");
    browser.wait_for(
        "the error",
        "return !document.getElementById('detail-error').hidden;",
    );
    assert_eq!(
        browser.text("#detail-error"),
        format!("error: boom {HOSTILE}")
    );
    assert_no_injection(&browser);
}

#[test]
fn timer_histogram_matches_ziggyview_stats() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempdir();
    known_events(dir.path());
    // A day folder five months older: the page's first listing of channels still asks for at
    // most 31 days, and gets them.
    write_events(
        dir.path(),
        "20231001",
        "old",
        &[event("o1", "old", T0, T0, vec![])],
    );
    let log = dir.path().to_str().unwrap();
    let server = Server::start(&["--log-path", log]);
    open(&browser, &server.url());
    let listed = browser.eval(
        "return [document.getElementById('server').textContent,
                 [...document.querySelectorAll('#channel-list option')].map(o => o.value)];",
        json!([]),
    );
    assert!(!listed[0].as_str().unwrap().contains("Error"), "{listed}");
    let names = listed[1].as_array().unwrap();
    assert!(
        names.contains(&json!("request")) && !names.contains(&json!("old")),
        "{listed}"
    );
    browser.click("#tab-timers");
    browser.type_into("#timers-channel", "request");
    browser.type_into("#timers-key", "request_time");
    browser.click("#timers-go");
    browser.wait_for(
        "the statistics",
        "return document.getElementById('stat-p99') !== null;",
    );
    let shown = browser.eval(
        "const v = (id) => document.getElementById(id).dataset.value;
         return { count: v('stat-count'), min: v('stat-min'), p50: v('stat-p50'), p90: v('stat-p90'),
                  p99: v('stat-p99'), max: v('stat-max'),
                  bars: [...document.querySelectorAll('#histogram rect.hist-bar')]
                          .map(r => [r.dataset.from, r.dataset.count]),
                  lines: document.querySelectorAll('#per-minute polyline').length,
                  title: document.getElementById('per-minute-title').textContent,
                  heat: [...document.querySelectorAll('#per-minute rect.heat')]
                          .reduce((n, r) => n + +r.dataset.count, 0) };",
        json!([]),
    );
    let stats: Value = serde_json::from_str(
        view_stdout(&[
            "--log-path",
            log,
            "request",
            "--start-date",
            DAY,
            "--stats",
            "request_time",
            "--json",
        ])
        .trim(),
    )
    .unwrap();
    let number = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(number(&shown["count"]), stats["count"].as_f64().unwrap());
    for key in ["min", "p50", "p90", "p99", "max"] {
        assert_eq!(number(&shown[key]), stats[key].as_f64().unwrap(), "{key}");
    }
    let bars = shown["bars"].as_array().unwrap();
    let buckets = stats["histogram"].as_array().unwrap();
    assert_eq!(bars.len(), buckets.len());
    for (bar, bucket) in bars.iter().zip(buckets) {
        assert_eq!(number(&bar[0]), bucket["from"].as_f64().unwrap());
        assert_eq!(number(&bar[1]), bucket["count"].as_f64().unwrap());
    }
    // Per step (2 minutes for a day): p50, p90 and p99 lines, and a heatmap holding every value
    // once.
    assert_eq!(shown["lines"], 3);
    assert!(
        shown["title"].as_str().unwrap().starts_with("Every 2 min"),
        "{shown}"
    );
    assert_eq!(
        shown["heat"].as_f64().unwrap(),
        stats["count"].as_f64().unwrap()
    );
    browser.screenshot("web-timers");
}

#[test]
fn live_events_appear_from_a_real_ziggyd_and_pause() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let daemon = start_ziggyd(&["--stream-only"]);
    let control = daemon.control.trim_start_matches("tcp://").to_owned();
    let server = Server::start(&["-H", &control]);
    open(&browser, &format!("{}#live", server.url()));
    browser.type_into("#live-channel", "request*");
    browser.type_into("#live-filter", "n>=2");
    browser.click("#live-go");
    browser.wait_for(
        "the stream",
        "return document.getElementById('live-status').textContent.startsWith('Following');",
    );
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.connect(&daemon.collect).unwrap();
    let mut n = 0;
    let send_round = |n: &mut i32| {
        *n += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let body = |v: i32| {
            vec![
                ("n", Bson::Int32(v)),
                ("path", Bson::String(format!("/live/{n}"))),
            ]
        };
        for (channel, v) in [("job", 5), ("request", 1), ("request.sql", 2)] {
            push.send(
                event(&format!("live-{n}"), channel, now, now + 0.002, body(v)),
                0,
            )
            .unwrap();
        }
    };
    let rows = "return document.querySelectorAll('#live-results tbody tr').length;";
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.eval(rows, json!([])).as_u64().unwrap() < 5 {
        assert!(Instant::now() < deadline, "no live events within 20 s");
        send_round(&mut n);
        std::thread::sleep(Duration::from_millis(100));
    }
    let channels = browser.eval(
        "return [...document.querySelectorAll('#live-results tbody tr')].map(r => r.cells[1].textContent);",
        json!([]),
    );
    assert!(
        channels
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c == "request.sql"),
        "{channels}"
    );
    browser.wait_for(
        "the server's counts",
        "return /· [1-9][0-9]* shown here/.test(document.getElementById('live-status').textContent);",
    );
    browser.screenshot("web-live");

    // Paused: events wait, the table stays; resumed: they are shown.
    browser.click("#live-pause");
    let held = browser.eval(rows, json!([])).as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        send_round(&mut n);
        std::thread::sleep(Duration::from_millis(100));
        let label = browser.text("#live-pause");
        if label.starts_with("Resume (") && !label.starts_with("Resume (0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no event waited while paused: {label}"
        );
    }
    assert_eq!(browser.eval(rows, json!([])).as_u64().unwrap(), held);
    browser.click("#live-pause");
    browser.wait_for(
        "the waiting events",
        &format!("return document.querySelectorAll('#live-results tbody tr').length > {held};"),
    );
}
