//! Faults at the master (the daemon that writes files), against real ziggyd processes: a path it
//! cannot write, a file that cannot grow (disk full), SIGHUP under load, a second daemon on its
//! log path, hostile forwarded batches, a worker thread that dies. Each asserts that nothing
//! confirmed is lost and that the counters say what happened.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::minibson::Value;
use common::*;

const DAY: &str = "20231114";

/// `n` events `{t, i}` on `channel`, of about `pad` bytes each, in frames of 100.
fn push(collect: &str, channel: &str, t: i64, n: i64, pad: usize) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(10_000).unwrap();
    let endpoint = if collect.contains("://") {
        collect.to_owned()
    } else {
        format!("tcp://{collect}")
    };
    push.connect(&endpoint).unwrap();
    let mut frame = Vec::new();
    for i in 0..n {
        let start = 1.7e9 + i as f64 * 1e-4;
        frame.extend(common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            channel,
            start,
            start + 0.001,
            vec![
                ("t", Value::Int64(t)),
                ("i", Value::Int64(i)),
                ("pad", Value::String("x".repeat(pad))),
            ],
        ));
        if (i + 1) % 100 == 0 || i + 1 == n {
            push.send(std::mem::take(&mut frame), 0).unwrap();
        }
    }
}

/// `n` events `{t, i}`, alternating between the channels `request` and `other`, 100 to a frame.
fn push_mixed(collect: &str, t: i64, n: i64) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(10_000).unwrap();
    push.connect(collect).unwrap();
    let mut frame = Vec::new();
    for i in 0..n {
        let channel = if i % 2 == 0 { "request" } else { "other" };
        frame.extend(common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            channel,
            1.7e9,
            1.7e9,
            vec![("t", Value::Int64(t)), ("i", Value::Int64(i))],
        ));
        if (i + 1) % 100 == 0 || i + 1 == n {
            push.send(std::mem::take(&mut frame), 0).unwrap();
        }
    }
}

/// `(t, i)` → copies, in one file.
fn copies_in(file: &Path) -> HashMap<(i64, i64), usize> {
    let mut map = HashMap::new();
    let bytes = std::fs::read(file).unwrap();
    for e in common::minibson::decode_all(&bytes).unwrap() {
        let body = e.get("body").unwrap();
        let key = (
            body.get("t").and_then(Value::int).unwrap(),
            body.get("i").and_then(Value::int).unwrap(),
        );
        *map.entry(key).or_default() += 1;
    }
    map
}

fn missing(map: &HashMap<(i64, i64), usize>, t: i64, n: i64) -> Vec<i64> {
    (0..n).filter(|i| !map.contains_key(&(t, *i))).collect()
}

fn start_master(logs: &Path) -> Proc {
    start_ziggyd(&["--log-path", logs.to_str().unwrap()])
}

/// A master taking frames (and so forwarded batches) of at most `max_frame_bytes`.
fn start_master_taking_frames_up_to(logs: &Path, max_frame_bytes: u64) -> Proc {
    start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--max-frame-bytes",
        &max_frame_bytes.to_string(),
    ])
}

fn start_local(master: &Proc, spool: &Path) -> Proc {
    // The master's collect port is not its control port + 1 here: name its control endpoint.
    start_ziggyd(&[
        "--publish",
        master.collect.trim_start_matches("tcp://"),
        "--publish-control",
        master.control.trim_start_matches("tcp://"),
        "--spool-dir",
        spool.to_str().unwrap(),
    ])
}

fn status(p: &Proc) -> bson::Document {
    status_at(&p.control).expect("STATUS answered")
}

