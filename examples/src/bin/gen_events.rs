//! Writes a synthetic channel file for benchmarks: `gen_events FILE BYTES`. One event in a hundred
//! is on channel `rare`, the rest on `request` and `request.sql`; bodies look like real requests.

use std::io::{BufWriter, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(bytes)) = (args.get(1), args.get(2).and_then(|b| b.parse::<u64>().ok()))
    else {
        eprintln!("usage: gen_events FILE BYTES");
        std::process::exit(2);
    };
    let mut out = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).expect("creating the file"),
    );
    let mut written = 0u64;
    let mut n = 0u64;
    let start = 1_709_164_800.0;
    while written < bytes {
        let channel = match n % 100 {
            0 => "rare",
            i if i % 2 == 0 => "request",
            _ => "request.sql",
        };
        let t = start + n as f64 * 0.001;
        let doc = bson::doc! {
            "id": format!("{:032x}", n / 3), "type": channel, "host": "web1", "pid": 4242,
            "start": t, "end": t + 0.0123,
            "body": { "path": "/users/42", "response": { "status": 200, "size": 5123 },
                      "request_time": 0.0123, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)" },
        };
        let encoded = doc.to_vec().expect("encoding");
        out.write_all(&encoded).expect("writing");
        written += encoded.len() as u64;
        n += 1;
    }
    out.flush().expect("flushing");
    eprintln!("{n} events, {written} bytes");
}
