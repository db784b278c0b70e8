//! The file writer against real files: torn tails, a path that cannot be written, the bound on
//! open files.

use super::*;
use crate::batch::{EventSpan, ForwardMark};

fn event_of(channel: &str, n: i32) -> Vec<u8> {
    bson::doc! { "id": "0123456789abcdef0123456789abcdef", "type": channel, "host": "h",
    "pid": 1, "start": 1.7e9, "end": 1.7e9, "body": { "n": n } }
    .to_vec()
    .unwrap()
}

/// A batch of one event, located as the collector locates it.
fn batch_of(frame: Vec<u8>, durable: Option<ForwardMark>) -> Batch {
    let meta = crate::validate::validate_event(&frame).unwrap();
    Batch {
        events: vec![EventSpan::locate(&meta, &frame)],
        frame,
        durable,
    }
}

fn batch(n: i32, durable: Option<ForwardMark>) -> Batch {
    batch_of(event_of("request", n), durable)
}

fn mark(seq: u64) -> ForwardMark {
    ForwardMark {
        identity: b"peer".to_vec(),
        sender: "s".into(),
        first_seq: seq,
        last_seq: seq,
    }
}

#[test]
fn a_torn_tail_left_by_a_crash_is_cut_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(DaemonStats::default());
    let mut writer = FileWriter::new(dir.path(), stats.clone()).unwrap();
    writer.write(&batch(1, None));
    writer.close_all();
    drop(writer);
    // A crash in the middle of writing the second event.
    let path = log_file_path(dir.path(), "request", Day::parse("20231114").unwrap());
    let mut torn = std::fs::read(&path).unwrap();
    torn.extend_from_slice(&event_of("request", 2)[..40]);
    std::fs::write(&path, &torn).unwrap();
    // A new process appends the third.
    let mut writer = FileWriter::new(dir.path(), stats.clone()).unwrap();
    writer.write(&batch(3, None));
    writer.close_all();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes,
        [event_of("request", 1), event_of("request", 3)].concat()
    );
    assert_eq!(stats.torn_tails_cut.load(Ordering::Relaxed), 1);
}

#[test]
fn a_directory_in_place_of_the_file_refuses_forwarded_and_holds_local_events() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(DaemonStats::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut writer = FileWriter::new(dir.path(), stats.clone())
        .unwrap()
        .with_outcomes(tx);
    let path = log_file_path(dir.path(), "request", Day::parse("20231114").unwrap());
    std::fs::create_dir_all(&path).unwrap();
    writer.write(&batch(1, Some(mark(1))));
    let outcome = rx.try_recv().unwrap();
    let reason = outcome.result.unwrap_err().to_string();
    assert!(reason.contains(&path.display().to_string()), "{reason}");
    writer.write(&batch(2, None));
    writer.tick(Duration::from_secs(60));
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_held.load(Ordering::Relaxed), 1);
    assert!(stats.write_errors.load(Ordering::Relaxed) >= 2);
    // The operator removes the directory: the held event is written at the next tick, and
    // the resent forwarded batch is confirmed.
    std::fs::remove_dir(&path).unwrap();
    writer.tick(Duration::from_secs(60));
    writer.write(&batch(1, Some(mark(1))));
    assert_eq!(rx.try_recv().unwrap().result, Ok(()));
    writer.close_all();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        [event_of("request", 2), event_of("request", 1)].concat()
    );
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 2);
    assert_eq!(stats.events_held.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_lost_write.load(Ordering::Relaxed), 0);
}

#[test]
fn open_files_are_bounded_least_recently_used_closed_first() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(DaemonStats::default());
    let mut writer = FileWriter::new(dir.path(), stats.clone())
        .unwrap()
        .with_max_open(4);
    for round in 0..3 {
        for c in 0..10 {
            let b = batch_of(event_of(&format!("c{c}"), round * 10 + c), Some(mark(1)));
            writer.write(&b);
            assert!(stats.files_open.load(Ordering::Relaxed) <= 4);
        }
    }
    writer.close_all();
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 30);
    for c in 0..10 {
        let path = log_file_path(
            dir.path(),
            &format!("c{c}"),
            Day::parse("20231114").unwrap(),
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes,
            [0, 10, 20]
                .map(|round| event_of(&format!("c{c}"), round + c))
                .concat()
        );
    }
}
