//! Channel names: the rule of docs/PROTOCOL.md §1, shared with the macros, `ziggyd` and
//! `ziggyview` through `ziggy-proto`.

pub use ziggy_proto::channel::{
    ChannelNameError, MAX_CHANNEL_LEN, is_self_or_ancestor, validate_channel_name,
};
