//! The checks a forwarded batch must pass before anything of it is taken, and who owns a sender
//! id.

use std::sync::atomic::AtomicU64;

use ziggy_proto::forward as protocol;

use super::{ForwardIn, MAX_SEQ_JUMP, SenderState};
use crate::ratelog::RateLimitedLog;
use crate::stats::ForwardInStats;
use crate::validate::{Item, Limits, split_frame};

/// Why a batch is refused: the `NAK1` reason, and the STATUS counter it counts in.
pub(super) struct Refused {
    pub(super) reason: String,
    pub(super) counter: fn(&ForwardInStats) -> &AtomicU64,
}

impl Refused {
    fn new(reason: impl Into<String>, counter: fn(&ForwardInStats) -> &AtomicU64) -> Refused {
        Refused {
            reason: reason.into(),
            counter,
        }
    }
}

/// A batch that passed the checks: its split events and the seq of its last one.
pub(super) struct Admitted<'a> {
    pub(super) items: Vec<Item<'a>>,
    pub(super) last_seq: u64,
    /// What this daemon had from the sender before it: everything up to here is a duplicate.
    pub(super) reached: u64,
}

/// Who sent a message: its CURVE key (the `User-Id` the ZAP handler set) and its address.
pub(super) struct Peer {
    pub(super) key: Option<String>,
    pub(super) address: Option<String>,
}

impl Peer {
    /// Who owns a sender id this peer uses first: its CURVE key, or without CURVE its address.
    fn owner(&self) -> String {
        match (&self.key, &self.address) {
            (Some(key), _) => format!("key:{key}"),
            (None, Some(address)) => format!("ip:{address}"),
            (None, None) => "local".to_owned(),
        }
    }
}

impl ForwardIn {
    /// The checks a batch must pass before anything of it is taken, in order: its size, its
    /// framing, its numbering, the owner of its sender id, how far it jumps, and no earlier
    /// refusal of that sender waiting to be resent. Claims an unowned sender id for `peer`.
    pub(super) fn admit<'a>(
        &self,
        batch: &protocol::Batch<'a>,
        peer: &Peer,
        state: &mut SenderState,
        limits: Limits,
        log: &mut RateLimitedLog,
    ) -> Result<Admitted<'a>, Refused> {
        let (sender, first_seq, payload) = (batch.sender, batch.first_seq, batch.payload);
        // A batch is numbered one seq per document: one that does not split into whole
        // documents cannot be numbered, and one over the frame limit cannot be split.
        if payload.len() > limits.max_frame_bytes {
            let max = limits.max_frame_bytes;
            log.log("too_large", || {
                format!(
                    "refused a batch of {} bytes from sender {sender}: this daemon takes \
                     frames up to {max} bytes (--max-frame-bytes); it sends smaller ones",
                    payload.len()
                )
            });
            return Err(Refused::new(
                format!("too_large: this daemon takes batches up to {max} bytes"),
                |f| &f.refused_malformed,
            ));
        }
        if !protocol::frames_whole(payload) {
            log.log("malformed_batch", || {
                format!("refused a batch from sender {sender}: not whole BSON documents")
            });
            return Err(Refused::new(
                "malformed: the batch is not whole BSON documents",
                |f| &f.refused_malformed,
            ));
        }
        let items = split_frame(payload, limits);
        let Some(last_seq) = protocol::last_seq(first_seq, items.len()) else {
            log.log("bad_seq", || {
                format!(
                    "refused a batch of sender {sender}: first seq {first_seq} with {} \
                     events cannot be numbered",
                    items.len()
                )
            });
            return Err(Refused::new(
                "seq_jump: these numbers cannot be right",
                |f| &f.refused_bad_seq,
            ));
        };
        let owner = peer.owner();
        match &state.key {
            Some(first) if *first != owner => {
                log.log("sender_key", || {
                    format!(
                        "refused a batch claiming sender id {sender}: that id belongs to \
                         {first}, this peer is {owner}"
                    )
                });
                return Err(Refused::new(
                    "sender_key: this sender id belongs to another peer",
                    |f| &f.refused_sender_key,
                ));
            }
            Some(_) => {}
            None => state.key = Some(owner),
        }
        let known = self.ledger.contains(sender);
        let reached = state.mark.max(state.intent);
        // A new sender id numbers from 1; a known one goes on from where it is (a small gap
        // is damage cut out of its spool; a large one is not its numbering).
        let jump = if known {
            first_seq > reached.saturating_add(MAX_SEQ_JUMP)
        } else {
            first_seq != 1
        };
        if jump {
            log.log("seq_jump", || {
                format!(
                    "refused a batch of sender {sender} starting at seq {first_seq}: this \
                     daemon has that sender up to {reached}{}; the sender starts a new \
                     sender id",
                    if known {
                        ""
                    } else {
                        " (a new sender id starts at 1)"
                    }
                )
            });
            return Err(Refused::new(
                format!("seq_jump: have up to {reached}"),
                |f| &f.refused_seq_jump,
            ));
        }
        // While a refused batch waits to be resent, nothing after it is taken: it could
        // only be written twice, or confirm past the hole.
        if let Some(hole) = state.hole.filter(|h| first_seq > *h) {
            return Err(Refused::new(
                format!("write_failed: waiting for seq {hole}, refused earlier, to be sent again"),
                |f| &f.refused_write,
            ));
        }
        Ok(Admitted {
            items,
            last_seq,
            reached,
        })
    }
}
