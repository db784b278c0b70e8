//! The receiving side of daemon-to-daemon forwarding (forward-in), run inside the collector
//! thread: a master takes forwarding daemons' batches on its ROUTER socket, checks and numbers
//! them, records them in the per-sender [`ledger`], hands the new events to the file writer, and
//! answers once the writer reports them durable (or not).
//!
//! Protocol (documented in the crate docs): a forwarding daemon's DEALER sends
//! `["ZGB1", sender id, first seq (u64 LE), concatenated events]` to this daemon's ROUTER (port
//! announced by `SOCK_FORWARD`). Events of a batch are numbered `first seq`, `first seq + 1`, …
//! This daemon writes the new ones, fsyncs, and answers `["ACK1", seq (u64 LE)]`: everything of
//! that sender up to `seq` is durable here; or `["NAK1", mark, reason]` when it will not confirm
//! the batch. A per-sender ledger (`<log-path>/.ziggyd-forward-ledger`) keeps, for each sender,
//! `mark` (confirmed) and `intent` (handed to the file writer), fsynced before the files are
//! written; after a crash, resent events up to `mark` are skipped (deduplicated) and those in
//! `(mark, intent]` are written again and counted as possible duplicates.
//!
//! Trust: numbers from a peer are checked before use (a batch whose seqs would pass `u64::MAX`
//! is refused). Without CURVE anyone who reaches the forward port can claim any sender id; a
//! claim cannot move a known sender's position more than [`MAX_SEQ_JUMP`] ahead, so at worst
//! that many of the real sender's next events are taken for duplicates. With CURVE a sender id
//! belongs to the key that first used it, and other keys are refused.

pub mod ledger;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Receiver;

use ziggy_proto::forward::{self as protocol, Refusal, Reply};

use crate::batch::{Batch, ForwardMark, WriteOutcome};
use crate::ratelog::RateLimitedLog;
use crate::stats::{BatchCounts, DaemonStats, ForwardInStats};
use crate::validate::{InvalidReason, Item, Limits, split_frame};

pub use ledger::{MAX_SENDERS, SenderLedger, SenderState};

/// A batch whose first seq is further than this beyond what a known sender id has reached is
/// refused (`NAK1 seq_jump`). A sender's batches start at most one window (8 batches of 2,000
/// events) beyond its confirmed mark, so this leaves room; a peer claiming another daemon's id
/// cannot push that daemon's mark further than this.
pub const MAX_SEQ_JUMP: u64 = 32_000;
/// Messages taken from the ROUTER per turn (one ledger write covers them all).
const MESSAGES_PER_TURN: usize = 256;

/// The receiving side of forwarding, owned by the collector (ZeroMQ sockets are single-threaded).
pub struct ForwardIn {
    socket: zmq::Socket,
    ledger: SenderLedger,
    /// Batches the file writer made durable (or could not write).
    durable: Receiver<WriteOutcome>,
    /// Batches handed to the writer and not yet answered.
    pending: usize,
}

/// A forwarded batch taken in, for the collector to count, publish and hand to the sinks.
pub(crate) struct Accepted {
    /// The new events of the batch.
    pub(crate) batch: Arc<Batch>,
    /// Their counts for STATUS.
    pub(crate) counts: BatchCounts,
}

/// Why a batch is refused: the `NAK1` reason, and the STATUS counter it counts in.
struct Refused {
    reason: String,
    counter: fn(&ForwardInStats) -> &AtomicU64,
}

impl Refused {
    fn new(reason: impl Into<String>, counter: fn(&ForwardInStats) -> &AtomicU64) -> Refused {
        Refused {
            reason: reason.into(),
            counter,
        }
    }
}

/// One turn of [`ForwardIn::receive`].
struct Turn<'s> {
    /// Unix seconds, for the senders' `last_seen`.
    now: u64,
    limits: Limits,
    fin: &'s ForwardInStats,
    /// Each sender's state before its first batch accepted in this turn, to undo the intents
    /// if the ledger cannot be written.
    before: Vec<(String, SenderState)>,
}

/// A batch that passed the checks: its split events and the seq of its last one.
struct Admitted<'a> {
    items: Vec<Item<'a>>,
    last_seq: u64,
    /// What this daemon had from the sender before it: everything up to here is a duplicate.
    reached: u64,
}

impl ForwardIn {
    /// Serves `socket` (bound ROUTER) with `ledger`; the file writer reports on `durable`.
    pub(crate) fn new(
        socket: zmq::Socket,
        ledger: SenderLedger,
        durable: Receiver<WriteOutcome>,
    ) -> ForwardIn {
        ForwardIn {
            socket,
            ledger,
            durable,
            pending: 0,
        }
    }

    /// The ROUTER socket, to poll.
    pub(crate) fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Whether batches wait for the writer's verdict (the collector then polls more often).
    pub(crate) fn awaiting_writer(&self) -> bool {
        self.pending > 0
    }

