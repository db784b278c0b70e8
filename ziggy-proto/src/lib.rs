//! # ziggy-proto: Ziggy's formats, in one place
//!
//! Everything the runtime, the macros, `ziggyd` and `ziggyview` must agree on lives here once
//! (the contract is `docs/PROTOCOL.md`):
//! - [`channel`]: the channel-name rule;
//! - [`fields`]: the field names of an event;
//! - [`day`]: UTC days and the log file layout;
//! - [`framing`]: concatenated BSON documents, from a slice or a stream;
//! - [`walk`]: the structural BSON check and element walk (no decoding);
//! - [`validate`]: what makes an event valid, on its raw bytes;
//! - [`forward`]: the forward protocol's messages;
//! - [`jetstream`]: the messages on a NATS JetStream stream between publishers and writers;
//! - [`endpoint`]: addresses as operators type them, resolved for ZeroMQ;
//! - `status` (feature `status`): the control protocol's STATUS reply as a type;
//! - `client` (feature `client`): the control protocol's client.
//!
//! Without the `client` feature the crate has no dependency but `thiserror`, so the proc-macro
//! crate can use the channel rule.

#![warn(missing_docs)]

pub mod channel;
#[cfg(feature = "client")]
pub mod client;
pub mod day;
pub mod endpoint;
pub mod fields;
pub mod forward;
pub mod framing;
pub mod jetstream;
#[cfg(feature = "status")]
pub mod status;
pub mod validate;
pub mod walk;

/// Longest user-given event id, in bytes (docs/PROTOCOL.md §1).
pub const MAX_ID_LEN: usize = 256;
