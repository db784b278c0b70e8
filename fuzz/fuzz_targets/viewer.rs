//! ziggyview's two readers (whole file, streaming stdin) on arbitrary bytes: never a panic, the
//! same output, and the same byte offset where the input broke.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ziggyview::source::ChannelPattern;
use ziggyview::view::{ViewOptions, Viewer};

fn run(bytes: &[u8], whole_file: bool, json: bool) -> (Vec<u8>, Option<String>) {
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
    let result = {
        let mut viewer = Viewer::new(&mut out, options);
        let r = if whole_file {
            viewer.read_file(bytes, "input")
        } else {
            viewer.read_input(bytes, "input")
        };
        let _ = viewer.finish();
        r
    };
    let offset = result.err().and_then(|e| {
        let text = e.to_string();
        text.split("byte ")
            .nth(1)
            .map(|s| s.split(':').next().unwrap_or_default().to_owned())
    });
    (out, offset)
}

fuzz_target!(|input: (bool, &[u8])| {
    let (json, bytes) = input;
    let (out_a, at_a) = run(bytes, true, json);
    let (out_b, at_b) = run(bytes, false, json);
    assert_eq!(out_a, out_b);
    assert_eq!(at_a, at_b);
});
