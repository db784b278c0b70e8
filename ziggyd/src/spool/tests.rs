use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use super::*;

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_owned(),
        segment_bytes: 1000,
        max_bytes: 1 << 30,
    }
}

/// A payload shaped like a BSON document (its length first, a 0 last), as every real one is.
fn doc(i: u8, len: usize) -> Vec<u8> {
    let mut d = vec![i; len];
    d[..4].copy_from_slice(&(len as i32).to_le_bytes());
    d[len - 1] = 0;
    d
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "zsp"))
        .collect();
    segs.sort();
    segs
}

/// Every record readable from seq 1: `(first, last)` of each batch and the count.
fn read_all(spool: &mut Spool) -> (Vec<(u64, u64)>, u64) {
    let (mut from, mut records, mut batches) = (1, 0, Vec::new());
    while let Some(SpooledBatch { first, last, .. }) =
        spool.read_batch(from, 1000, 1 << 20).unwrap()
    {
        records += last - first + 1;
        batches.push((first, last));
        from = last + 1;
    }
    (batches, records)
}

#[test]
fn pending_records_are_not_read_until_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.segment_bytes = 1 << 20;
    let (mut spool, _) = Spool::open(config).unwrap();
    for i in 0..5u8 {
        spool.append(&[i; 40]).unwrap();
    }
    spool.sync().unwrap();
    for i in 5..10u8 {
        spool.append(&[i; 40]).unwrap();
    }
    assert_eq!((spool.pending_events(), spool.pending_bytes()), (5, 5 * 56));
    let SpooledBatch {
        first,
        last,
        payload: bytes,
    } = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last, bytes.len()), (1, 5, 200));
    spool.sync().unwrap();
    assert_eq!(spool.pending_events(), 0);
    let SpooledBatch { first, last, .. } = spool.read_batch(6, 100, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last), (6, 10));
}

#[test]
fn append_sync_read_ack_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(rec, Recovery::default(), "a new spool is no epoch");
    for i in 0..100u32 {
        spool.append(&[i as u8; 50]).unwrap();
    }
    assert_eq!(
        spool.read_batch(1, 10, 1 << 20).unwrap(),
        None,
        "unsynced records are not forwarded"
    );
    assert_eq!(spool.sync().unwrap(), 100);
    let SpooledBatch {
        first,
        last,
        payload: bytes,
    } = spool.read_batch(1, 10, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last, bytes.len()), (1, 10, 500));
    spool.ack(60).unwrap();
    assert_eq!(spool.depth(), 40);
    let SpooledBatch {
        first,
        payload: bytes,
        ..
    } = spool.read_batch(1, 1000, 1 << 20).unwrap().unwrap();
    assert_eq!((first, bytes[0]), (61, 60));
    let id = spool.sender_id().to_owned();
    drop(spool);
    let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(spool.sender_id(), id);
    assert_eq!(spool.acked_seq(), 60);
    assert_eq!((rec.corrupt, rec.epoch), (0, None));
    assert_eq!(
        spool.read_batch(1, 1000, 1 << 20).unwrap().unwrap().first,
        61
    );
}

#[test]
fn a_failed_write_is_cut_back_kept_pending_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..10u8 {
        spool.append(&[i; 30]).unwrap();
    }
    spool.sync().unwrap();
    for i in 10..20u8 {
        spool.append(&[i; 30]).unwrap();
    }
    spool.fail_writes = 2;
    for _ in 0..2 {
        let e = spool.sync().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!((spool.synced_seq(), spool.pending_events()), (10, 10));
    }
    let seg = &segments(dir.path())[0];
    assert_eq!(
        std::fs::metadata(seg).unwrap().len(),
        10 * 46,
        "half-write cut"
    );
    assert_eq!(read_all(&mut spool), (vec![(1, 10)], 10));
    assert_eq!(spool.sync().unwrap(), 20, "the retry writes everything");
    assert_eq!(read_all(&mut spool), (vec![(1, 20)], 20));
    drop(spool);
    let (_, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((rec.records, rec.corrupt), (20, 0));
}

#[test]
fn one_flipped_bit_costs_one_record_and_the_segment_is_rewritten_clean() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        segment_bytes: 1 << 20,
        ..config(dir.path())
    };
    let (mut spool, _) = Spool::open(config.clone()).unwrap();
    for i in 0..100u8 {
        spool.append(&doc(i, 30)).unwrap();
    }
    spool.sync().unwrap();
    drop(spool);
    let seg = &segments(dir.path())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[49 * 46 + 16 + 10] ^= 0x08; // in record 50's payload
    std::fs::write(seg, bytes).unwrap();
    let (mut spool, rec) = Spool::open(config.clone()).unwrap();
    assert_eq!(
        (rec.corrupt, rec.bytes_cut, rec.lost, rec.records),
        (1, 46, 1, 99)
    );
    assert_eq!((rec.damage[0].start, rec.damage[0].end), (49 * 46, 50 * 46));
    assert_eq!(read_all(&mut spool), (vec![(1, 49), (51, 100)], 99));
    drop(spool);
    assert_eq!(std::fs::metadata(seg).unwrap().len(), 99 * 46);
    let (_, rec) = Spool::open(config).unwrap();
    assert_eq!((rec.corrupt, rec.lost, rec.records), (0, 0, 99));
}

