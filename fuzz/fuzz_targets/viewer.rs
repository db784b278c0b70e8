//! ziggyview on arbitrary bytes, read in one piece and a few bytes at a time (as from a pipe):
//! never a panic, the same output, the same byte offset where the input broke, and the same events
//! skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../ziggyview/tests/common/readers.rs"]
mod readers;
use readers::{error_offset, run};

fuzz_target!(|input: (bool, &[u8])| {
    let (json, bytes) = input;
    let (out_a, err_a, skipped_a) = run(bytes, true, json);
    let (out_b, err_b, skipped_b) = run(bytes, false, json);
    assert_eq!(out_a, out_b);
    assert_eq!(error_offset(&err_a), error_offset(&err_b));
    assert_eq!(skipped_a, skipped_b);
});
