//! CURVE between real daemon processes: a master with `--curve-allow` writes what an allowed
//! forwarder sends and nothing from a daemon whose key is unknown, one without CURVE, or one that
//! has the wrong master key; each refusal is counted on both sides, the refused events stay in
//! the sender's spool, and allowing the key later delivers them all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::minibson::Value;
use common::*;

/// `ziggyd keygen DIR/NAME` through the real binary; returns the base path.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let base = dir.join(name);
    let out = Command::new(bin("ziggyd"))
        .arg("keygen")
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    base
}

fn path_with(base: &Path, ext: &str) -> String {
    format!("{}.{ext}", base.display())
}

/// A forwarding daemon towards `master`, with extra CURVE flags.
fn start_local(master: &Proc, spool: &Path, curve: &[&str]) -> Proc {
    // `--publish` takes HOST:PORT, not the tcp:// endpoint of the start line.
    let publish = master.collect.trim_start_matches("tcp://");
    let control = master.control.trim_start_matches("tcp://");
    let mut args = vec![
        "--publish",
        publish,
        "--publish-control",
        control,
        "--spool-dir",
        spool.to_str().unwrap(),
    ];
    args.extend_from_slice(curve);
    start_ziggyd(&args)
}

/// Sends `n` events whose body names their `sender`.
fn push_events(collect: &str, sender: &str, n: i64) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(5_000).unwrap();
    push.connect(collect).unwrap();
    for i in 0..n {
        let t = 1.7e9 + i as f64 * 1e-3;
        let frame = common::minibson::event(
            "0123456789abcdef0123456789abcdef",
            "request",
            t,
            t + 0.001,
            vec![
                ("from", Value::String(sender.into())),
                ("i", Value::Int64(i)),
            ],
        );
        push.send(frame, 0).unwrap();
    }
}

/// Events in the master's files from `sender`, and how many distinct `i` they cover.
fn written_from(logs: &Path, sender: &str) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (_, e) in read_all_events(logs) {
        let body = e.get("body").unwrap();
        if body.get("from").and_then(Value::str) == Some(sender) {
            total += 1;
            seen.insert(body.get("i").and_then(Value::int).unwrap());
        }
    }
    (total, seen.len())
}

#[test]
fn only_allowed_keys_get_written_and_refused_events_wait_in_the_spool() {
    const N: i64 = 1_000;
    let root = tempdir();
    let keys = root.path().join("keys");
    let allow = root.path().join("allow");
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&allow).unwrap();
    let master_key = keygen(&keys, "master");
    let good = keygen(&keys, "good");
    let unknown = keygen(&keys, "unknown");
    std::fs::copy(path_with(&good, "public"), allow.join("good.public")).unwrap();

    let master = start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--curve-secret-key",
        &path_with(&master_key, "secret"),
        "--curve-allow",
        allow.to_str().unwrap(),
    ]);
    let master_public = path_with(&master_key, "public");
    let curve = |who: &Path| {
        vec![
            "--curve-secret-key".to_owned(),
            path_with(who, "secret"),
            "--curve-master-key".to_owned(),
            master_public.clone(),
        ]
    };
    fn flags(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let good_flags = curve(&good);
    let unknown_flags = curve(&unknown);
    // Allowed key, but it trusts the wrong master key: the handshake cannot complete.
    let wrong_master_flags = vec![
        "--curve-secret-key".to_owned(),
        path_with(&good, "secret"),
        "--curve-master-key".to_owned(),
        path_with(&unknown, "public"),
    ];
    let senders = [
        ("good", flags(&good_flags)),
        ("unknown", flags(&unknown_flags)),
        ("plain", vec![]),
        ("wrong-master", flags(&wrong_master_flags)),
    ];
    let locals: Vec<(&str, Proc)> = senders
        .iter()
        .map(|(name, args)| {
            let spool = root.path().join(format!("spool-{name}"));
            (*name, start_local(&master, &spool, args))
        })
        .collect();
    for (name, local) in &locals {
        push_events(&local.collect, name, N);
    }

    // The allowed daemon's events arrive, every one.
    assert!(
        wait_until(Duration::from_secs(60), || written_from(&logs, "good").1
            == N as usize),
        "allowed sender: {:?} of {N} written",
        written_from(&logs, "good")
    );
    // The others have had many reconnections by now (100 ms apart, and a new connection after
    // every 3 s acknowledgement timeout); each refused spools and waits.
    for (name, local) in &locals[1..] {
        assert!(
            wait_until(Duration::from_secs(30), || status_at(&local.control)
                .is_some_and(|s| num(&s, "forward.spooled_seq") == N
                    && num(&s, "forward.handshake_failures") >= 1)),
            "{name}: {:?}",
            status_at(&local.control)
        );
    }
    std::thread::sleep(Duration::from_secs(4));
    for (name, local) in &locals[1..] {
        assert_eq!(written_from(&logs, name).0, 0, "{name} got events written");
        let s = status_at(&local.control).unwrap();
        assert_eq!(num(&s, "forward.confirmed"), 0, "{name}: {s}");
        assert_eq!(num(&s, "forward.spool_events"), N, "{name}: {s}");
    }
    let m = status_at(&master.control).unwrap();
    assert!(num(&m, "forward_in.auth_accepted") >= 1, "{m}");
    assert!(num(&m, "forward_in.auth_rejected") >= 1, "{m}");
    // The plain and wrong-master senders fail before the key check.
    assert!(num(&m, "forward_in.handshake_failures") >= 2, "{m}");
    assert_eq!(num(&m, "forward_in.events"), N, "{m}");

    // Allowing the unknown key later delivers everything it spooled, exactly once.
    std::fs::copy(path_with(&unknown, "public"), allow.join("unknown.public")).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || written_from(&logs, "unknown").1
            == N as usize),
        "after allowing: {:?}",
        written_from(&logs, "unknown")
    );
    assert_eq!(written_from(&logs, "unknown").0, N as usize);
    assert_eq!(written_from(&logs, "plain").0, 0);
    assert_eq!(written_from(&logs, "wrong-master").0, 0);

    let mut master = master;
    master.signal("TERM");
    assert!(master.wait_exit(Duration::from_secs(20)).is_some());
    let stderr = master.stderr_text();
    let unknown_z85 = std::fs::read_to_string(path_with(&unknown, "public")).unwrap();
    let unknown_z85 = unknown_z85.split('"').nth(1).unwrap();
    assert!(
        stderr.contains("refused a forwarding daemon") && stderr.contains(unknown_z85),
        "master stderr: {stderr}"
    );
}