    /// Takes forwarded batches: refuses what cannot be numbered or written whole, claims on a
    /// sender id by another peer, and numbering that is not the sender's; skips what this sender
    /// already had confirmed; records the intent durably (one ledger write for everything
    /// received in this turn); and returns the new events, for the collector to hand to the
    /// writer, which reports once they are fsynced (or could not be written).
    pub(crate) fn receive(
        &mut self,
        limits: Limits,
        stats: &DaemonStats,
        log: &mut RateLimitedLog,
    ) -> Vec<Accepted> {
        let fin = &stats.forward_in;
        let mut turn = Turn {
            now: unix_secs(),
            limits,
            fin,
            before: Vec::new(),
        };
        let mut accepted: Vec<Accepted> = Vec::new();
        for _ in 0..MESSAGES_PER_TURN {
            let Some((parts, peer)) = recv_with_peer(&self.socket) else {
                break;
            };
            let Some((identity, rest)) = parts.split_first() else {
                continue;
            };
            let Some(batch) = protocol::Batch::parse(rest) else {
                let mut counts = BatchCounts::default();
                *counts
                    .invalid
                    .entry(InvalidReason::MalformedBson)
                    .or_default() += 1;
                stats.merge(counts);
                log.log("forward", || "rejected a malformed forwarded batch".into());
                continue;
            };
            fin.batches.fetch_add(1, Ordering::Relaxed);
            if let Some(a) = self.take(identity, &batch, &peer, &mut turn, log) {
                accepted.push(a);
            }
        }
        if accepted.is_empty() {
            return accepted;
        }
        if let Err(e) = self.ledger.persist() {
            self.refuse_unrecorded(&accepted, turn.before, &e, fin, log);
            return Vec::new();
        }
        fin.ledger_failing.store(false, Ordering::Relaxed);
        self.pending += accepted.len();
        for a in &accepted {
            fin.events
                .fetch_add(a.batch.events.len() as u64, Ordering::Relaxed);
        }
        accepted
    }

    /// Takes one batch: refuses it, confirms it as already had, or returns its new events (its
    /// sender's intent updated in the ledger's memory).
    fn take(
        &mut self,
        identity: &[u8],
        batch: &protocol::Batch<'_>,
        peer: &Peer,
        turn: &mut Turn<'_>,
        log: &mut RateLimitedLog,
    ) -> Option<Accepted> {
        let (sender, fin) = (batch.sender, turn.fin);
        let mut state = self.ledger.get(sender);
        let admitted = match self.admit(batch, peer, &mut state, turn.limits, log) {
            Ok(admitted) => admitted,
            Err(refused) => {
                (refused.counter)(fin).fetch_add(1, Ordering::Relaxed);
                nak(&self.socket, identity, state.mark, &refused.reason);
                return None;
            }
        };
        let Admitted {
            items,
            last_seq,
            reached,
        } = admitted;
        state.last_seen = turn.now;
        let mut counts = BatchCounts::default();
        let mut events = Vec::new();
        let mut fresh_from = None;
        let mut deduplicated = 0;
        let mut possible_duplicates = 0;
        for (seq, item) in (batch.first_seq..=last_seq).zip(items) {
            if seq <= reached {
                deduplicated += 1;
                continue;
            }
            fresh_from.get_or_insert(seq);
            if seq <= state.recovered {
                possible_duplicates += 1;
            }
            match item {
                Ok(meta) => {
                    counts.event(meta.channel, meta.host, meta.end);
                    events.push(crate::batch::locate(&meta, batch.payload));
                }
                Err(reason) => *counts.invalid.entry(reason).or_default() += 1,
            }
        }
        fin.deduplicated.fetch_add(deduplicated, Ordering::Relaxed);
        fin.possible_duplicates
            .fetch_add(possible_duplicates, Ordering::Relaxed);
        let Some(fresh_from) = fresh_from else {
            if last_seq <= state.mark {
                ack(&self.socket, identity, state.mark);
            }
            return None;
        };
        if !turn.before.iter().any(|(s, _)| s == sender) {
            turn.before
                .push((sender.to_owned(), self.ledger.get(sender)));
        }
        state.intent = last_seq;
        let evicted = self.ledger.set(sender, state);
        fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
        let batch = Batch {
            frame: batch.payload.to_vec(),
            events,
            durable: Some(ForwardMark {
                identity: identity.to_vec(),
                sender: sender.to_owned(),
                first_seq: fresh_from,
                last_seq,
            }),
        };
        Some(Accepted {
            batch: Arc::new(batch),
            counts,
        })
    }

    /// The checks a batch must pass before anything of it is taken, in order: its size, its
    /// framing, its numbering, the owner of its sender id, how far it jumps, and no earlier
    /// refusal of that sender waiting to be resent. Claims an unowned sender id for `peer`.
    fn admit<'a>(
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