#[test]
fn garbage_inserted_between_records_is_skipped_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(SpoolConfig {
        segment_bytes: 1 << 20,
        ..config(dir.path())
    })
    .unwrap();
    for i in 0..20u8 {
        spool.append(&doc(i, 30)).unwrap();
    }
    spool.sync().unwrap();
    drop(spool);
    let seg = &segments(dir.path())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    bytes.splice(5 * 46..5 * 46, [0xde, 0xad, 0xbe, 0xef, 7, 0, 0]);
    std::fs::write(seg, bytes).unwrap();
    let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((rec.corrupt, rec.bytes_cut, rec.lost), (1, 7, 0));
    assert_eq!(read_all(&mut spool), (vec![(1, 20)], 20));
}

#[test]
fn truncated_segment_is_cut_and_later_segments_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..100u32 {
        spool.append(&[i as u8; 50]).unwrap();
    }
    spool.sync().unwrap();
    drop(spool);
    let segs = segments(dir.path());
    assert!(segs.len() > 3);
    let len = std::fs::metadata(&segs[1]).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((rec.corrupt, rec.records, rec.lost), (1, 99, 1));
    // The cut record leaves a gap; batches stop at it and the next one resumes after it.
    let (batches, records) = read_all(&mut spool);
    assert_eq!(records, 99);
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(batches[1].1, 100);
}

#[test]
fn record_over_the_size_limit_is_refused_and_treated_as_damage_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(SpoolConfig {
        segment_bytes: 1 << 30,
        ..config(dir.path())
    })
    .unwrap();
    assert!(spool.append(&vec![0; MAX_RECORD + 1]).is_err());
    for i in 0..3u8 {
        spool.append(&[i; 50]).unwrap();
    }
    spool.sync().unwrap();
    drop(spool);
    let seg = segments(dir.path()).remove(0);
    // A header claiming a record over the limit, with that many bytes after it (sparse).
    let mut file = OpenOptions::new().append(true).open(&seg).unwrap();
    let mut header = Vec::new();
    header.extend_from_slice(&((MAX_RECORD + 1) as u32).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&4u64.to_le_bytes());
    file.write_all(&header).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len + MAX_RECORD as u64 + 2).unwrap();
    drop(file);
    let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((rec.corrupt, rec.records), (1, 3));
    let SpooledBatch { first, last, .. } = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last), (1, 3));
    assert!(std::fs::metadata(&seg).unwrap().len() < 1000, "damage cut");
}

#[test]
fn a_gap_in_seqs_ends_a_batch() {
    // Found by `cargo fuzz run spool`: a record cut out of the middle of a segment.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for seq in [1u64, 2, 4] {
        let payload = [seq as u8; 20];
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&checksum(seq, &payload).to_le_bytes());
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    std::fs::write(segment_path(dir.path(), 1), bytes).unwrap();
    let (mut spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(recovery.records, 3);
    let SpooledBatch {
        first,
        last,
        payload: bytes,
    } = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last, bytes.len()), (1, 2, 40));
    let SpooledBatch {
        first,
        last,
        payload: bytes,
    } = spool.read_batch(3, 100, 1 << 20).unwrap().unwrap();
    assert_eq!((first, last, bytes.len()), (4, 4, 20));
}

#[test]
fn full_spool_drops_oldest_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(SpoolConfig {
        max_bytes: 3000,
        ..config(dir.path())
    })
    .unwrap();
    for i in 0..200u32 {
        spool.append(&[i as u8; 50]).unwrap();
        if i % 10 == 9 {
            spool.sync().unwrap();
        }
    }
    assert!(spool.bytes() <= 3000 + 1100);
    assert!(spool.dropped > 100);
    assert_eq!(spool.depth() + spool.dropped, 200);
}

/// A spool with 10 events confirmed and 10 not, closed; returns its sender id.
fn ten_confirmed_ten_not(dir: &Path) -> String {
    let (mut spool, _) = Spool::open(config(dir)).unwrap();
    for i in 0..20u8 {
        spool.append(&[i; 30]).unwrap();
    }
    spool.sync().unwrap();
    spool.ack(10).unwrap();
    spool.sender_id().to_owned()
}