#[test]
fn a_directory_where_a_log_file_belongs_withholds_confirmation_until_it_is_gone() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let blocked = logs.join(DAY).join(format!("request.{DAY}.bson"));
    std::fs::create_dir_all(&blocked).unwrap();
    let master = start_master(&logs);
    let local = start_local(&master, &root.path().join("spool"));
    push(&local.collect, "request", 1, 100, 10);
    push(&local.collect, "other", 2, 100, 10);
    // The writable channel gets through; the blocked one is refused, not confirmed.
    assert!(wait_until(Duration::from_secs(20), || {
        num(&status(&master), "forward_in.refused_write") > 0
            && missing(&copies(&logs), 2, 100).is_empty()
    }));
    // Many batches behind the refused one, both channels mixed in each frame: none of them
    // may move the sender's position past the refused batch. More than a full window of them
    // (32 batches of 2,000): in flight when the refusal comes, they must not be taken for a
    // jump in numbering (which would start a new sender id and resend everything).
    push_mixed(&local.collect, 3, 80_000);
    // STATUS names the path while it fails, also between the sender's resends (its pause
    // grows to 30 s).
    let path = blocked.display().to_string();
    let names_the_directory = |m: &bson::Document| {
        m.get_document("write_failing")
            .is_ok_and(|f| f.get_str(&path).is_ok_and(|r| r.contains("directory")))
    };
    assert!(
        wait_until(Duration::from_secs(60), || names_the_directory(&status(
            &master
        ))),
        "{:?}",
        status(&master).get_document("write_failing")
    );
    for _ in 0..15 {
        // Three of the writer's ticks (one a second).
        std::thread::sleep(Duration::from_millis(200));
        assert!(names_the_directory(&status(&master)));
    }
    let m = status(&master);
    assert_eq!(num(&m, "write_failing_paths"), 1);
    assert!(num(&m, "write_errors") > 0);
    // The local daemon keeps all 100 blocked events: none is confirmed.
    let l = status(&local);
    assert!(num(&l, "forward.confirmed") <= 100, "{l:?}");
    assert!(num(&l, "forward.spool_events") >= 100, "{l:?}");
    assert!(missing(&copies(&logs), 1, 100).len() == 100);
    // The operator removes the directory: the resends are written, all of them.
    std::fs::remove_dir(&blocked).unwrap();
    assert!(
        wait_until(Duration::from_secs(90), || {
            let map = copies(&logs);
            missing(&map, 1, 100).is_empty() && missing(&map, 3, 80_000).is_empty()
        }),
        "missing after the path cleared: {:?} and {}",
        missing(&copies(&logs), 1, 100),
        missing(&copies(&logs), 3, 80_000).len()
    );
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&local),
        "forward.spool_events"
    ) == 0));
    let m = status(&master);
    assert_eq!(num(&m, "write_failing_paths"), 0);
    assert_eq!(num(&m, "forward_in.refused_seq_jump"), 0);
    assert_eq!(num(&status(&local), "forward.epochs"), 0);
    let map = copies(&logs);
    let duplicates: usize = map.values().map(|c| c - 1).sum();
    assert!(
        duplicates as i64 <= num(&m, "forward_in.possible_duplicates"),
        "{duplicates} duplicates, {} possible",
        num(&m, "forward_in.possible_duplicates")
    );
    let stderr_master = {
        let mut master = master;
        master.signal("TERM");
        master.wait_exit(Duration::from_secs(20));
        master.stderr_text()
    };
    assert!(stderr_master.contains(&path), "{stderr_master}");
    drop(local);
}

/// Starts a master whose files cannot grow past `limit` bytes (RLIMIT_FSIZE: writes past it
/// fail with EFBIG, as on a full disk, without root).
fn start_master_with_file_limit(logs: &Path, limit: u64) -> Proc {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin("ziggyd"));
    cmd.args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0", "-v"])
        .args(["--log-path", logs.to_str().unwrap(), "--flush-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    Proc {
        stderr: child.stderr.take(),
        child,
        collect: words[2].into(),
        control: words[4].into(),
        stream: words[6].into(),
    }
}