#[test]
fn curve_flags_that_do_not_fit_exit_2_with_a_reason() {
    let root = tempdir();
    let key = keygen(root.path(), "k");
    let secret = path_with(&key, "secret");
    let public = path_with(&key, "public");
    let logs = root.path().join("logs");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--log-path",
                logs.to_str().unwrap(),
                "--curve-secret-key",
                &secret,
            ],
            "needs --curve-allow",
        ),
        (
            vec!["--curve-secret-key", &secret],
            "--curve-secret-key needs",
        ),
        (
            vec!["--publish", "127.0.0.1:9", "--curve-secret-key", &secret],
            "needs --curve-master-key",
        ),
        (
            vec![
                "--log-path",
                logs.to_str().unwrap(),
                "--curve-secret-key",
                &public,
                "--curve-allow",
                ".",
            ],
            "no secret-key line",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(bin("ziggyd"))
            .args(["-H", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // keygen never overwrites.
    let again = Command::new(bin("ziggyd"))
        .arg("keygen")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn a_sender_id_belongs_to_the_key_that_first_used_it() {
    let root = tempdir();
    let keys = root.path().join("keys");
    let allow = root.path().join("allow");
    let logs = root.path().join("logs");
    let spool = root.path().join("spool");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&allow).unwrap();
    let master_key = keygen(&keys, "master");
    let owner = keygen(&keys, "owner");
    let other = keygen(&keys, "other");
    for k in [&owner, &other] {
        let name = k.file_name().unwrap().to_str().unwrap();
        std::fs::copy(path_with(k, "public"), allow.join(format!("{name}.public"))).unwrap();
    }
    let master = start_ziggyd(&[
        "--log-path",
        logs.to_str().unwrap(),
        "--curve-secret-key",
        &path_with(&master_key, "secret"),
        "--curve-allow",
        allow.to_str().unwrap(),
    ]);
    let master_public = path_with(&master_key, "public");
    let owner_secret = path_with(&owner, "secret");
    let local = start_local(
        &master,
        &spool,
        &[
            "--curve-secret-key",
            &owner_secret,
            "--curve-master-key",
            &master_public,
        ],
    );
    push_events(&local.collect, "owner", 100);
    assert!(wait_until(Duration::from_secs(30), || written_from(
        &logs, "owner"
    )
    .0 == 100));
    let sender = std::fs::read_to_string(spool.join("sender-id")).unwrap();
    let sender = sender.lines().next().unwrap().trim().to_owned();
    // Another allowed key claims the owner's sender id, one seq past its mark.
    let port =
        ziggyd::client::control_request(&master.control, "SOCK_FORWARD", Duration::from_secs(2))
            .unwrap()
            .get_i32("port")
            .unwrap();
    let other_keys =
        ziggyd::curve::read_secret_file(Path::new(&path_with(&other, "secret"))).unwrap();
    let server = ziggyd::curve::read_public_file(Path::new(&master_public)).unwrap();
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.set_rcvtimeo(10_000).unwrap();
    dealer.set_curve_serverkey(&server).unwrap();
    dealer.set_curve_publickey(&other_keys.public).unwrap();
    dealer.set_curve_secretkey(&other_keys.secret).unwrap();
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let event = common::minibson::event(
        "0123456789abcdef0123456789abcdef",
        "request",
        1.7e9,
        1.7e9,
        vec![
            ("from", Value::String("intruder".into())),
            ("i", Value::Int64(0)),
        ],
    );
    dealer
        .send_multipart(
            [
                &b"ZGB1"[..],
                sender.as_bytes(),
                &101u64.to_le_bytes(),
                &event,
            ],
            0,
        )
        .unwrap();
    let reply = dealer.recv_multipart(0).unwrap();
    assert_eq!(reply[0], b"NAK1");
    assert!(String::from_utf8_lossy(&reply[2]).starts_with("sender_key"));
    let s = status_at(&master.control).unwrap();
    assert_eq!(num(&s, "forward_in.refused_sender_key"), 1);
    // The owner's next events are all written; the intruder's never.
    push_events(&local.collect, "owner2", 100);
    assert!(wait_until(Duration::from_secs(30), || written_from(
        &logs, "owner2"
    )
    .0 == 100));
    assert_eq!(written_from(&logs, "intruder").0, 0);
}
