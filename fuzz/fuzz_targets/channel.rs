//! The channel-name rule (shared by the macros, the runtime and ziggyd) against its definition,
//! and ziggyview's channel patterns: never a panic, and matching text and bytes agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ziggyview::ChannelPattern;

fuzz_target!(|input: (&str, &str)| {
    let (name, pattern) = input;
    let expected = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    assert_eq!(
        ziggy::channel::validate_channel_name(name).is_ok(),
        expected,
        "{name:?}"
    );
    if let Ok(pattern) = ChannelPattern::parse(pattern) {
        assert_eq!(pattern.matches(name), pattern.matches_bytes(name.as_bytes()));
    }
});