fn raise_file_limit(pid: u32) {
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `rl` and writes nothing (old limit pointer is null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &rl,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_file_that_cannot_grow_counts_exactly_holds_the_rest_and_resumes() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let mut master = start_master_with_file_limit(&logs, 1 << 20);
    push(&master.collect, "request", 1, 5_000, 1_000);
    // About 1,000 events fit; the rest are held, and STATUS counts only what is in the file.
    assert!(wait_until(Duration::from_secs(20), || {
        let s = status(&master);
        num(&s, "events_in") == 5_000 && num(&s, "events_held") > 0
    }));
    std::thread::sleep(Duration::from_millis(300));
    let s = status(&master);
    let on_disk = copies(&logs).len() as i64;
    assert_eq!(num(&s, "events_written"), on_disk, "{s:?}");
    assert_eq!(num(&s, "events_written") + num(&s, "events_held"), 5_000);
    assert_eq!(num(&s, "events_lost_write"), 0);
    let failing = s.get_document("write_failing").unwrap();
    assert!(
        failing
            .iter()
            .any(|(_, r)| r.as_str().is_some_and(|r| r.contains("file size limit"))),
        "{failing:?}"
    );
    // Space returns; nothing new is sent: the held events are written by the retry timer.
    raise_file_limit(master.child.id());
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&master),
        "events_written"
    ) == 5_000));
    let s = status(&master);
    assert_eq!(num(&s, "events_held"), 0);
    assert_eq!(num(&s, "write_failing_paths"), 0);
    let map = copies(&logs);
    assert!(missing(&map, 1, 5_000).is_empty());
    assert!(map.values().all(|c| *c == 1), "no event twice");
    master.signal("TERM");
    assert!(master.wait_exit(Duration::from_secs(20)).unwrap().success());
    let stderr = master.stderr_text();
    assert!(stderr.contains("file size limit"), "{stderr}");
    assert!(!stderr.contains("crash"), "{stderr}");
}

/// With root, a real full disk: a 2 MiB tmpfs.
#[test]
fn a_full_tmpfs_says_disk_full_and_resumes_when_it_grows() {
    let root = tempdir();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&logs)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers the same path"
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&logs);
    let mut master = start_ziggyd(&["--log-path", logs.to_str().unwrap(), "--flush-ms", "100"]);
    push(&master.collect, "request", 1, 4_000, 1_000);
    assert!(wait_until(Duration::from_secs(20), || {
        let s = status(&master);
        num(&s, "events_in") == 4_000 && num(&s, "events_held") > 0
    }));
    std::thread::sleep(Duration::from_millis(300));
    let s = status(&master);
    assert_eq!(num(&s, "events_written"), copies(&logs).len() as i64);
    let failing = s.get_document("write_failing").unwrap();
    assert!(
        failing
            .iter()
            .any(|(_, r)| r.as_str().is_some_and(|r| r.contains("disk full"))),
        "{failing:?}"
    );
    assert!(
        Command::new("mount")
            .args(["-o", "remount,size=16m"])
            .arg(&logs)
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&master),
        "events_written"
    ) == 4_000));
    assert!(missing(&copies(&logs), 1, 4_000).is_empty());
    master.signal("TERM");
    assert!(master.wait_exit(Duration::from_secs(20)).unwrap().success());
    assert!(master.stderr_text().contains("disk full"));
}

#[test]
fn sighup_under_load_reopens_files_and_loses_nothing() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let mut master = start_master(&logs);
    let collect = master.collect.clone();
    let sender = std::thread::spawn(move || push(&collect, "request", 1, 60_000, 50));
    let file = logs.join(DAY).join(format!("request.{DAY}.bson"));
    for round in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        // What logrotate does: move the file away, then HUP.
        if round % 5 == 4 && file.exists() {
            std::fs::rename(&file, logs.join(DAY).join(format!("rotated-{round}.bson"))).unwrap();
        }
        master.signal("HUP");
    }
    sender.join().unwrap();
    assert!(wait_until(Duration::from_secs(30), || num(
        &status(&master),
        "events_in"
    ) == 60_000));
    master.signal("TERM");
    let exit = master.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    let stderr = master.stderr_text();
    assert!(stderr.contains("SIGHUP"), "{stderr}");
    let map = copies(&logs);
    assert!(missing(&map, 1, 60_000).is_empty());
    assert!(map.values().all(|c| *c == 1));
}