#[test]
fn a_lost_or_garbled_ledger_or_sender_id_starts_a_new_sender_id() {
    for (file, damage) in [
        ("ledger", None),
        ("ledger", Some(&b"ack\xff\x00 12"[..])),
        ("sender-id", None),
        ("sender-id", Some(&b"\n"[..])),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let old = ten_confirmed_ten_not(dir.path());
        let path = dir.path().join(file);
        match damage {
            None => std::fs::remove_file(&path).unwrap(),
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
        }
        let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
        let epoch = rec
            .epoch
            .unwrap_or_else(|| panic!("{file} {damage:?}: no epoch"));
        assert!(epoch.reason.contains(file), "{epoch:?}");
        assert_ne!(spool.sender_id(), old);
        assert_eq!(epoch.new_id, spool.sender_id());
        assert_eq!(
            epoch.old_id.as_deref(),
            (file == "ledger").then_some(&old[..])
        );
        // What the ledger held is kept; without it every record on disk goes again.
        let first = if file == "ledger" { 1 } else { 11 };
        assert_eq!(read_all(&mut spool).0[0].0, first, "{file} {damage:?}");
        assert_eq!(spool.wire_seq(first), 1, "the new id is numbered from 1");
        assert_eq!(spool.local_seq(1), Some(first));
        // The new identity is persisted: no further epoch.
        let id = spool.sender_id().to_owned();
        drop(spool);
        let (spool, rec) = Spool::open(config(dir.path())).unwrap();
        assert_eq!((rec.epoch, spool.sender_id()), (None, &id[..]));
        assert_eq!(spool.wire_seq(first), 1);
    }
}

#[test]
fn new_epoch_at_runtime_renumbers_the_unconfirmed_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = ten_confirmed_ten_not(dir.path());
    let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(spool.wire_seq(11), 11);
    let epoch = spool.new_epoch("seq_jump").unwrap();
    assert_eq!(
        (epoch.old_id.as_deref(), epoch.resent),
        (Some(&old[..]), 10)
    );
    assert_eq!((spool.wire_seq(11), spool.local_seq(10)), (1, Some(20)));
    assert_eq!(spool.local_seq(u64::MAX), None, "no wrap");
    spool.append(&[0; 30]).unwrap();
    spool.sync().unwrap();
    assert_eq!(spool.wire_seq(21), 11);
    drop(spool);
    let (spool, rec) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((rec.epoch, spool.sender_id()), (None, &epoch.new_id[..]));
    assert_eq!(spool.wire_seq(11), 1);
}

#[test]
fn a_second_open_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let e = Spool::open(config(dir.path())).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(
        e.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    drop(spool);
    Spool::open(config(dir.path())).unwrap();
}

#[test]
fn a_spool_dir_others_can_write_is_refused_and_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/spool");
    let (mut spool, _) = Spool::open(config(&dir)).unwrap();
    spool.append(&[0; 30]).unwrap();
    spool.append(&[0; 30]).unwrap();
    spool.sync().unwrap();
    spool.ack(1).unwrap();
    for d in [root.path().join("a"), dir.clone()] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", d.display());
    }
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(names.len(), 4, "{names:?}"); // ledger, sender-id, lock, one segment
    for entry in names {
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:?}", entry.path());
    }
    drop(spool);
    // A file an older version left readable by others is made private at the next start.
    let ledger = dir.join("ledger");
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Spool::open(config(&dir)).unwrap());
    let mode = std::fs::metadata(&ledger).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let e = Spool::open(config(&dir)).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("chmod 700"), "{e}");
}

#[test]
fn a_fully_confirmed_newest_segment_is_deleted_so_a_small_disk_never_wedges() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(SpoolConfig {
        segment_bytes: 1 << 30,
        ..config(dir.path())
    })
    .unwrap();
    for round in 0..3u64 {
        for i in 0..10u8 {
            spool.append(&doc(i, 30)).unwrap();
        }
        let synced = spool.sync().unwrap();
        assert_eq!(synced, (round + 1) * 10);
        spool.ack(synced).unwrap();
        assert!(segments(dir.path()).is_empty(), "round {round}");
        assert_eq!(spool.bytes(), 0);
    }
    // And the numbering goes on across the deleted segments, after a restart too.
    spool.append(&doc(1, 30)).unwrap();
    assert_eq!(spool.sync().unwrap(), 31);
    drop(spool);
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(spool.synced_seq(), 31);
}

#[test]
fn a_symlink_cannot_hide_a_parent_another_user_could_swap() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to give a directory to another user");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
    let real = other.join("spool");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&real)
        .unwrap();
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = Spool::open(config(&link))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("parent") && err.contains("65534"), "{err}");
}

