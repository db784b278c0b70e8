//! Soak with random faults: several app processes → two local ziggyd (forwarding, with spools) →
//! one master ziggyd writing files. For `--secs` seconds (default 600) it kill -9s and restarts a
//! random daemon at random moments and SIGSTOPs the master for a while (a partition), all from a
//! printed seed. At the end: events emitted, dropped by the apps (queue full, counted), received,
//! duplicates, lost, and the peak RSS of every daemon. Exits 1 if anything accepted was lost.
//!
//! Before killing a local daemon the apps are paused until that daemon has spooled everything it
//! received (PUSH has no acknowledgement, so what sits in a local daemon's memory at a kill -9 is
//! not "accepted"); master kills and partitions need no such care — that is what the spool is for.
//!
//! Run: `cargo build -p ziggyd -p ziggy-e2e --bin ziggyd --bin soak && ./target/debug/soak --secs 60 [--seed N]`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const APPS: usize = 3;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Daemon {
    name: String,
    args: Vec<String>,
    control: String,
    child: Child,
    peak_rss_kib: u64,
}

impl Daemon {
    fn start(name: &str, bin: &Path, args: Vec<String>, control: &str) -> Daemon {
        let child = spawn_daemon(bin, &args);
        Daemon {
            name: name.into(),
            args,
            control: control.into(),
            child,
            peak_rss_kib: 0,
        }
    }
    fn sample_rss(&mut self) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }
    fn kill9_and_restart(&mut self, bin: &Path) {
        self.sample_rss();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_daemon(bin, &self.args);
    }
    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
    fn status(&self) -> Option<bson::Document> {
        ziggyd::client::control_request(&self.control, "STATUS", Duration::from_secs(2)).ok()
    }
}

fn spawn_daemon(bin: &Path, args: &[String]) -> Child {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ziggyd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ziggyd: collect"),
        "ziggyd did not start: {line:?}"
    );
    child
}

fn num(doc: &bson::Document, path: &str) -> i64 {
    match ziggy::event::lookup(doc, path) {
        Some(bson::Bson::Int64(v)) => *v,
        Some(bson::Bson::Int32(v)) => *v as i64,
        _ => 0,
    }
}

