//! Validation of incoming frames and events, on the raw bytes (no decoding into a `Document`).
//!
//! A frame holds one BSON event or several concatenated. Each event must be well-formed BSON all
//! the way down (so no file ever holds bytes a BSON reader rejects), within the size limit, and
//! carry the docs/PROTOCOL.md §1 fields with their types. Strings may also be BSON binary (subtype 0) holding
//! UTF-8: the 2012 Python clients wrote them that way.

use crate::fields;
use crate::walk::Element;

use crate::channel::validate_channel_name;

/// Why an event (or the rest of a frame) was rejected. The names are STATUS's `invalid` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    /// The frame is larger than the frame limit.
    FrameTooLarge,
    /// An event's length prefix is below 5, past the frame's end, or the bytes are not BSON.
    MalformedBson,
    /// An event is larger than the event limit.
    EventTooLarge,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong BSON type (or is an empty id, or a time outside 1970..2106).
    WrongType,
    /// The channel (`type`) breaks the naming rule.
    BadChannel,
    /// A header field (`id`, `type`, `host`, `pid`, `start`, `end`, `sample_rate`, `body`)
    /// appears twice: readers would disagree on which one counts.
    DuplicateField,
    /// `host` is longer than [`MAX_HOST_BYTES`].
    HostTooLong,
    /// A frame of zero bytes (no event at all).
    EmptyFrame,
    /// `start` or `end` is not a time from 1970 to 2106 (or is not a number: NaN).
    TimeOutOfRange,
    /// `id` is longer than [`crate::MAX_ID_LEN`] (docs/PROTOCOL.md §1: at most 256 bytes).
    IdTooLong,
}

/// Longest `host` accepted, in bytes: a DNS name's limit. Each distinct host is a key kept in
/// memory and shown by STATUS, so an unbounded one lets a single event cost megabytes there.
pub const MAX_HOST_BYTES: usize = 255;

impl InvalidReason {
    /// Every reason, in STATUS order.
    pub const ALL: [InvalidReason; 11] = [
        InvalidReason::FrameTooLarge,
        InvalidReason::MalformedBson,
        InvalidReason::EventTooLarge,
        InvalidReason::MissingField,
        InvalidReason::WrongType,
        InvalidReason::BadChannel,
        InvalidReason::DuplicateField,
        InvalidReason::HostTooLong,
        InvalidReason::IdTooLong,
        InvalidReason::EmptyFrame,
        InvalidReason::TimeOutOfRange,
    ];

    /// The key used in STATUS and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::FrameTooLarge => "frame_too_large",
            InvalidReason::MalformedBson => "malformed_bson",
            InvalidReason::EventTooLarge => "event_too_large",
            InvalidReason::MissingField => "missing_field",
            InvalidReason::WrongType => "wrong_type",
            InvalidReason::BadChannel => "bad_channel",
            InvalidReason::DuplicateField => "duplicate_field",
            InvalidReason::HostTooLong => "host_too_long",
            InvalidReason::EmptyFrame => "empty_frame",
            InvalidReason::TimeOutOfRange => "time_out_of_range",
            InvalidReason::IdTooLong => "id_too_long",
        }
    }
}

/// Size limits enforced on input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
    /// Largest accepted event, in bytes.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 16 MiB is BSON's own document limit.
        Limits {
            max_frame_bytes: 64 << 20,
            max_event_bytes: 16 << 20,
        }
    }
}

/// What the daemon needs of a valid event, borrowed from its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta<'a> {
    /// The event's bytes, exactly as received.
    pub bytes: &'a [u8],
    /// The channel.
    pub channel: &'a str,
    /// The emitting host.
    pub host: &'a str,
    /// Unix seconds when the context opened.
    pub start: f64,
    /// Unix seconds when it closed.
    pub end: f64,
}

/// One item of a split frame: a valid event, or a rejection.
pub type Item<'a> = Result<EventMeta<'a>, InvalidReason>;

/// Splits and validates a frame. A bad length prefix ends the frame (what follows cannot be
/// delimited), so it yields at most one `MalformedBson` for the rest.
pub fn split_frame(frame: &[u8], limits: Limits) -> Vec<Item<'_>> {
    if frame.len() > limits.max_frame_bytes {
        return vec![Err(InvalidReason::FrameTooLarge)];
    }
    if frame.is_empty() {
        return vec![Err(InvalidReason::EmptyFrame)];
    }
    let mut items = Vec::new();
    for document in crate::framing::documents(frame) {
        match document {
            Ok((_, event)) if event.len() > limits.max_event_bytes => {
                items.push(Err(InvalidReason::EventTooLarge))
            }
            Ok((_, event)) => items.push(validate_event(event)),
            // Framing ends at its first error: what follows cannot be delimited.
            Err(_) => items.push(Err(InvalidReason::MalformedBson)),
        }
    }
    items
}

