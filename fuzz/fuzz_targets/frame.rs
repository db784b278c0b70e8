//! The collect socket's frame validator: never panics; what it accepts is BSON any reader takes,
//! with a channel that is safe as a file name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ziggyd::validate::{Limits, split_frame, validate_event};

fuzz_target!(|frame: &[u8]| {
    for meta in split_frame(frame, Limits::default()).into_iter().flatten() {
        assert!(bson::Document::from_reader(meta.bytes).is_ok());
        assert!(ziggy::channel::validate_channel_name(meta.channel).is_ok());
        assert!(!meta.channel.contains('/') && !meta.channel.contains(".."));
        assert_eq!(
            validate_event(meta.bytes).map(|m| m.channel.to_owned()),
            Ok(meta.channel.to_owned())
        );
    }
});
