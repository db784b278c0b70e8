//! The end-to-end demo: an embedded `ziggyd` writing under `./demo-logs`, an application
//! instrumented with the macros handling a few hundred requests, then a summary read back from the
//! files.
//!
//! Run: `cargo run -p ziggy-examples --bin demo`

use std::collections::BTreeMap;
use std::time::Duration;

ziggy::channels! {
    request { sql, cache },
}

struct Request {
    id: u32,
    path: &'static str,
}

#[ziggy::context("request")]
#[ziggy::timeit("request_time")]
fn handle(req: &Request) -> Result<u16, String> {
    ziggy::set("path", req.path);
    ziggy::set("request.id", req.id);
    let user = cache_get(req.id % 10)?;
    let rows = query(&format!("SELECT * FROM items WHERE owner = {user}"));
    ziggy::set("response.rows", rows);
    if req.id % 50 == 49 {
        return Err(format!("request {} timed out", req.id));
    }
    ziggy::set("response.status", 200);
    Ok(200)
}

#[ziggy::context("request.cache", sample = ("request", 0.5))]
fn cache_get(key: u32) -> Result<u32, String> {
    ziggy::set("key", key);
    ziggy::add("hits", 1);
    Ok(key * 7)
}

#[ziggy::context("request.sql")]
#[ziggy::timeit("query_time")]
fn query(sql: &str) -> u32 {
    ziggy::set("sql", sql);
    std::thread::sleep(Duration::from_micros(200));
    3
}

fn main() {
    let log_path = std::env::current_dir()
        .expect("a working directory")
        .join("demo-logs");
    let config = ziggyd::DaemonConfig {
        log_path: Some(log_path.clone()),
        flush_interval: Duration::from_millis(200),
        ..ziggyd::DaemonConfig::ephemeral()
    };
    let daemon = ziggyd::Daemon::start(config).expect("starting the embedded ziggyd");
    println!(
        "embedded ziggyd: collect {} control {}",
        daemon.collect_endpoint, daemon.control_endpoint
    );

    ziggy::configure(&daemon.collect_endpoint).expect("configuring ziggy");
    let paths = ["/", "/items", "/users", "/search"];
    let mut errors = 0;
    for id in 0..300 {
        if handle(&Request {
            id,
            path: paths[id as usize % paths.len()],
        })
        .is_err()
        {
            errors += 1;
        }
    }
    ziggy::flush(Duration::from_secs(5));
    let sent = ziggy::stats();
    ziggy::shutdown();

    // Wait until the daemon has written what it received, then stop it (which flushes files).
    let expected = sent.sent as i64;
    for _ in 0..100 {
        let written = daemon.stats().status().events_written as i64;
        if written >= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop();

    println!(
        "app: {} events emitted, {} sent, {} dropped, {errors} requests failed",
        sent.emitted, sent.sent, sent.dropped
    );
    let mut per_channel: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut with_error = 0;
    let requests = ziggyview::ChannelPattern::parse("request*").expect("a valid pattern");
    for file in ziggyview::files_for_range(&log_path, &requests, None, None)
        .map(|listing| listing.files)
        .unwrap_or_default()
    {
        let bytes = std::fs::read(&file).expect("reading a log file");
        let mut rest = &bytes[..];
        while rest.len() >= 4 {
            let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let event = ziggy::Event::from_slice(&rest[..len]).expect("a valid event");
            rest = &rest[len..];
            let entry = per_channel.entry(event.channel.clone()).or_default();
            entry.0 += 1;
            entry.1 += event.duration();
            if event.body.contains_key("error") {
                with_error += 1;
            }
        }
    }
    println!("read back from {}:", log_path.display());
    for (channel, (n, secs)) in &per_channel {
        println!(
            "  {channel:<16} {n:>5} events, mean {:.3} ms",
            secs / *n as f64 * 1e3
        );
    }
    println!("  {with_error} events carry body.error");
    println!("try: cargo run -p ziggyview -- --log-path demo-logs 'request*' --group | head -40");
}
