//! Runs the viewer on the same bytes read two ways, for the proptest suite and the `viewer` fuzz
//! target (`fuzz/fuzz_targets/viewer.rs` includes this file by path).

use ziggyview::{ChannelPattern, ViewOptions, Viewer};

/// A stream handing out a few bytes per read, as a pipe may: events straddle reads.
struct Trickle<'a> {
    bytes: &'a [u8],
    reads: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const SIZES: [usize; 5] = [1, 3, 7, 64, 2];
        let n = SIZES[self.reads % SIZES.len()]
            .min(buf.len())
            .min(self.bytes.len());
        self.reads += 1;
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// What the viewer prints for `bytes` with the filter `request*`, read in one piece
/// (`whole_file`) or a few bytes at a time; its error message if it stopped on one, and how many
/// events it skipped.
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
            viewer.read_file(Trickle { bytes, reads: 0 }, "input")
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