/// The docs/PROTOCOL.md §1 fields of an event, as its top-level elements go by.
#[derive(Default)]
struct Header<'a> {
    id: Option<&'a str>,
    channel: Option<&'a str>,
    host: Option<&'a str>,
    pid: bool,
    start: Option<f64>,
    end: Option<f64>,
    body: bool,
    /// The header fields seen, one bit each (each may appear once).
    seen: u8,
    /// The first field that broke a rule, in the event's order.
    error: Option<InvalidReason>,
}

impl<'a> Header<'a> {
    fn take(&mut self, element: Element<'a>) {
        if self.error.is_none() {
            self.error = self.read(element).err();
        }
    }

    fn read(&mut self, element: Element<'a>) -> Result<(), InvalidReason> {
        const ID: &[u8] = fields::ID.as_bytes();
        const TYPE: &[u8] = fields::TYPE.as_bytes();
        const HOST: &[u8] = fields::HOST.as_bytes();
        const PID: &[u8] = fields::PID.as_bytes();
        const START: &[u8] = fields::START.as_bytes();
        const END: &[u8] = fields::END.as_bytes();
        const SAMPLE_RATE: &[u8] = fields::SAMPLE_RATE.as_bytes();
        const BODY: &[u8] = fields::BODY.as_bytes();
        let bit = match element.key {
            ID => 0,
            TYPE => 1,
            HOST => 2,
            PID => 3,
            START => 4,
            END => 5,
            SAMPLE_RATE => 6,
            BODY => 7,
            _ => return Ok(()),
        };
        if self.seen & (1 << bit) != 0 {
            return Err(InvalidReason::DuplicateField);
        }
        self.seen |= 1 << bit;
        let text = || text(element).ok_or(InvalidReason::WrongType);
        let number = || number(element).ok_or(InvalidReason::WrongType);
        match bit {
            0 => self.id = Some(text()?),
            1 => self.channel = Some(text()?),
            2 => self.host = Some(text()?),
            3 => {
                self.pid = matches!(element.kind, 0x10 | 0x12);
                if !self.pid {
                    return Err(InvalidReason::WrongType);
                }
            }
            4 => self.start = Some(number()?),
            5 => self.end = Some(number()?),
            6 => {
                number()?;
            }
            _ => {
                self.body = element.kind == 0x03;
                if !self.body {
                    return Err(InvalidReason::WrongType);
                }
            }
        }
        Ok(())
    }
}

/// Validates one event's bytes.
pub fn validate_event(bytes: &[u8]) -> Item<'_> {
    // Every nested element, so malformed bytes are caught here and not by a reader months later;
    // the header fields are read in the same pass.
    let mut header = Header::default();
    if !crate::walk::check_elements(bytes, |element| header.take(element)) {
        return Err(InvalidReason::MalformedBson);
    }
    if let Some(reason) = header.error {
        return Err(reason);
    }
    let Header {
        id,
        channel,
        host,
        pid,
        start,
        end,
        body,
        ..
    } = header;
    let (Some(id), Some(channel), Some(host), Some(start), Some(end)) =
        (id, channel, host, start, end)
    else {
        return Err(InvalidReason::MissingField);
    };
    if !pid || !body {
        return Err(InvalidReason::MissingField);
    }
    // Times must be within 1970..2106 (what the 4-byte seconds of an id can hold): a wild `start`
    // would otherwise name a day folder no reader looks for.
    let sane = |t: f64| (0.0..4_294_967_296.0).contains(&t);
    if !sane(start) || !sane(end) {
        return Err(InvalidReason::TimeOutOfRange);
    }
    if id.is_empty() {
        return Err(InvalidReason::WrongType);
    }
    if id.len() > crate::MAX_ID_LEN {
        return Err(InvalidReason::IdTooLong);
    }
    if host.len() > MAX_HOST_BYTES {
        return Err(InvalidReason::HostTooLong);
    }
    validate_channel_name(channel).map_err(|_| InvalidReason::BadChannel)?;
    Ok(EventMeta {
        bytes,
        channel,
        host,
        start,
        end,
    })
}

/// A string, or a binary subtype 0 holding UTF-8 (2012 Python clients).
fn text(element: Element<'_>) -> Option<&str> {
    let v = element.value;
    match element.kind {
        0x02 => std::str::from_utf8(v.get(4..v.len().checked_sub(1)?)?).ok(),
        0x05 if v.get(4) == Some(&0) => std::str::from_utf8(v.get(5..)?).ok(),
        _ => None,
    }
}