#[test]
fn a_second_daemon_on_one_log_path_exits_2_naming_the_first() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master(&logs);
    let out = Command::new(bin("ziggyd"))
        .args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--log-path", logs.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {}", master.child.id())),
        "{stderr}"
    );
    // The first one is unharmed.
    push(&master.collect, "request", 1, 10, 10);
    assert!(wait_until(Duration::from_secs(10), || num(
        &status(&master),
        "events_in"
    ) == 10));
}

/// A raw DEALER talking the forward protocol to `master`, as a hostile local process would.
fn forward_socket(ctx: &zmq::Context, master: &Proc) -> zmq::Socket {
    let port =
        ziggyd::client::control_request(&master.control, "SOCK_FORWARD", Duration::from_secs(2))
            .unwrap()
            .get_i32("port")
            .unwrap();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.set_rcvtimeo(5_000).unwrap();
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    dealer
}

fn events(t: i64, n: i64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            common::minibson::event(
                "0123456789abcdef0123456789abcdef",
                "request",
                1.7e9,
                1.7e9,
                vec![("t", Value::Int64(t)), ("i", Value::Int64(i))],
            )
        })
        .collect()
}

fn send_batch(dealer: &zmq::Socket, sender: &str, first: u64, payload: &[u8]) -> Vec<Vec<u8>> {
    dealer
        .send_multipart(
            [
                &b"ZGB1"[..],
                sender.as_bytes(),
                &first.to_le_bytes(),
                payload,
            ],
            0,
        )
        .unwrap();
    dealer.recv_multipart(0).unwrap_or_default()
}

#[test]
fn absurd_seqs_from_a_peer_are_refused_and_the_daemon_keeps_working() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master(&logs);
    let ctx = zmq::Context::new();
    let dealer = forward_socket(&ctx, &master);
    // A known sender near the top of the numbers: seqs past u64::MAX, or 0, are refused.
    let reply = send_batch(&dealer, "cafe", 1, &events(8, 5));
    assert_eq!(reply[0], b"ACK1");
    for first in [u64::MAX - 1, u64::MAX, 0] {
        let reply = send_batch(&dealer, "cafe", first, &events(9, 5));
        assert_eq!(reply[0], b"NAK1", "seq {first}: {reply:?}");
        assert_eq!(reply[1], 5u64.to_le_bytes(), "the mark is unchanged");
        assert!(String::from_utf8_lossy(&reply[2]).starts_with("seq_jump"));
    }
    assert_eq!(num(&status(&master), "forward_in.refused_bad_seq"), 3);
    // A new sender id starts at 1.
    let reply = send_batch(&dealer, "beef", 1_000, &events(9, 1));
    assert_eq!(reply[0], b"NAK1");
    assert_eq!(num(&status(&master), "forward_in.refused_seq_jump"), 1);
    // A batch that is not whole documents cannot be numbered: refused, not counted as events.
    let mut torn = events(9, 3);
    torn.truncate(torn.len() - 7);
    let reply = send_batch(&dealer, "cafe", 6, &torn);
    assert_eq!(reply[0], b"NAK1");
    assert!(String::from_utf8_lossy(&reply[2]).starts_with("malformed"));
    // A sender id that would break the ledger's lines is refused as malformed (no reply).
    dealer.set_rcvtimeo(500).unwrap();
    assert!(send_batch(&dealer, "a 1 2\nvictim 99 99", 1, &events(9, 1)).is_empty());
    dealer.set_rcvtimeo(5_000).unwrap();
    // Every thread is alive: direct events and the sane batch are written.
    push(&master.collect, "request", 1, 10, 10);
    assert!(wait_until(Duration::from_secs(10), || {
        let map = copies(&logs);
        missing(&map, 1, 10).is_empty() && missing(&map, 8, 5).is_empty()
    }));
    assert!(copies(&logs).keys().all(|(t, _)| *t != 9));
    let ledger = std::fs::read_to_string(logs.join(".ziggyd-forward-ledger")).unwrap();
    assert!(!ledger.contains("victim"), "{ledger}");
}