/// The app mode: emit events `(app, seq)` until told to stop (a file appears), then report.
fn app(collect: &str, app_id: i64, stop_file: &Path) {
    ziggy::channels! { soak }
    ziggy::configure_with(
        collect,
        ziggy::TransportConfig::default().with_queue_capacity(200_000),
    )
    .unwrap();
    let mut seq = 0i64;
    while !stop_file.exists() {
        for _ in 0..100 {
            let _ctx = ziggy::Context::new("soak").enter();
            ziggy::set("app", app_id);
            ziggy::set("seq", seq);
            seq += 1;
        }
        std::thread::sleep(Duration::from_millis(20)); // ~5,000 events/s per app
    }
    ziggy::flush(Duration::from_secs(30));
    let s = ziggy::stats();
    println!("{} {} {}", seq, s.dropped, s.sent);
    ziggy::shutdown();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("app") {
        let id: i64 = arg(&args, "--id").unwrap().parse().unwrap();
        app(
            &arg(&args, "--collect").unwrap(),
            id,
            Path::new(&arg(&args, "--stop").unwrap()),
        );
        return;
    }
    let secs: u64 = arg(&args, "--secs").map_or(600, |s| s.parse().expect("--secs N"));
    let seed: u64 = arg(&args, "--seed").map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        },
        |s| s.parse().expect("--seed N"),
    );
    println!("soak: {secs} s, seed {seed} (rerun with --seed {seed})");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let bin_dir = exe.parent().unwrap();
    let ziggyd = bin_dir.join("ziggyd");
    assert!(ziggyd.exists(), "build ziggyd first: cargo build -p ziggyd");
    let work = std::env::temp_dir().join(format!("ziggy-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let logs = work.join("logs");

    let (m_collect, m_control) = (free_addr(), free_addr());
    let master_args: Vec<String> = [
        "-H",
        &m_collect,
        "--control",
        &m_control,
        "--log-path",
        logs.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut master = Daemon::start("master", &ziggyd, master_args, &m_control);
    let mut locals: Vec<Daemon> = (0..2)
        .map(|i| {
            let (collect, control) = (free_addr(), free_addr());
            let spool: PathBuf = work.join(format!("spool{i}"));
            let a: Vec<String> = [
                "-H",
                &collect,
                "--control",
                &control,
                "--publish",
                &m_collect,
                "--publish-control",
                &m_control,
                "--spool-dir",
                spool.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Daemon::start(&format!("local{i}"), &ziggyd, a, &control)
        })
        .collect();
    let local_collect: Vec<String> = locals.iter().map(|l| l.args[1].clone()).collect();

    let stop = work.join("stop");
    let mut apps: Vec<Child> = (0..APPS)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "app",
                    "--id",
                    &i.to_string(),
                    "--collect",
                    &local_collect[i % 2],
                    "--stop",
                    stop.to_str().unwrap(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    let started = Instant::now();
    let mut faults: HashMap<&str, u32> = HashMap::new();
    let mut possible_before_kills = 0i64;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(2_000 + rng.below(4_000)));
        for d in locals.iter_mut().chain(std::iter::once(&mut master)) {
            d.sample_rss();
        }
        match rng.below(3) {
            0 => {
                let i = rng.below(2) as usize;
                // Pause the apps until this local has fsynced into its spool everything it
                // received (`forward.spooled == events_in`, both counted since it started), and
                // its intake has been quiet for 300 ms (what the kernel still holds is read).
                for a in &apps {
                    unsafe { libc::kill(a.id() as i32, libc::SIGSTOP) };
                }
                let (mut last, mut quiet) = (-1, 0);
                let pause = Instant::now();
                for _ in 0..300 {
                    std::thread::sleep(Duration::from_millis(100));
                    if let Some(s) = locals[i].status() {
                        let got = num(&s, "events_in");
                        let settled = got == last && num(&s, "forward.spooled") == got;
                        quiet = if settled { quiet + 1 } else { 0 };
                        if quiet >= 3 {
                            break;
                        }
                        last = got;
                    }
                }
                if quiet < 3 {
                    println!(
                        "local{i} did not settle in {:?}; killing it anyway",
                        pause.elapsed()
                    );
                }
                locals[i].kill9_and_restart(&ziggyd);
                for a in &apps {
                    unsafe { libc::kill(a.id() as i32, libc::SIGCONT) };
                }
                *faults.entry("kill -9 local").or_default() += 1;
            }
            1 => {
                // Counters live in the process: keep what this instance counted before it dies.
                if let Some(st) = master.status() {
                    possible_before_kills += num(&st, "forward_in.possible_duplicates");
                }
                master.kill9_and_restart(&ziggyd);
                *faults.entry("kill -9 master").or_default() += 1;
            }
            _ => {
                master.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(1_000 + rng.below(3_000)));
                master.signal(libc::SIGCONT);
                *faults.entry("partition (SIGSTOP master)").or_default() += 1;
            }
        }
    }
    std::fs::write(&stop, b"").unwrap();
    let mut emitted = [0i64; APPS];
    let mut dropped = 0i64;
    for (i, a) in apps.iter_mut().enumerate() {
        let out = {
            let mut s = String::new();
            BufReader::new(a.stdout.take().unwrap())
                .read_line(&mut s)
                .unwrap();
            s
        };
        let _ = a.wait();
        let v: Vec<i64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        emitted[i] = v[0];
        dropped += v[1];
    }
    // Drain: every local's spool empty.
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline
        && !locals.iter().all(|l| {
            l.status()
                .is_some_and(|s| num(&s, "forward.spool_events") == 0)
        })
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    for d in locals.iter_mut().chain(std::iter::once(&mut master)) {
        d.sample_rss();
    }
    let master_status = master.status().unwrap_or_default();
    let mut seen: HashMap<(i64, i64), u32> = HashMap::new();
    let mut files = vec![logs.clone()];
    while let Some(d) = files.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                files.push(p);
            } else if p.extension().is_some_and(|x| x == "bson") {
                let bytes = std::fs::read(&p).unwrap();
                let mut rest = &bytes[..];
                while rest.len() >= 4 {
                    let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    let ev = ziggy::Event::from_slice(&rest[..len])
                        .expect("valid event in the master's files");
                    rest = &rest[len..];
                    let key = (
                        ev.body.get_i64("app").unwrap_or(-1),
                        ev.body.get_i64("seq").unwrap_or(-1),
                    );
                    *seen.entry(key).or_default() += 1;
                }
            }
        }
    }
    let received = seen.len() as i64;
    let duplicates: i64 = seen.values().map(|&n| n as i64 - 1).sum();
    let total: i64 = emitted.iter().sum();
    let lost = total - dropped - received;
    println!("faults: {faults:?}");
    // Each master instance's count, read just before it was killed, plus the last one's.
    let possible = possible_before_kills + num(&master_status, "forward_in.possible_duplicates");
    println!(
        "events emitted {total}, dropped by apps (counted) {dropped}, received {received}, duplicates {duplicates} (counted as possible by the master instances: {possible}), lost {lost}"
    );
    for d in locals.iter().chain(std::iter::once(&master)) {
        println!("peak RSS {}: {} KiB", d.name, d.peak_rss_kib);
    }
    for mut d in locals.into_iter().chain(std::iter::once(master)) {
        let _ = d.child.kill();
        let _ = d.child.wait();
    }
    let _ = std::fs::remove_dir_all(&work);
    if lost != 0 {
        // Where the holes are, to tell a local daemon's kill from a forwarding fault.
        for (app, &n) in emitted.iter().enumerate() {
            let missing: Vec<i64> = (0..n)
                .filter(|&q| !seen.contains_key(&(app as i64, q)))
                .collect();
            if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                println!(
                    "app {app}: {} missing, seq {first}..={last} (sent to local{})",
                    missing.len(),
                    app % 2
                );
            }
        }
        println!("FAILED: {lost} events lost (seed {seed})");
        std::process::exit(1);
    }
    println!("1 passed, 0 failed");
}
