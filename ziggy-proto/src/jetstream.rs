//! The messages a publishing daemon puts on a NATS JetStream stream and a writer daemon takes off
//! it (docs/PROTOCOL.md §3.5).
//!
//! A spool batch of one sender (events numbered `first..=last`) becomes one message per partition
//! it has events for. An event's partition follows from its channel alone, so every event of a
//! channel goes through one partition and its files are written by one writer. A message:
//! - subject `<prefix>.p<partition>`;
//! - headers `Nats-Msg-Id: <sender>.<first>-<last>.p<partition>` (JetStream drops a repeat within
//!   the stream's duplicate window), `Ziggy-Sender`, `Ziggy-Range: <first>-<last>`;
//! - payload: the tag `ZGJ1`, then per event its seq (u64 LE) and its BSON document.

use crate::framing::{FrameError, declared_len};

/// Tag opening every payload.
pub const PAYLOAD_TAG: &[u8; 4] = b"ZGJ1";
/// Header naming the sending daemon's id.
pub const SENDER_HEADER: &str = "Ziggy-Sender";
/// Header with the batch's seq range, `first-last`.
pub const RANGE_HEADER: &str = "Ziggy-Range";
/// The subject prefix unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "ziggy.events";
/// The stream name unless configured otherwise.
pub const DEFAULT_STREAM: &str = "ZIGGY";
/// Most partitions a stream may have.
pub const MAX_PARTITIONS: u32 = 64;

/// The partition of `channel` among `partitions` (FNV-1a of the name; stable across versions,
/// as writers and publishers of different versions must agree).
pub fn partition_of(channel: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in channel.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// The subject of a partition.
pub fn subject(prefix: &str, partition: u32) -> String {
    format!("{prefix}.p{partition}")
}

/// The message id JetStream deduplicates on.
pub fn message_id(sender: &str, first: u64, last: u64, partition: u32) -> String {
    format!("{sender}.{first}-{last}.p{partition}")
}

/// The `Ziggy-Range` header's value.
pub fn range_header(first: u64, last: u64) -> String {
    format!("{first}-{last}")
}

/// Most seqs one batch may cover. A forwarder's batches hold at most a few thousand events; the
/// bound keeps a forged message from claiming a sender's next million seqs as written.
pub const MAX_BATCH_SEQS: u64 = 65_536;

/// Reads a `Ziggy-Range` header: `first-last` with `1 <= first <= last` and at most
/// [`MAX_BATCH_SEQS`] seqs.
pub fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once('-')?;
    let (first, last) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (first >= 1 && first <= last && last - first < MAX_BATCH_SEQS).then_some((first, last))
}

/// The description a stream carries, naming its partition count: publishers and writers read it
/// from the stream so they cannot disagree.
pub fn stream_description(partitions: u32) -> String {
    format!("ziggy events; partitions={partitions}")
}

/// The partition count in a stream's description.
pub fn partitions_in_description(description: &str) -> Option<u32> {
    let n = description.split("partitions=").nth(1)?;
    let n: u32 = n
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    (1..=MAX_PARTITIONS).contains(&n).then_some(n)
}

/// Builds a payload from events and their seqs.
pub fn encode<'a>(events: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<u8> {
    let mut out = PAYLOAD_TAG.to_vec();
    for (seq, doc) in events {
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(doc);
    }
    out
}

/// Why a payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// It does not start with the tag.
    #[error("payload does not start with ZGJ1")]
    Tag,
    /// It ends inside a seq.
    #[error("payload ends inside an event's seq at byte {0}")]
    CutSeq(usize),
    /// A seq outside the batch's range, or not above the one before.
    #[error("event seq {seq} is outside {first}-{last} or out of order")]
    Seq {
        /// The seq read.
        seq: u64,
        /// The range's first seq.
        first: u64,
        /// Its last seq.
        last: u64,
    },
    /// The document after a seq is not whole.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads a payload of a batch covering `first..=last`: each event's seq and document, checked to
