//! Property-based fuzzing of what ziggyd reads from outside: frames and spool segments. (`cargo
//! fuzz` needs a nightly toolchain, which this project's machines cannot fetch; proptest runs on
//! stable, seeded from real events, inside `cargo test`.)

use bson::doc;
use proptest::prelude::*;
use ziggyd::spool::{Spool, SpoolConfig, SpooledBatch};
use ziggyd::validate::{Limits, split_frame, validate_event};

fn real_event(channel: &str, n: i32) -> Vec<u8> {
    doc! { "id": "0123456789abcdef0123456789abcdef", "type": channel, "host": "web1", "pid": 42,
    "start": 1.7e9, "end": 1.7e9 + 0.5, "sample_rate": 0.25,
    "body": { "n": n, "path": "/x", "nested": { "list": [1, "two", 3.0] } } }
    .to_vec()
    .unwrap()
}

/// A mutation of a real frame: flipped bytes, cut, inserted garbage.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(real_event("request", 1)),
        Just([real_event("request.sql", 2), real_event("job", 3)].concat())
    ];
    (
        base,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        any::<usize>(),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(mut frame, flips, cut, garbage)| {
            for (at, byte) in flips {
                let i = at % frame.len();
                frame[i] ^= byte;
            }
            let at = cut % (frame.len() + 1);
            frame.splice(at..at, garbage);
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn frames_never_panic_and_accepted_events_are_valid_bson(frame in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        mutated_frame(),
    ]) {
        for meta in split_frame(&frame, Limits::default()).into_iter().flatten() {
            // What the daemon accepts, any BSON reader accepts too, and the channel is safe.
            prop_assert!(bson::Document::from_reader(meta.bytes).is_ok());
            prop_assert!(ziggy::channel::validate_channel_name(meta.channel).is_ok());
            prop_assert!(!meta.channel.contains('/') && !meta.channel.contains(".."));
            prop_assert_eq!(validate_event(meta.bytes).map(|m| m.channel.to_owned()), Ok(meta.channel.to_owned()));
        }
    }

    #[test]
    fn structural_walk_accepts_only_what_bson_decodes(frame in mutated_frame()) {
        let len = frame.len().min(frame.get(..4).map_or(0, |b| i32::from_le_bytes(b.try_into().unwrap()).max(0) as usize));
        let doc = &frame[..len];
        if ziggyd::bson_walk::is_well_formed(doc) {
            prop_assert!(bson::Document::from_reader(doc).is_ok());
        }
    }

    #[test]
    fn channel_rule_matches_its_definition(name in "[a-zA-Z0-9_./\\x00-]{0,12}") {
        let expected = !name.is_empty()
            && name.len() <= 128
            && name.split('.').all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        prop_assert_eq!(ziggy::channel::validate_channel_name(&name).is_ok(), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn damaged_spools_open_and_read_without_panicking(
        flips in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of((any::<usize>(), any::<usize>())),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig { dir: dir.path().to_owned(), segment_bytes: 2_000, max_bytes: 1 << 30 };
        let (mut spool, _) = Spool::open(config.clone()).unwrap();
        for n in 0..60 {
            spool.append(&real_event("request", n)).unwrap();
        }
        spool.sync().unwrap();
        drop(spool);
        let mut segments: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "zsp")).collect();
        segments.sort();
        for (seg, at, byte) in flips {
            let path = &segments[seg % segments.len()];
            let mut bytes = std::fs::read(path).unwrap();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= byte;
                std::fs::write(path, bytes).unwrap();
            }
        }
        if let Some((seg, at)) = cut {
            let path = &segments[seg % segments.len()];
            let len = std::fs::metadata(path).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(at as u64 % (len + 1)).unwrap();
        }
        let (mut spool, recovery) = Spool::open(config).unwrap();
        let mut from = 1;
        let mut read = 0;
        while let Some(SpooledBatch { last, payload: bytes, .. }) = spool.read_batch(from, 7, 1 << 20).unwrap() {
            // Every record that survives the checksum is an intact event.
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                prop_assert!(validate_event(&rest[..len]).is_ok());
                rest = &rest[len..];
                read += 1;
            }
            from = last + 1;
        }
        prop_assert_eq!(read as u64, recovery.records);
    }
}
