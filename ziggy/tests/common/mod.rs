//! Helpers shared by the runtime's integration tests.

use bson::Document;

/// Splits a frame of concatenated BSON events (docs/PROTOCOL.md §3) into documents; panics on bad BSON.
pub fn split_frame(frame: &[u8]) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut rest = frame;
    while !rest.is_empty() {
        let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        docs.push(Document::from_reader(&rest[..len]).expect("valid BSON"));
        rest = &rest[len..];
    }
    docs
}