#[test]
fn a_chain_of_jumps_under_a_senders_id_cannot_make_it_lose_events() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    let master = start_master(&logs);
    let local = start_local(&master, &spool);
    push(&local.collect, "request", 1, 1_000, 10);
    assert!(wait_until(Duration::from_secs(20), || missing(
        &copies(&logs),
        1,
        1_000
    )
    .is_empty()));
    let victim = std::fs::read_to_string(spool.join("sender-id")).unwrap();
    let victim = victim.lines().next().unwrap().trim().to_owned();
    // A local process on the same address walks the victim's position forward 32,000 at a
    // time: each step is within the bound, the sum is not.
    let ctx = zmq::Context::new();
    let dealer = forward_socket(&ctx, &master);
    let mut at = 1_000;
    for _ in 0..50 {
        at += 32_000;
        let reply = send_batch(&dealer, &victim, at, &events(9, 1));
        assert_eq!(reply[0], b"ACK1", "{reply:?}");
    }
    // The victim's next events: the master takes them for duplicates and confirms far beyond
    // what the victim sent; the victim sees that, starts a new sender id, and resends.
    push(&local.collect, "request", 2, 5_000, 10);
    assert!(
        wait_until(Duration::from_secs(60), || missing(
            &copies(&logs),
            2,
            5_000
        )
        .is_empty()),
        "missing: {}",
        missing(&copies(&logs), 2, 5_000).len()
    );
    assert!(num(&status(&local), "forward.epochs") >= 1);
}

#[test]
fn a_master_with_a_small_frame_limit_gets_every_event_in_smaller_batches() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master_taking_frames_up_to(&logs, 200_000);
    let local = start_local(&master, &root.path().join("spool"));
    push(&local.collect, "request", 1, 10_000, 50);
    assert!(
        wait_until(Duration::from_secs(60), || missing(
            &copies(&logs),
            1,
            10_000
        )
        .is_empty()),
        "missing: {}",
        missing(&copies(&logs), 1, 10_000).len()
    );
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&local),
        "forward.spool_events"
    ) == 0));
    assert!(num(&status(&master), "forward_in.refused_malformed") >= 1);
    assert_eq!(num(&status(&local), "forward.refused_events"), 0);
}

#[test]
fn a_damaged_log_file_is_set_aside_untouched_not_cut() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let mut master = start_master(&logs);
    push(&master.collect, "request", 1, 1_000, 10);
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&master),
        "events_written"
    ) == 1_000));
    master.signal("TERM");
    assert!(master.wait_exit(Duration::from_secs(20)).unwrap().success());
    // One flipped byte in the middle: the end byte of event 100.
    let file = logs.join(DAY).join(format!("request.{DAY}.bson"));
    let mut bytes = std::fs::read(&file).unwrap();
    let mut at = 0;
    for _ in 0..100 {
        at += i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    bytes[at - 1] = 1;
    std::fs::write(&file, &bytes).unwrap();
    let master = start_master(&logs);
    push(&master.collect, "request", 2, 10, 10);
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&master),
        "events_written"
    ) == 10));
    assert_eq!(num(&status(&master), "damaged_files"), 1);
    assert_eq!(num(&status(&master), "torn_tails_cut"), 0);
    let aside: Vec<_> = std::fs::read_dir(logs.join(DAY))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(aside[0].path()).unwrap(),
        bytes,
        "kept byte for byte"
    );
    assert!(missing(&copies_in(&file), 2, 10).is_empty());
}

