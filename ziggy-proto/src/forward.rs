//! The forward protocol between daemons (docs/PROTOCOL.md §3.2), as types: a batch
//! (`ZGB1`), its confirmation (`ACK1`) and its refusal (`NAK1`), with their encodings.

/// Tag of a batch message.
pub const BATCH_TAG: &[u8; 4] = b"ZGB1";
/// Tag of a confirmation.
pub const ACK_TAG: &[u8; 4] = b"ACK1";
/// Tag of a refusal.
pub const NAK_TAG: &[u8; 4] = b"NAK1";

/// A sender id as spools make them (hex), or any short word of letters, digits, `-` and `_`:
/// nothing that could break a ledger line.
pub fn valid_sender_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// A batch of events of one sender, numbered from `first_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The sender's id.
    pub sender: &'a str,
    /// The seq of the first event.
    pub first_seq: u64,
    /// Concatenated BSON events.
    pub payload: &'a [u8],
}

impl<'a> Batch<'a> {
    /// Parses the frames of a batch message (without a ROUTER's identity frame).
    pub fn parse(parts: &'a [Vec<u8>]) -> Option<Batch<'a>> {
        let [tag, sender, seq, payload] = parts else {
            return None;
        };
        if tag != BATCH_TAG || !valid_sender_id(sender) {
            return None;
        }
        Some(Batch {
            sender: std::str::from_utf8(sender).ok()?,
            first_seq: u64::from_le_bytes(seq[..].try_into().ok()?),
            payload,
        })
    }

    /// Sends the batch's frames on `socket`, the payload without an intermediate copy.
    #[cfg(feature = "client")]
    pub fn send(&self, socket: &zmq::Socket, flags: i32) -> zmq::Result<()> {
        let seq = self.first_seq.to_le_bytes();
        socket.send_multipart(
            [BATCH_TAG, self.sender.as_bytes(), &seq, self.payload],
            flags,
        )
    }

    /// The frames to send: tag, sender, first seq, payload.
    pub fn frames(&self) -> [Vec<u8>; 4] {
        [
            BATCH_TAG.to_vec(),
            self.sender.as_bytes().to_vec(),
            self.first_seq.to_le_bytes().to_vec(),
            self.payload.to_vec(),
        ]
    }

    /// The seq of the last of `events` events, if those numbers can be right: seqs start at 1
    /// and never pass `u64::MAX` (a peer's numbers are never trusted to).
    pub fn last_seq(&self, events: usize) -> Option<u64> {
        last_seq(self.first_seq, events)
    }
}

/// The last seq of `events` events starting at `first`, if those numbers can be right.
pub fn last_seq(first: u64, events: usize) -> Option<u64> {
    if first == 0 {
        return None;
    }
    first.checked_add((events.max(1) as u64).checked_sub(1)?)
}

/// Whether `payload` is whole documents back to back: a batch is numbered one seq per document,
/// so one that is not cannot be numbered.
pub fn frames_whole(payload: &[u8]) -> bool {
    crate::framing::documents(payload).all(|d| d.is_ok())
}

/// Why a batch was refused, as its reason text starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `write_failed`: the receiver cannot write the events now; keep them and resend later.
    WriteFailed,
    /// `seq_jump`: the first seq is far beyond what the receiver has from this sender id.
    SeqJump,
    /// `sender_key`: this sender id belongs to another peer (its CURVE key, or its address).
    SenderKey,
    /// `too_large`: the batch is over the receiver's frame limit; send smaller ones.
    TooLarge,
    /// `malformed`: the batch is not whole BSON documents.
    Malformed,
    /// A reason this version does not know: treated as `WriteFailed`.
    Other,
}

impl Refusal {
    /// The reason's prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Refusal::WriteFailed => "write_failed",
            Refusal::SeqJump => "seq_jump",
            Refusal::SenderKey => "sender_key",
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::Other => "other",
        }
    }

    /// What a reason text says.
    pub fn of(reason: &str) -> Refusal {
        [
            Refusal::WriteFailed,
            Refusal::SeqJump,
            Refusal::SenderKey,
            Refusal::TooLarge,
            Refusal::Malformed,
        ]
        .into_iter()
        .find(|r| reason.starts_with(r.prefix()))
        .unwrap_or(Refusal::Other)
    }

    /// Whether the sender must start a new sender id (its numbering or its key is refused).
    pub fn needs_new_sender_id(self) -> bool {
        matches!(self, Refusal::SeqJump | Refusal::SenderKey)
    }
}

/// The receiver's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Everything of that sender up to `seq` is written and fsynced.
    Ack {
        /// The highest confirmed seq.
        seq: u64,
    },
    /// The batch is refused; `mark` is what is confirmed.
    Nak {
        /// The highest confirmed seq.
        mark: u64,
        /// `write_failed: …`, `seq_jump: …`, `sender_key: …`.
        reason: String,
    },
}

impl Reply {
    /// A refusal of the given kind, with details.
    pub fn nak(mark: u64, refusal: Refusal, detail: &str) -> Reply {
        Reply::Nak {
            mark,
            reason: format!("{}: {detail}", refusal.prefix()),
        }
    }

    /// Parses the frames of an answer (without a ROUTER's identity frame).
    pub fn parse(parts: &[Vec<u8>]) -> Option<Reply> {
        match parts {
            [tag, seq] if tag == ACK_TAG => Some(Reply::Ack {
                seq: u64::from_le_bytes(seq[..].try_into().ok()?),
            }),
            [tag, mark, reason] if tag == NAK_TAG => Some(Reply::Nak {
                mark: u64::from_le_bytes(mark[..].try_into().ok()?),
                reason: String::from_utf8_lossy(reason).into_owned(),
            }),
            _ => None,
        }
    }

    /// The frames to send.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        match self {
            Reply::Ack { seq } => vec![ACK_TAG.to_vec(), seq.to_le_bytes().to_vec()],
            Reply::Nak { mark, reason } => vec![
                NAK_TAG.to_vec(),
                mark.to_le_bytes().to_vec(),
                reason.as_bytes().to_vec(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let batch = Batch {
            sender: "cafe",
            first_seq: 7,
            payload: b"xyz",
        };
        let frames = batch.frames().to_vec();
        assert_eq!(Batch::parse(&frames), Some(batch));
        for reply in [
            Reply::Ack { seq: 9 },
            Reply::nak(3, Refusal::SeqJump, "have up to 3"),
        ] {
            assert_eq!(Reply::parse(&reply.frames()), Some(reply));
        }
        assert_eq!(Refusal::of("write_failed: disk full"), Refusal::WriteFailed);
        assert!(Refusal::of("sender_key: x").needs_new_sender_id());
        assert_eq!(Refusal::of("later"), Refusal::Other);
    }

    #[test]
    fn ids_and_numbers_from_peers_are_checked() {
        assert!(valid_sender_id(b"0123456789abcdef0123456789abcdef"));
        for bad in [&b""[..], b"a b", b"a\n1 2 3", &[b'a'; 65], b"\xff"] {
            assert!(!valid_sender_id(bad), "{bad:?}");
        }
        assert_eq!(last_seq(1, 10), Some(10));
        assert_eq!(last_seq(u64::MAX, 1), Some(u64::MAX));
        assert_eq!(last_seq(u64::MAX, 2), None);
        assert_eq!(last_seq(0, 3), None);
        let parts = vec![BATCH_TAG.to_vec(), b"a b".to_vec(), vec![1; 8], vec![]];
        assert_eq!(Batch::parse(&parts), None);
    }
}
