//! The channel-name rule of docs/PROTOCOL.md §1, in one place: the runtime, the macros (at compile
//! time), `ziggyd` and `ziggyview` all use this module.

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 128;

/// Why a string is not a valid channel name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelNameError {
    /// The name is the empty string.
    Empty,
    /// The name is longer than [`MAX_CHANNEL_LEN`] bytes.
    TooLong(usize),
    /// Two dots in a row, or a leading or trailing dot.
    EmptySegment {
        /// Byte offset of the empty segment.
        offset: usize,
    },
    /// A byte outside `[a-z0-9_.]`.
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        offset: usize,
    },
}

impl std::fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelNameError::Empty => write!(f, "channel name is empty"),
            ChannelNameError::TooLong(n) => {
                write!(
                    f,
                    "channel name is {n} bytes long; at most {MAX_CHANNEL_LEN} are allowed"
                )
            }
            ChannelNameError::EmptySegment { offset } => write!(
                f,
                "channel name has an empty segment at byte {offset}: segments are joined by single dots, \
                 with no leading or trailing dot"
            ),
            ChannelNameError::InvalidChar { ch, offset } => write!(
                f,
                "channel name has {ch:?} at byte {offset}: only lowercase letters, digits and `_`, \
                 in segments joined by `.`, are allowed"
            ),
        }
    }
}

impl std::error::Error for ChannelNameError {}

/// Checks `name` against the channel rule: one or more segments of `[a-z0-9_]+` joined by `.`,
/// at most [`MAX_CHANNEL_LEN`] bytes.
pub fn validate_channel_name(name: &str) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelNameError::TooLong(name.len()));
    }
    let mut segment_start = 0;
    for (offset, ch) in name.char_indices() {
        match ch {
            'a'..='z' | '0'..='9' | '_' => {}
            '.' => {
                if offset == segment_start {
                    return Err(ChannelNameError::EmptySegment { offset });
                }
                segment_start = offset + 1;
            }
            _ => return Err(ChannelNameError::InvalidChar { ch, offset }),
        }
    }
    if segment_start == name.len() {
        return Err(ChannelNameError::EmptySegment {
            offset: segment_start,
        });
    }
    Ok(())
}

/// True when `ancestor` is `channel` itself or one of its ancestors (`request` for `request.sql`).
pub fn is_self_or_ancestor(ancestor: &str, channel: &str) -> bool {
    channel == ancestor
        || (channel.len() > ancestor.len()
            && channel.starts_with(ancestor)
            && channel.as_bytes()[ancestor.len()] == b'.')
}