#[test]
fn a_ledger_that_cannot_be_written_refuses_batches_until_it_can() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master(&logs);
    let local = start_local(&master, &root.path().join("spool"));
    push(&local.collect, "request", 1, 100, 10);
    assert!(wait_until(Duration::from_secs(20), || missing(
        &copies(&logs),
        1,
        100
    )
    .is_empty()));
    // Every confirmation sent (the ledger is written before each): no write of it is still
    // to come when it is replaced by a directory.
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&local),
        "forward.spool_events"
    ) == 0));
    let ledger = logs.join(".ziggyd-forward-ledger");
    std::fs::remove_file(&ledger).unwrap();
    std::fs::create_dir(&ledger).unwrap();
    push(&local.collect, "request", 2, 1_000, 10);
    assert!(wait_until(Duration::from_secs(20), || {
        let s = status(&master);
        num(&s, "forward_in.refused_write") > 0
            && s.get_document("forward_in")
                .unwrap()
                .get_bool("ledger_failing")
                .ok()
                == Some(true)
    }));
    assert!(num(&status(&local), "forward.spool_events") >= 1_000);
    std::fs::remove_dir(&ledger).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || missing(
            &copies(&logs),
            2,
            1_000
        )
        .is_empty()),
        "missing: {}",
        missing(&copies(&logs), 2, 1_000).len()
    );
    let s = status(&master);
    assert_eq!(
        s.get_document("forward_in")
            .unwrap()
            .get_bool("ledger_failing")
            .ok(),
        Some(false)
    );
}

#[test]
fn a_peer_claiming_another_senders_id_cannot_make_it_lose_events() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    let master = start_master(&logs);
    let local = start_local(&master, &spool);
    push(&local.collect, "request", 1, 100, 10);
    assert!(wait_until(Duration::from_secs(20), || missing(
        &copies(&logs),
        1,
        100
    )
    .is_empty()));
    // `sender-id`: the id on its first line.
    let victim = std::fs::read_to_string(spool.join("sender-id")).unwrap();
    let victim = victim.lines().next().unwrap().trim();
    let ctx = zmq::Context::new();
    let dealer = forward_socket(&ctx, &master);
    let reply = send_batch(&dealer, victim, 1_000_000_000_000, &events(9, 1));
    assert_eq!(reply[0], b"NAK1", "{reply:?}");
    assert!(String::from_utf8_lossy(&reply[2]).starts_with("seq_jump"));
    assert_eq!(num(&status(&master), "forward_in.refused_seq_jump"), 1);
    // The victim's next events are written, not taken for duplicates.
    push(&local.collect, "request", 2, 100, 10);
    assert!(
        wait_until(Duration::from_secs(20), || missing(&copies(&logs), 2, 100)
            .is_empty()),
        "missing: {:?}",
        missing(&copies(&logs), 2, 100)
    );
    assert!(copies(&logs).keys().all(|(t, _)| *t != 9));
    let s = status(&master);
    assert_eq!(num(&s, "forward_in.deduplicated"), 0, "{s:?}");
}