/// lie in the range in increasing order. The documents' contents are not checked here.
pub fn decode(payload: &[u8], first: u64, last: u64) -> Result<Vec<(u64, &[u8])>, PayloadError> {
    let mut rest = payload.strip_prefix(PAYLOAD_TAG).ok_or(PayloadError::Tag)?;
    let mut out = Vec::new();
    let mut previous = None;
    while !rest.is_empty() {
        let offset = payload.len() - rest.len();
        let (seq, after) = rest
            .split_first_chunk::<8>()
            .ok_or(PayloadError::CutSeq(offset))?;
        let seq = u64::from_le_bytes(*seq);
        if seq < first || seq > last || previous.is_some_and(|p| seq <= p) {
            return Err(PayloadError::Seq { seq, first, last });
        }
        previous = Some(seq);
        let doc_offset = (offset + 8) as u64;
        let len = after
            .first_chunk::<4>()
            .and_then(|p| declared_len(*p))
            .ok_or(FrameError::Corrupt {
                offset: doc_offset,
                reason: "impossible length",
            })?;
        if len > after.len() {
            return Err(FrameError::Truncated {
                offset: doc_offset,
                declared: len,
                available: after.len(),
            }
            .into());
        }
        let (doc, tail) = after.split_at(len);
        if doc[len - 1] != 0 {
            return Err(FrameError::Corrupt {
                offset: doc_offset,
                reason: "no NUL at its end",
            }
            .into());
        }
        out.push((seq, doc));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: [u8; 5] = [5, 0, 0, 0, 0];

    #[test]
    fn payloads_round_trip_and_refuse_what_cannot_be_right() {
        let payload = encode([(3, &DOC[..]), (7, &DOC[..])]);
        assert_eq!(
            decode(&payload, 1, 9).unwrap(),
            [(3, &DOC[..]), (7, &DOC[..])]
        );
        assert!(matches!(
            decode(&payload, 4, 9),
            Err(PayloadError::Seq { seq: 3, .. })
        ));
        assert!(matches!(
            decode(&payload, 1, 6),
            Err(PayloadError::Seq { seq: 7, .. })
        ));
        let backwards = encode([(7, &DOC[..]), (3, &DOC[..])]);
        assert!(decode(&backwards, 1, 9).is_err());
        assert!(matches!(
            decode(&payload[..payload.len() - 1], 1, 9),
            Err(PayloadError::Frame(FrameError::Truncated { .. }))
        ));
        assert!(matches!(
            decode(&payload[..6], 1, 9),
            Err(PayloadError::CutSeq(4))
        ));
        assert_eq!(decode(b"XXXX", 1, 1), Err(PayloadError::Tag));
        assert_eq!(decode(PAYLOAD_TAG, 1, 1).unwrap(), []);
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("request", 1), 0);
        let p: std::collections::BTreeSet<u32> = ["request", "request.sql", "request.cache", "job"]
            .iter()
            .map(|c| partition_of(c, 4))
            .collect();
        assert!(p.len() > 1);
        assert_eq!(
            partition_of("request.sql", 8),
            partition_of("request.sql", 8)
        );
    }

    #[test]
    fn headers_and_descriptions() {
        assert_eq!(parse_range(&range_header(5, 9)), Some((5, 9)));
        assert_eq!(parse_range("9-5"), None);
        assert_eq!(parse_range("0-5"), None);
        assert_eq!(parse_range("x"), None);
        assert_eq!(parse_range("1-65536"), Some((1, 65_536)));
        assert_eq!(parse_range("1-65537"), None, "wider than any batch");
        assert_eq!(parse_range(&format!("1-{}", u64::MAX)), None);
        assert_eq!(partitions_in_description(&stream_description(4)), Some(4));
        assert_eq!(partitions_in_description("partitions=0"), None);
        assert_eq!(partitions_in_description("other"), None);
        assert_eq!(message_id("ab12", 1, 9, 3), "ab12.1-9.p3");
    }
}
