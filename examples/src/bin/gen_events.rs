//! Writes synthetic events for benchmarks. One event in a hundred is on channel `rare`, the rest on
//! `request` and `request.sql`; bodies look like real requests.
//!
//! - `gen_events FILE BYTES`: one file of every channel, events 1 ms apart, all timers 12.3 ms
//!   (the viewer's throughput benchmark, `bench/view.sh`).
//! - `gen_events --log-path DIR BYTES`: a log directory of one day (2024-02-29), one file per
//!   channel as ziggyd writes them, events spread over the whole day, `request_time` and
//!   `query_time` spread from about 1 ms to 1 s (the web view's benchmark, `bench/web.sh`).

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

/// 2024-02-29 00:00:00 UTC.
const DAY_START: f64 = 1_709_164_800.0;
/// Bytes of one event, about (for spreading a day's events over the day).
const EVENT_BYTES: f64 = 250.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, flag, dir, bytes] if flag == "--log-path" => bytes
            .parse::<u64>()
            .ok()
            .map(|b| (Some(dir.as_str()), None, b)),
        [_, file, bytes] => bytes
            .parse::<u64>()
            .ok()
            .map(|b| (None, Some(file.as_str()), b)),
        _ => None,
    };
    let Some((log_path, file, bytes)) = parsed else {
        eprintln!("usage: gen_events FILE BYTES | gen_events --log-path DIR BYTES");
        std::process::exit(2);
    };
    let (events, written) = match (log_path, file) {
        (Some(dir), _) => write_day(Path::new(dir), bytes),
        (None, Some(file)) => write_file(Path::new(file), bytes),
        (None, None) => unreachable!("one of them is parsed"),
    };
    eprintln!("{events} events, {written} bytes");
}

fn channel_of(n: u64) -> &'static str {
    match n % 100 {
        0 => "rare",
        i if i % 2 == 0 => "request",
        _ => "request.sql",
    }
}

/// The event `n` at time `t`, its timer `timer` seconds.
fn event(n: u64, t: f64, timer: f64) -> Vec<u8> {
    let channel = channel_of(n);
    let doc = bson::doc! {
        "id": format!("{:032x}", n / 3), "type": channel, "host": "web1", "pid": 4242,
        "start": t, "end": t + timer,
        "body": { "path": "/users/42", "response": { "status": 200, "size": 5123 },
                  "request_time": timer, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)" },
    };
    doc.to_vec().expect("encoding")
}

fn write_file(path: &Path, bytes: u64) -> (u64, u64) {
    let mut out = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).expect("creating the file"),
    );
    let (mut written, mut n) = (0u64, 0u64);
    while written < bytes {
        let encoded = event(n, DAY_START + n as f64 * 0.001, 0.0123);
        out.write_all(&encoded).expect("writing");
        written += encoded.len() as u64;
        n += 1;
    }
    out.flush().expect("flushing");
    (n, written)
}

fn write_day(dir: &Path, bytes: u64) -> (u64, u64) {
    let folder = dir.join("20240229");
    std::fs::create_dir_all(&folder).expect("creating the day folder");
    let mut files: HashMap<&str, BufWriter<std::fs::File>> = HashMap::new();
    let step = 86_399.0 / (bytes as f64 / EVENT_BYTES).max(1.0);
    let (mut written, mut n) = (0u64, 0u64);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    while written < bytes {
        // xorshift: a timer spread log-uniformly from ~1 ms to ~1 s, the same every run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
        let timer = 0.001 * 1000f64.powf(unit * unit);
        let encoded = event(n, DAY_START + n as f64 * step, timer);
        let channel = channel_of(n);
        let out = files.entry(channel).or_insert_with(|| {
            let file = std::fs::File::create(folder.join(format!("{channel}.20240229.bson")))
                .expect("creating a channel file");
            BufWriter::with_capacity(1 << 20, file)
        });
        out.write_all(&encoded).expect("writing");
        written += encoded.len() as u64;
        n += 1;
    }
    for out in files.values_mut() {
        out.flush().expect("flushing");
    }
    (n, written)
}