#[test]
fn a_worker_thread_that_dies_stops_the_daemon_with_exit_1() {
    let root = tempdir();
    let port = free_port();
    let mut child = Command::new(bin("ziggyd"))
        .args([
            "-H",
            &format!("127.0.0.1:{port}"),
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--log-path", root.path().to_str().unwrap()])
        .env("ZIGGYD_PANIC_THREAD", "ziggyd-collect")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("ziggyd kept running without its collector");
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("ziggyd-collect thread died"), "{stderr}");
}

#[test]
fn thousands_of_channels_keep_open_files_bounded_and_control_answering() {
    const CHANNELS: i64 = 3_000;
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master(&logs);
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(10_000).unwrap();
    push.connect(&master.collect).unwrap();
    for c in 0..CHANNELS {
        let e = common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            &format!("ch{c}"),
            1.7e9,
            1.7e9,
            vec![("t", Value::Int64(c)), ("i", Value::Int64(0))],
        );
        push.send(e, 0).unwrap();
    }
    let mut most_open = 0;
    assert!(wait_until(Duration::from_secs(60), || {
        let started = std::time::Instant::now();
        let s = status(&master);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "STATUS was slow"
        );
        most_open = most_open.max(num(&s, "files_open"));
        num(&s, "events_written") == CHANNELS
    }));
    assert!(most_open <= 256, "{most_open} files open");
    let map = copies(&logs);
    assert_eq!(map.len() as i64, CHANNELS);
    assert!(map.values().all(|c| *c == 1));
}

/// A batch refused as `too_large` leaves a hole: the next, smaller batch of the same window is
/// not taken past it (taken, its ACK would confirm the refused events, which the sender would
/// then drop from its spool unwritten).
#[test]
fn a_batch_behind_a_too_large_refusal_does_not_confirm_the_refused_events() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master_taking_frames_up_to(&logs, 200_000);
    let ctx = zmq::Context::new();
    let dealer = forward_socket(&ctx, &master);
    let reply = send_batch(&dealer, "victim", 1, &events(1, 1));
    assert_eq!(reply[0], b"ACK1", "{reply:?}");
    // Events 2..=2001 in one batch over the master's frame limit.
    let big = events(2, 2000);
    assert!(big.len() > 200_000);
    let reply = send_batch(&dealer, "victim", 2, &big);
    assert_eq!(reply[0], b"NAK1", "{reply:?}");
    // The next batch of the window, small enough: events 2002..=2011.
    let reply = send_batch(&dealer, "victim", 2002, &events(3, 10));
    // ACK1's seq or NAK1's mark: what the master confirms.
    let confirmed = u64::from_le_bytes(reply[1][..8].try_into().unwrap());
    assert!(
        confirmed < 2,
        "the master answered {:?} confirming up to {confirmed}: events 2..=2001 were never written",
        String::from_utf8_lossy(&reply[0])
    );
}

/// End to end: a local daemon's window holds a batch over the master's frame limit and a
/// smaller one behind it; every event is written, none confirmed before it is.
#[test]
fn a_small_frame_limit_loses_no_event_when_batches_of_a_window_differ_in_size() {
    let root = tempdir();
    let logs = root.path().join("logs");
    let master = start_master_taking_frames_up_to(&logs, 300_000);
    let local = start_local(&master, &root.path().join("spool"));
    // The master knows this sender.
    push(&local.collect, "request", 0, 10, 10);
    assert!(wait_until(Duration::from_secs(20), || num(
        &status(&local),
        "forward.confirmed"
    ) == 10));
    // The master stalls: the local daemon spools, times out and later resends its backlog in
    // full batches from the spool.
    master.signal("STOP");
    // ~500-byte events: a full batch (1 MiB) is refused, the window's last one fits.
    push(&local.collect, "request", 1, 2_500, 400);
    std::thread::sleep(Duration::from_secs(5));
    master.signal("CONT");
    assert!(wait_until(Duration::from_secs(60), || num(
        &status(&local),
        "forward.spool_events"
    ) == 0));
    let l = status(&local);
    eprintln!("local forward: {:?}", l.get_document("forward"));
    eprintln!(
        "master forward_in: {:?}",
        status(&master).get_document("forward_in")
    );
    assert_eq!(
        missing(&copies(&logs), 1, 2_500).len(),
        0,
        "events confirmed but never written; local: confirmed {} refused_events {}",
        num(&l, "forward.confirmed"),
        num(&l, "forward.refused_events")
    );
}