/// Records synced by this process are read from memory: the batches are the ones the segments
/// give a fresh process (same records, same bounds), through new segments, acks, a trimmed
/// memory, and a read that starts before what memory holds.
#[test]
fn recent_records_read_from_memory_equal_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let read_batches = |spool: &mut Spool, from: u64, max_events: usize, max_bytes: usize| {
        let mut from = from;
        let mut out = Vec::new();
        while let Some(b) = spool.read_batch(from, max_events, max_bytes).unwrap() {
            from = b.last + 1;
            out.push((b.first, b.last, b.payload));
        }
        out
    };
    let mut written = 0u8;
    {
        let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
        for round in 0..12u8 {
            for _ in 0..(3 + round % 4) {
                spool
                    .append(&doc(written, 40 + written as usize % 90))
                    .unwrap();
                written = written.wrapping_add(1);
            }
            spool.sync().unwrap();
        }
        assert!(segments(dir.path()).len() > 3, "several segments");
        let from_memory = read_batches(&mut spool, 1, 7, 300);
        assert!(spool.recent.read(1, 7, 300).is_some(), "served from memory");
        // Confirmed records are skipped the same way on both paths.
        spool.ack(5).unwrap();
        // Batches bounded by bytes, and by count.
        let after_ack = read_batches(&mut spool, 1, 7, 300);
        let by_count = read_batches(&mut spool, 1, 5, 1 << 20);
        assert_eq!(after_ack.first().map(|b| b.0), Some(6));
        assert!(by_count.iter().all(|(f, l, _)| l - f < 5));
        drop(spool);
        let (mut fresh, _) = Spool::open(config(dir.path())).unwrap();
        assert!(
            fresh.recent.read(6, 7, 300).is_none(),
            "a fresh process has none"
        );
        assert_eq!(read_batches(&mut fresh, 1, 7, 300), after_ack);
        assert_eq!(read_batches(&mut fresh, 1, 5, 1 << 20), by_count);
        let total: u64 = from_memory.iter().map(|(f, l, _)| l - f + 1).sum();
        assert_eq!(total, u64::from(written));
    }
    // Memory bounded to what it can hold: a read from before it falls back to the segments.
    let mut recent = recent::Recent::default();
    let record = |seq: u64, len: usize| {
        let mut r = (len as u32).to_le_bytes().to_vec();
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(&seq.to_le_bytes());
        r.extend(std::iter::repeat_n(seq as u8, len));
        r
    };
    let big = 1 << 20;
    for seq in 1..=40u64 {
        recent.push(record(seq, big), seq, seq);
        assert!(recent.held() <= 16 << 20, "{}", recent.held());
    }
    assert!(
        recent.read(1, 10, usize::MAX).is_none(),
        "the oldest were let go"
    );
    let kept = recent
        .read(39, 10, usize::MAX)
        .expect("the newest are kept");
    assert_eq!((kept.first, kept.last), (39, 40));
    assert_eq!(kept.payload[..big], vec![39u8; big][..]);
    assert_eq!(kept.payload[big..], vec![40u8; big][..]);
    // A batch bounded by count stops inside a chunk, and the next read resumes there.
    let mut chunk = Vec::new();
    for seq in 41..=50u64 {
        chunk.extend_from_slice(&record(seq, 3));
    }
    recent.push(chunk, 41, 50);
    let a = recent.read(41, 4, usize::MAX).unwrap();
    let b = recent.read(45, 100, usize::MAX).unwrap();
    assert_eq!((a.first, a.last, b.first, b.last), (41, 44, 45, 50));
    assert_eq!(
        b.payload,
        (45..=50u8).flat_map(|s| [s; 3]).collect::<Vec<_>>()
    );
    // A record that does not follow on (a gap) replaces what was kept.
    recent.push(record(60, 3), 60, 60);
    assert!(recent.read(50, 10, usize::MAX).is_none());
    assert_eq!(
        recent.read(60, 10, usize::MAX).unwrap().payload,
        vec![60u8; 3]
    );
    // A sync carrying more than memory holds (a whole segment after an outage) is left to the
    // segments; the syncs after it are kept again.
    let mut huge = Vec::new();
    for seq in 61..=20_060u64 {
        huge.extend_from_slice(&record(seq, 1000));
    }
    recent.push(huge, 61, 20_060);
    assert!(recent.read(20_060, 10, usize::MAX).is_none());
    assert_eq!(recent.held(), 0);
    recent.push(record(20_061, 5), 20_061, 20_061);
    assert!(recent.read(20_061, 10, usize::MAX).is_some());
}
