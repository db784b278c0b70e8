//! Faults of a forwarding daemon's spool and of its upstream, against real ziggyd processes: a
//! lost or garbled ledger, two daemons on one spool, a spool directory others could write, a
//! spool write failing (file size limit, full disk) and recovering without new input, a flipped
//! bit in a segment, and an upstream refusing batches (`NAK1`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::minibson::Value;
use common::*;

fn start_master(t: &Tier, logs: &Path) -> Proc {
    start_ziggyd_at(
        &t.collect,
        &t.control,
        &["--log-path", logs.to_str().unwrap()],
    )
}

fn local_args(master_control: &str, spool: &Path) -> Vec<String> {
    [
        "--publish",
        "127.0.0.1:9",
        "--publish-control",
        master_control,
        "--spool-dir",
        spool.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start_local(t: &Tier, master: &Tier, spool: &Path) -> Proc {
    let args = local_args(&master.control, spool);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_ziggyd_at(&t.collect, &t.control, &args)
}

/// Starts ziggyd as `start_ziggyd_at` does, with `prepare` run in the child before exec.
fn start_ziggyd_prepared(
    t: &Tier,
    args: &[String],
    prepare: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Proc {
    let mut command = Command::new(bin("ziggyd"));
    command
        .args(["-H", &t.collect, "--control", &t.control, "-v"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: `prepare` only makes async-signal-safe calls (setrlimit, signal).
    unsafe { command.pre_exec(prepare) };
    let mut child = command.spawn().expect("starting ziggyd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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

/// Runs a ziggyd expected to refuse to start: its exit status and stderr.
fn start_refused(args: &[String]) -> (ExitStatus, String) {
    let mut child = Command::new(bin("ziggyd"))
        .args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ziggyd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ziggyd {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// Sends events `i = from..from + n` in frames of 100 concatenated events.
fn push_events(collect: &str, from: i64, n: i64) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(10_000).unwrap();
    push.connect(&format!("tcp://{collect}")).unwrap();
    let mut frame = Vec::new();
    for i in from..from + n {
        let t = 1.7e9 + i as f64 * 1e-3;
        frame.extend(common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            "request",
            t,
            t + 0.001,
            vec![("i", Value::Int64(i))],
        ));
        if (i - from + 1) % 100 == 0 || i + 1 == from + n {
            push.send(std::mem::take(&mut frame), 0).unwrap();
        }
    }
}

/// The master's files: event number `i` → copies. Read while the master writes, so a file may
/// end in part of an event (its buffer is written out at any byte): only whole ones count.
fn copies(logs: &Path) -> HashMap<i64, usize> {
    let mut map = HashMap::new();
    for file in files_under(logs)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "bson"))
    {
        let bytes = std::fs::read(&file).unwrap();
        let mut whole = 0;
        while let Some(len) = bytes.get(whole..whole + 4) {
            let len = i32::from_le_bytes(len.try_into().unwrap()) as usize;
            if len < 5 || whole + len > bytes.len() {
                break;
            }
            whole += len;
        }
        let events = common::minibson::decode_all(&bytes[..whole])
            .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        for e in events {
            let i = e.get("body").and_then(|b| b.get("i")).and_then(Value::int);
            *map.entry(i.unwrap()).or_default() += 1;
        }
    }
    map
}

fn has_all(logs: &Path, n: i64) -> bool {
    let found = copies(logs);
    (0..n).all(|i| found.contains_key(&i))
}

fn status(control: &str) -> bson::Document {
    status_at(control).expect("STATUS answered")
}

/// Stops a daemon with SIGTERM and returns its stderr.
fn stop(mut p: Proc) -> String {
    p.signal("TERM");
    let exited = p.wait_exit(Duration::from_secs(30)).expect("exits on TERM");
    assert!(exited.success(), "{exited:?}");
    p.stderr_text()
}

fn segments(spool: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<_> = files_under(spool)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "zsp"))
        .collect();
    segs.sort();
    segs
}

/// 100 events forwarded and confirmed, the local daemon stopped, `damage` done to its spool,
/// restarted, 100 more: all 200 must be in the master's files (none taken for a resend of the
/// first 100 and dropped).
fn after_damage_every_later_event_arrives(damage: impl FnOnce(&Path), reason: &str) {
    let root = tempdir();
    let (logs, spool) = (root.path().join("logs"), root.path().join("spool"));
    let (m, l) = (Tier::new(), Tier::new());
    let master = start_master(&m, &logs);
    let local = start_local(&l, &m, &spool);
    push_events(&l.collect, 0, 100);
    assert!(
        wait_until(Duration::from_secs(60), || has_all(&logs, 100)
            && num(&status(&l.control), "forward.spool_events") == 0),
        "{:?}",
        status_at(&l.control)
    );
    let old_id = std::fs::read_to_string(spool.join("sender-id")).unwrap();
    stop(local);

    damage(&spool);
    let local = start_local(&l, &m, &spool);
    assert_eq!(num(&status(&l.control), "forward.epochs"), 1);
    push_events(&l.collect, 100, 100);
    assert!(
        wait_until(Duration::from_secs(60), || has_all(&logs, 200)
            && num(&status(&l.control), "forward.spool_events") == 0),
        "local {:?}\nmaster {:?}\nfound {} of 200",
        status_at(&l.control),
        status_at(&m.control),
        copies(&logs).len()
    );
    let new_id = std::fs::read_to_string(spool.join("sender-id")).unwrap();
    let old_id = old_id.lines().next().unwrap();
    assert_ne!(new_id.lines().next().unwrap(), old_id);
    let stderr = stop(local);
    assert!(
        stderr.contains("new sender id") && stderr.contains(reason) && stderr.contains(old_id),
        "{stderr}"
    );
    drop(master);
}

#[test]
fn a_removed_ledger_starts_a_new_sender_id_and_nothing_later_is_dropped() {
    after_damage_every_later_event_arrives(
        |spool| std::fs::remove_file(spool.join("ledger")).unwrap(),
        "ledger is missing",
    );
}

#[test]
fn a_garbage_ledger_starts_a_new_sender_id_and_nothing_later_is_dropped() {
    after_damage_every_later_event_arrives(
        |spool| std::fs::write(spool.join("ledger"), b"\x00\x17garbage 99\n").unwrap(),
        "ledger is unparsable",
    );
}

#[test]
fn a_second_daemon_on_the_same_spool_dir_exits_2_naming_the_first() {
    let root = tempdir();
    let (logs, spool) = (root.path().join("logs"), root.path().join("spool"));
    let (m, l) = (Tier::new(), Tier::new());
    let master = start_master(&m, &logs);
    let first = start_local(&l, &m, &spool);
    let (exit, stderr) = start_refused(&local_args(&m.control, &spool));
    assert_eq!(exit.code(), Some(2), "{stderr}");
    let pid = first.child.id();
    assert!(
        stderr.contains(&format!("pid {pid}")) && stderr.contains("--spool-dir"),
        "{stderr}"
    );
    // The first goes on undisturbed.
    push_events(&l.collect, 0, 500);
    assert!(
        wait_until(Duration::from_secs(60), || has_all(&logs, 500)
            && num(&status(&l.control), "forward.spool_events") == 0),
        "{:?}",
        status_at(&l.control)
    );
    stop(first);
    drop(master);
}

#[test]
fn a_spool_dir_others_could_write_is_refused_and_spool_files_are_private() {
    let root = tempdir();
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (exit, stderr) = start_refused(&local_args("127.0.0.1:9", &open));
    assert_eq!(exit.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writable by group or others") && stderr.contains("chmod 700"),
        "{stderr}"
    );

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let (exit, stderr) = start_refused(&local_args("127.0.0.1:9", &theirs));
        assert_eq!(exit.code(), Some(2), "{stderr}");
        assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    } else {
        eprintln!("not root: the spool dir owned by another user is not tried");
    }

    // A new directory (and its missing parent) is made 0700, every file in it 0600.
    let spool = root.path().join("new/spool");
    let (m, l) = (Tier::new(), Tier::new());
    let local = start_local(&l, &m, &spool);
    push_events(&l.collect, 0, 100);
    assert!(wait_until(Duration::from_secs(30), || num(
        &status(&l.control),
        "forward.spooled_seq"
    ) == 100));
    for dir in [root.path().join("new"), spool.clone()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let files = files_under(&spool);
    assert!(files.len() >= 4, "{files:?}"); // lock, sender-id, ledger, a segment
    for file in files {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    stop(local);
}

/// The file size limit of a running process, in bytes.
fn set_file_size_limit(pid: u32, bytes: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit, no old value asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Sends `total` events to a local daemon whose spool cannot take them all, checks the failed
/// writes are counted and nothing is lost or confirmed wrongly, then has `clear` make room and
/// checks, with no new event sent, that everything gets spooled and forwarded.
fn spool_write_failure_then_room(
    local: Proc,
    l: &Tier,
    logs: &Path,
    total: i64,
    clear: impl FnOnce(&Proc),
    words: &str,
) {
    push_events(&l.collect, 0, total);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let s = status(&l.control);
            // Received, and handed from the collector to the spool (spooled or pending).
            num(&s, "events_in") == total
                && num(&s, "forward.spool_write_errors") >= 2
                && num(&s, "forward.spooled_seq") + num(&s, "forward.spool_pending") == total
        }),
        "{:?}",
        status_at(&l.control)
    );
    let s = status(&l.control);
    let (spooled, pending) = (
        num(&s, "forward.spooled_seq"),
        num(&s, "forward.spool_pending"),
    );
    eprintln!("while failing: {spooled} spooled, {pending} waiting in memory");
    assert!(pending > 0 && spooled < total, "{s:?}");
    let confirmed = num(&s, "forward.confirmed");
    assert!(confirmed <= spooled, "{s:?}");
    assert!(
        copies(logs).len() as i64 >= confirmed,
        "confirmed but not there"
    );
    // Retried on the timer, with no new input.
    let errors = num(&s, "forward.spool_write_errors");
    assert!(wait_until(Duration::from_secs(10), || num(
        &status(&l.control),
        "forward.spool_write_errors"
    ) > errors));

    clear(&local);
    assert!(
        wait_until(Duration::from_secs(60), || has_all(logs, total)
            && num(&status(&l.control), "forward.spool_events") == 0),
        "local {:?}\nfound {} of {total}",
        status_at(&l.control),
        copies(logs).len()
    );
    let s = status(&l.control);
    assert_eq!(num(&s, "forward.spool_pending"), 0);
    assert_eq!(num(&s, "forward.spooled_seq"), total);
    let stderr = stop(local);
    assert!(stderr.contains(words), "{stderr}");
}

#[test]
fn a_spool_write_over_the_file_size_limit_is_retried_until_it_fits_without_new_input() {
    let root = tempdir();
    let (logs, spool) = (root.path().join("logs"), root.path().join("spool"));
    let (m, l) = (Tier::new(), Tier::new());
    let _master = start_master(&m, &logs);
    let local = start_ziggyd_prepared(&l, &local_args(&m.control, &spool), || {
        let limit = libc::rlimit {
            rlim_cur: 64 << 10,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: async-signal-safe calls with valid arguments. SIGXFSZ ignored: a write past
        // the limit fails with EFBIG instead of killing the process.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0
                || libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    });
    spool_write_failure_then_room(
        local,
        &l,
        &logs,
        3_000,
        |p| set_file_size_limit(p.child.id(), libc::RLIM_INFINITY),
        "file size limit reached",
    );
}

/// A tmpfs mounted for one test, unmounted at drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_and_drained_once_room_is_made() {
    let root = tempdir();
    let fs = root.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
        .arg(&fs)
        .stderr(Stdio::piped())
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}); the file size limit test covers the path",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount ({e})");
            return;
        }
    }
    let _mount = Mount(fs.clone());
    // Leave about 100 KiB free.
    let filler = fs.join("filler");
    std::fs::write(&filler, vec![1u8; 900 << 10]).unwrap();
    let logs = root.path().join("logs");
    let (m, l) = (Tier::new(), Tier::new());
    let _master = start_master(&m, &logs);
    let local = start_local(&l, &m, &fs.join("spool"));
    spool_write_failure_then_room(
        local,
        &l,
        &logs,
        5_000,
        |_| std::fs::remove_file(&filler).unwrap(),
        "disk full",
    );
}