fn number(element: Element<'_>) -> Option<f64> {
    let v = element.value;
    match element.kind {
        0x01 => Some(f64::from_le_bytes(v.get(..8)?.try_into().ok()?)),
        0x10 => Some(i32::from_le_bytes(v.get(..4)?.try_into().ok()?) as f64),
        0x12 => Some(i64::from_le_bytes(v.get(..8)?.try_into().ok()?) as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc, spec::BinarySubtype};

    fn event(channel: &str) -> Vec<u8> {
        doc! { "id": "0123456789abcdef0123456789abcdef", "type": channel, "host": "h", "pid": 1,
        "start": 1.0, "end": 2.0, "body": { "a": 1 } }
        .to_vec()
        .unwrap()
    }

    #[test]
    fn accepts_single_and_concatenated() {
        let one = event("request");
        assert_eq!(split_frame(&one, Limits::default()).len(), 1);
        let mut many = one.clone();
        many.extend(event("request.sql"));
        let items = split_frame(&many, Limits::default());
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().unwrap().channel, "request.sql");
    }

    #[test]
    fn rejects_bad_channels_fields_and_bytes() {
        assert_eq!(
            validate_event(&event("../x")),
            Err(InvalidReason::BadChannel)
        );
        assert_eq!(
            validate_event(&event("a/b")),
            Err(InvalidReason::BadChannel)
        );
        let missing = doc! { "type": "a" }.to_vec().unwrap();
        assert_eq!(validate_event(&missing), Err(InvalidReason::MissingField));
        let wrong = doc! { "id": 5, "type": "a", "host": "h", "pid": 1, "start": 1.0, "end": 1.0, "body": {} }
            .to_vec()
            .unwrap();
        assert_eq!(validate_event(&wrong), Err(InvalidReason::WrongType));
        let mut truncated = event("request");
        truncated.truncate(20);
        assert_eq!(
            split_frame(&truncated, Limits::default()),
            vec![Err(InvalidReason::MalformedBson)]
        );
        // Found by `cargo fuzz run viewer`: a second `type` (the file would be named after one,
        // the viewer's filter would read the other).
        let twice = doc! { "id": "0123456789abcdef0123456789abcdef", "type": "request", "host": "h",
        "pid": 1, "start": 1.7e9, "end": 1.7e9, "body": {} };
        let mut bytes = twice.to_vec().unwrap();
        let host = bytes.windows(5).position(|w| w == b"host\0").unwrap();
        bytes[host..host + 4].copy_from_slice(b"type");
        assert_eq!(validate_event(&bytes), Err(InvalidReason::DuplicateField));
        let mut corrupt = event("request");
        let n = corrupt.len();
        corrupt[n - 1] = 7; // no trailing NUL
        assert_eq!(validate_event(&corrupt), Err(InvalidReason::MalformedBson));
        let limits = Limits {
            max_frame_bytes: 10,
            max_event_bytes: 10,
        };
        assert_eq!(
            split_frame(&event("a"), limits),
            vec![Err(InvalidReason::FrameTooLarge)]
        );
    }

    fn event_with(id: &str, host: &str) -> Vec<u8> {
        doc! { "id": id, "type": "request", "host": host, "pid": 1, "start": 1.0, "end": 2.0,
        "body": {} }
        .to_vec()
        .unwrap()
    }

    #[test]
    fn host_and_id_lengths_are_capped() {
        let id = "i".repeat(crate::MAX_ID_LEN);
        let host = "h".repeat(MAX_HOST_BYTES);
        assert!(validate_event(&event_with(&id, &host)).is_ok());
        assert_eq!(
            validate_event(&event_with(&format!("{id}i"), "h")),
            Err(InvalidReason::IdTooLong)
        );
        assert_eq!(
            validate_event(&event_with("i", &format!("{host}h"))),
            Err(InvalidReason::HostTooLong)
        );
        assert_eq!(
            validate_event(&event_with("", "h")),
            Err(InvalidReason::WrongType)
        );
        // Every reason has its own STATUS key.
        let names: std::collections::BTreeSet<_> =
            InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), InvalidReason::ALL.len());
    }

    #[test]
    fn accepts_2012_binary_strings() {
        let bin = |s: &str| Binary {
            subtype: BinarySubtype::Generic,
            bytes: s.as_bytes().to_vec(),
        };
        let old = doc! { "id": bin("abc"), "type": bin("request"), "host": bin("h"), "pid": 1i64,
        "start": 1.0, "end": 2.0, "body": {} }
        .to_vec()
        .unwrap();
        assert_eq!(validate_event(&old).unwrap().channel, "request");
    }
}