    /// The ledger could not record this turn's intents: without a durable intent a crash could
    /// double-write silently, so the batches are refused (their senders keep them and resend)
    /// and the senders' states rolled back.
    fn refuse_unrecorded(
        &mut self,
        accepted: &[Accepted],
        before: Vec<(String, SenderState)>,
        error: &std::io::Error,
        fin: &ForwardInStats,
        log: &mut RateLimitedLog,
    ) {
        let path = self.ledger.path().display().to_string();
        let reason = format!("cannot write the forward ledger {path}: {error}");
        log.log("ledger", || reason.clone());
        fin.ledger_failing.store(true, Ordering::Relaxed);
        for (sender, state) in before {
            self.ledger.set(&sender, state);
        }
        for a in accepted {
            let mark = a.batch.durable.as_ref().expect("forwarded");
            fin.refused_write.fetch_add(1, Ordering::Relaxed);
            let confirmed = self.ledger.get(&mark.sender).mark;
            nak(
                &self.socket,
                &mark.identity,
                confirmed,
                &format!("write_failed: {reason}"),
            );
        }
    }

    /// Answers the batches the writer is done with: `ACK1` when durable; `NAK1` with the
    /// writer's reason when not, after rolling the sender back so its resend is written.
    pub(crate) fn confirm_durable(&mut self, stats: &DaemonStats, log: &mut RateLimitedLog) {
        let outcomes: Vec<WriteOutcome> = self.durable.try_iter().collect();
        if outcomes.is_empty() {
            return;
        }
        let fin = &stats.forward_in;
        for o in &outcomes {
            let m = &o.mark;
            let mut state = self.ledger.get(&m.sender);
            match &o.result {
                // Confirmations are cumulative: past a refused batch nothing is confirmed until
                // that batch is written (what was written after it is then written again).
                Ok(()) if state.hole.is_some_and(|h| m.first_seq > h) => {}
                Ok(()) => {
                    state.mark = state.mark.max(m.last_seq);
                    if state.hole.is_some_and(|h| h <= m.last_seq) {
                        state.hole = None;
                    }
                }
                Err(reason) => {
                    fin.refused_write.fetch_add(1, Ordering::Relaxed);
                    log.log("refused_write", || {
                        format!(
                            "not confirming events {}..={} of sender {}: {reason}; it keeps \
                             them and resends",
                            m.first_seq, m.last_seq, m.sender
                        )
                    });
                    state.hole = Some(state.hole.map_or(m.first_seq, |h| h.min(m.first_seq)));
                    state.recovered = state.recovered.max(state.intent);
                    state.intent = state.intent.min(m.first_seq - 1).max(state.mark);
                }
            }
            let evicted = self.ledger.set(&m.sender, state);
            fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        self.pending = self.pending.saturating_sub(outcomes.len());
        if self.ledger.persist().is_err() {
            return; // unconfirmed: the senders resend, and the intent makes them possible duplicates
        }
        for o in outcomes {
            let mark = self.ledger.get(&o.mark.sender).mark;
            match o.result {
                Ok(()) => ack(&self.socket, &o.mark.identity, mark),
                Err(reason) => nak(
                    &self.socket,
                    &o.mark.identity,
                    mark,
                    &format!("write_failed: {reason}"),
                ),
            }
        }
    }
}

/// Who sent a message: its CURVE key (the `User-Id` the ZAP handler set) and its address.
struct Peer {
    key: Option<String>,
    address: Option<String>,
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

/// One multipart message and who sent it.
fn recv_with_peer(socket: &zmq::Socket) -> Option<(Vec<Vec<u8>>, Peer)> {
    let mut parts = Vec::new();
    let mut peer = Peer {
        key: None,
        address: None,
    };
    let mut flags = zmq::DONTWAIT;
    loop {
        let mut msg = socket.recv_msg(flags).ok()?;
        if peer.key.is_none() {
            peer.key = msg
                .gets("User-Id")
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
        }
        if peer.address.is_none() {
            peer.address = msg.gets("Peer-Address").map(str::to_owned);
        }
        let more = msg.get_more();
        parts.push(msg.to_vec());
        if !more {
            return Some((parts, peer));
        }
        // The rest of a multipart message is already here.
        flags = 0;
    }
}

/// Confirms everything of a sender up to `mark`.
fn ack(socket: &zmq::Socket, identity: &[u8], mark: u64) {
    answer(socket, identity, &Reply::Ack { seq: mark });
}

/// Refuses a batch: the sender keeps it (`mark` is what is confirmed), with the reason (its
/// first word one of [`Refusal`]'s).
fn nak(socket: &zmq::Socket, identity: &[u8], mark: u64, reason: &str) {
    debug_assert_ne!(Refusal::of(reason), Refusal::Other, "{reason}");
    let reason = reason.to_owned();
    answer(socket, identity, &Reply::Nak { mark, reason });
}

/// Sends an answer to the peer behind a ROUTER identity.
fn answer(socket: &zmq::Socket, identity: &[u8], reply: &Reply) {
    let mut frames = vec![identity.to_vec()];
    frames.extend(reply.frames());
    let _ = socket.send_multipart(frames, zmq::DONTWAIT);
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