#[test]
fn one_flipped_bit_in_a_spool_segment_costs_one_event() {
    let root = tempdir();
    let (logs, spool) = (root.path().join("logs"), root.path().join("spool"));
    let (m, l) = (Tier::new(), Tier::new());
    let local = start_local(&l, &m, &spool);
    const TOTAL: i64 = 1_000;
    push_events(&l.collect, 0, TOTAL);
    assert!(wait_until(Duration::from_secs(60), || num(
        &status(&l.control),
        "forward.spooled_seq"
    ) == TOTAL));
    stop(local);

    let segs = segments(&spool);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    // Walk the records to the 500th (i = 499) and flip one bit in the middle of its payload.
    let mut offset = 0;
    for _ in 0..499 {
        offset += 16 + u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    }
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    bytes[offset + 16 + len / 2] ^= 0x10;
    std::fs::write(&segs[0], bytes).unwrap();

    let local = start_local(&l, &m, &spool);
    let _master = start_master(&m, &logs);
    assert!(
        wait_until(Duration::from_secs(60), || num(
            &status(&l.control),
            "forward.spool_events"
        ) == 0),
        "{:?}",
        status_at(&l.control)
    );
    let found = copies(&logs);
    assert_eq!(found.len() as i64, TOTAL - 1);
    assert!(!found.contains_key(&499));
    let s = status(&l.control);
    assert_eq!(num(&s, "forward.spool_corrupt"), 1);
    assert_eq!(num(&s, "forward.spool_lost"), 1);
    assert_eq!(num(&s, "forward.spool_cut_bytes"), 16 + len as i64);
    let stderr = stop(local);
    assert!(
        stderr.contains("damaged bytes") && stderr.contains("1 unconfirmed event(s) lost"),
        "{stderr}"
    );
}

