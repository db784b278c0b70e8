//! The spool's recovery and record reader on an arbitrary segment file: opening never fails or
//! panics on damage, and every record read back is one recovery counted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ziggyd::spool::{Spool, SpoolConfig, SpooledBatch};

fuzz_target!(|segment: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seg-00000000000000000001.zsp"), segment).unwrap();
    let config = SpoolConfig {
        dir: dir.path().to_owned(),
        segment_bytes: 1 << 20,
        max_bytes: 1 << 30,
    };
    let (mut spool, recovery) = Spool::open(config).expect("damage is cut, never an error");
    let (mut from, mut read) = (1, 0u64);
    while let Some(SpooledBatch { first, last, payload: bytes }) = spool.read_batch(from, 7, 1 << 20).unwrap() {
        assert!(first >= from && last >= first && !bytes.is_empty());
        read += last - first + 1;
        from = last + 1;
    }
    assert_eq!(read, recovery.records);
});
