//! The field names of an event document (docs/PROTOCOL.md §1): every program writes and reads
//! them from here.

/// `id`: 32 hex chars, shared by a context and its sub-contexts.
pub const ID: &str = "id";
/// `type`: the channel.
pub const TYPE: &str = "type";
/// `host`: host name of the emitting process.
pub const HOST: &str = "host";
/// `pid`: process id (int32).
pub const PID: &str = "pid";
/// `start`: Unix seconds (double) when the context opened.
pub const START: &str = "start";
/// `end`: Unix seconds (double) when it closed.
pub const END: &str = "end";
/// `sample_rate`: the rate that kept a sampled event (double, optional).
pub const SAMPLE_RATE: &str = "sample_rate";
/// `body`: everything set inside the context.
pub const BODY: &str = "body";

/// The header fields, in the order an event carries them (`body` follows them).
pub const HEADER: [&str; 7] = [ID, TYPE, HOST, PID, START, END, SAMPLE_RATE];

/// The rule for a key written into `body`: not empty and no NUL byte (BSON keys are C strings).
/// Dotted keys nest, every segment a plain map key. The runtime refuses (and counts) a key that
/// breaks it; `#[ziggy::context(fields(..))]` rejects one at compile time.
pub fn is_valid_body_key(key: &str) -> bool {
    !key.is_empty() && !key.as_bytes().contains(&0)
}
