//! Runs the viewer's two readers on the same bytes, for the proptest suite and the `viewer` fuzz
//! target (`fuzz/fuzz_targets/viewer.rs` includes this file by path).

use ziggyview::source::ChannelPattern;
use ziggyview::view::{ViewOptions, Viewer};

/// What the whole-file reader (`whole_file`) or the streaming reader prints for `bytes` with the
/// filter `request*`, its error message if it stopped on one, and how many events it skipped.
pub fn run(bytes: &[u8], whole_file: bool, json: bool) -> (Vec<u8>, Option<String>, u64) {
    let options = ViewOptions {
        pattern: ChannelPattern::parse("request*").unwrap(),
        json,
        color: false,
        fields: None,
        group_window: None,
        stats_key: None,
        count: None,
    };
    let mut out = Vec::new();
    let (result, skipped) = {
        let mut viewer = Viewer::new(&mut out, options);
        let r = if whole_file {
            viewer.read_file(bytes, "input")
        } else {
            viewer.read_input(bytes, "input")
        };
        let _ = viewer.finish();
        (r, viewer.problems())
    };
    (out, result.err().map(|e| e.to_string()), skipped)
}

/// The byte offset an error message names (`... at byte N: ...`).
pub fn error_offset(error: &Option<String>) -> Option<String> {
    error.as_ref().and_then(|e| {
        e.split("byte ")
            .nth(1)
            .map(|s| s.split(':').next().unwrap_or_default().to_owned())
    })
}