/// A batch as a master's ROUTER receives it.
struct Received {
    peer: Vec<u8>,
    sender: String,
    first: u64,
    payload: Vec<u8>,
}

impl Received {
    fn events(&self) -> usize {
        common::minibson::decode_all(&self.payload).unwrap().len()
    }
}

fn next_batch(router: &zmq::Socket, timeout: Duration) -> Received {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if router.poll(zmq::POLLIN, 50).unwrap() == 0 {
            continue;
        }
        let parts = router.recv_multipart(0).unwrap();
        if let [peer, tag, sender, seq, payload] = parts.as_slice()
            && tag == b"ZGB1"
        {
            return Received {
                peer: peer.clone(),
                sender: String::from_utf8(sender.clone()).unwrap(),
                first: u64::from_le_bytes(seq[..].try_into().unwrap()),
                payload: payload.clone(),
            };
        }
    }
    panic!("no batch within {timeout:?}");
}

fn answer(router: &zmq::Socket, to: &Received, parts: &[&[u8]]) {
    let mut message = vec![&to.peer[..]];
    message.extend_from_slice(parts);
    router.send_multipart(message, 0).unwrap();
}

#[test]
fn refusals_back_off_and_resend_and_a_refused_numbering_starts_a_new_sender_id() {
    let root = tempdir();
    let spool = root.path().join("spool");
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.bind("tcp://127.0.0.1:*").unwrap();
    let port: i32 = router
        .get_last_endpoint()
        .unwrap()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The control endpoint a forwarder asks for the forward port.
    let control = ctx.socket(zmq::REP).unwrap();
    control.bind("tcp://127.0.0.1:*").unwrap();
    let control_endpoint = control.get_last_endpoint().unwrap().unwrap();
    let stop_control = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop_control.clone();
    let control_thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if control.poll(zmq::POLLIN, 50).unwrap() > 0 {
                control.recv_bytes(0).unwrap();
                let reply = bson::doc! { "port": port };
                control.send(reply.to_vec().unwrap(), 0).unwrap();
            }
        }
    });
    let l = Tier::new();
    let args = local_args(control_endpoint.trim_start_matches("tcp://"), &spool);
    let local = start_ziggyd_prepared(&l, &args, || Ok(()));

    push_events(&l.collect, 0, 10);
    let b1 = next_batch(&router, Duration::from_secs(20));
    assert_eq!((b1.first, b1.events()), (1, 10));
    answer(
        &router,
        &b1,
        &[b"NAK1", &0u64.to_le_bytes(), b"write_failed: ENOSPC"],
    );
    let refused_at = Instant::now();
    let b2 = next_batch(&router, Duration::from_secs(10));
    let pause = refused_at.elapsed();
    assert!(pause >= Duration::from_millis(950), "{pause:?}");
    assert_eq!(b2.peer, b1.peer, "resent on the same connection");
    assert_eq!(
        (&b2.sender, b2.first, &b2.payload),
        (&b1.sender, 1, &b1.payload)
    );
    answer(
        &router,
        &b2,
        &[b"NAK1", &0u64.to_le_bytes(), b"write_failed: EIO"],
    );
    let refused_at = Instant::now();
    let b3 = next_batch(&router, Duration::from_secs(10));
    let pause = refused_at.elapsed();
    assert!(pause >= Duration::from_millis(1950), "doubled: {pause:?}");
    assert_eq!((b3.first, &b3.payload), (1, &b1.payload));
    answer(&router, &b3, &[b"ACK1", &10u64.to_le_bytes()]);
    assert!(wait_until(Duration::from_secs(10), || num(
        &status(&l.control),
        "forward.spool_events"
    ) == 0));

    // A refused numbering: the same events again, under a new sender id numbered from 1.
    push_events(&l.collect, 10, 10);
    let b4 = next_batch(&router, Duration::from_secs(10));
    assert_eq!((&b4.sender, b4.first, b4.events()), (&b1.sender, 11, 10));
    answer(
        &router,
        &b4,
        &[b"NAK1", &0u64.to_le_bytes(), b"seq_jump: 11 after 0"],
    );
    let b5 = next_batch(&router, Duration::from_secs(10));
    assert_ne!(b5.sender, b1.sender);
    assert_eq!((b5.first, &b5.payload), (1, &b4.payload));
    // A confirmation beyond anything sent under this id means another peer used it: nothing is
    // confirmed, and the same events go again under yet another sender id.
    answer(&router, &b5, &[b"ACK1", &u64::MAX.to_le_bytes()]);
    assert!(wait_until(Duration::from_secs(10), || num(
        &status(&l.control),
        "forward.acks_beyond_sent"
    ) == 1));
    let b5b = next_batch(&router, Duration::from_secs(10));
    assert_ne!(b5b.sender, b5.sender);
    assert_eq!((b5b.first, &b5b.payload), (1, &b4.payload));
    answer(&router, &b5b, &[b"ACK1", &10u64.to_le_bytes()]);
    push_events(&l.collect, 20, 5);
    let b6 = next_batch(&router, Duration::from_secs(10));
    assert_eq!((&b6.sender, b6.first, b6.events()), (&b5b.sender, 11, 5));
    // Sent, so not taken as confirmed; unconfirmed until the ACK (STATUS lags by one turn).
    assert!(
        wait_until(Duration::from_secs(10), || num(
            &status(&l.control),
            "forward.spool_events"
        ) == 5),
        "{:?}",
        status_at(&l.control)
    );
    answer(&router, &b6, &[b"ACK1", &15u64.to_le_bytes()]);
    assert!(wait_until(Duration::from_secs(10), || num(
        &status(&l.control),
        "forward.spool_events"
    ) == 0));
    let s = status(&l.control);
    assert_eq!(num(&s, "forward.refused"), 3, "{s:?}");
    assert_eq!(num(&s, "forward.epochs"), 2, "{s:?}");
    assert_eq!(num(&s, "forward.confirmed"), 25, "{s:?}");

    let stderr = stop(local);
    stop_control.store(true, std::sync::atomic::Ordering::Relaxed);
    control_thread.join().unwrap();
    assert!(stderr.contains("write_failed: ENOSPC"), "{stderr}");
    assert!(
        stderr.contains("new sender id") && stderr.contains("seq_jump"),
        "{stderr}"
    );
}
