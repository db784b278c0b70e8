//! Property-based fuzzing of the viewer's reading and the header-only channel scan, seeded with
//! real events: never a panic, and reading an input in one piece or a few bytes at a time agree
//! on output and on where the input broke.

use bson::doc;
use proptest::prelude::*;

#[path = "common/readers.rs"]
mod readers;
use readers::{error_offset, run};

fn event(channel: &str, n: i32) -> Vec<u8> {
    doc! { "id": "abc", "type": channel, "host": "h", "pid": 1, "start": 1.7e9, "end": 1.7e9,
    "body": { "n": n, "s": "x".repeat(n as usize % 50), "a": [1, { "b": null }] } }
    .to_vec()
    .unwrap()
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    let real = (0..6i32).prop_map(|k| {
        (0..k)
            .flat_map(|n| event(if n % 2 == 0 { "request" } else { "job" }, n))
            .collect::<Vec<u8>>()
    });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        (
            real,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            any::<usize>()
        )
            .prop_map(|(mut b, flips, cut)| {
                if !b.is_empty() {
                    for (at, x) in flips {
                        let i = at % b.len();
                        b[i] ^= x;
                    }
                    b.truncate(cut % (b.len() + 1));
                }
                b
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_and_agree(bytes in input(), json in any::<bool>()) {
        let (out_a, err_a, skipped_a) = run(&bytes, true, json);
        let (out_b, err_b, skipped_b) = run(&bytes, false, json);
        prop_assert_eq!(String::from_utf8_lossy(&out_a), String::from_utf8_lossy(&out_b));
        // Both name the same byte offset.
        prop_assert_eq!(error_offset(&err_a), error_offset(&err_b));
        prop_assert_eq!(skipped_a, skipped_b);
    }

    #[test]
    fn fast_channel_scan_agrees_with_the_bson_crate(bytes in input()) {
        if bytes.len() >= 5 {
            let len = (i32::from_le_bytes(bytes[..4].try_into().unwrap()).max(0) as usize).min(bytes.len());
            let doc = &bytes[..len];
            let fast = ziggyview::__fuzz::raw_channel(doc);
            let checked = ziggyview::__fuzz::raw_channel_checked(doc);
            // On well-formed documents they must agree; on malformed ones the fast path may
            // still find `type` before the damage, but never a different value.
            if bson::Document::from_reader(doc).is_ok() {
                prop_assert_eq!(fast, checked);
            } else if let (Some(f), Some(c)) = (fast, checked) {
                prop_assert_eq!(f, c);
            }
        }
    }
}
