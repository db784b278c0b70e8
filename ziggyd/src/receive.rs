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

mod admit;
pub mod ledger;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;

use ziggy_proto::forward::{self as protocol, Refusal, Reply};

use crate::batch::{Batch, EventSpan, ForwardMark};
use crate::config::DaemonConfig;
use crate::connections::{Side, Watch, Watcher};
use crate::control::NoForwardPort;
use crate::files::LogPathError;
use crate::files::WriteOutcome;
use crate::gate::{CurveSetupError, Gate};
use crate::ratelog::RateLimitedLog;
use crate::runtime::{Shared, Worker};
use crate::sockets::{self, BindError};
use crate::stats::{BatchCounts, DaemonStats, ForwardInStats};
use crate::validate::{InvalidReason, Limits};

use admit::{Admitted, Peer};
pub use ledger::{SenderLedger, SenderState};

/// A batch whose first seq is further than this beyond what a known sender id has reached is
/// refused (`NAK1 seq_jump`). A sender's batches start at most one window (32 batches of 2,000
/// events) beyond its confirmed mark, so twice that (128,000) leaves room; a peer claiming
/// another daemon's id cannot push that daemon's mark further than this.
pub const MAX_SEQ_JUMP: u64 = 2 * crate::forward::MAX_EVENTS_IN_FLIGHT;
// docs/PROTOCOL.md §3.2 states the number: a change of window is a change of protocol.
const _: () = assert!(MAX_SEQ_JUMP == 128_000);
/// Messages taken from the ROUTER per turn (one ledger write covers them all).
const MESSAGES_PER_TURN: usize = 256;

/// Why the forward-in side cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardInError {
    /// The forward socket could not be bound.
    #[error(transparent)]
    Socket(#[from] BindError),
    /// CURVE could not be set up on it.
    #[error(transparent)]
    Curve(#[from] CurveSetupError),
    /// The ledger cannot be read.
    #[error(transparent)]
    LogPath(#[from] LogPathError),
}

/// The forward-in side, built: the protocol for the collector's thread, the port to announce,
/// and the thread guarding the socket (its connection watch, or with CURVE the gate, which
/// watches too).
pub struct ForwardInParts {
    /// The protocol's state.
    pub forward_in: ForwardIn,
    /// The port `SOCK_FORWARD` announces.
    pub port: Result<u16, NoForwardPort>,
    /// The guarding thread, to spawn.
    pub guard: Worker,
}

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

/// What [`ForwardIn::take`] accepted of a batch, before its payload is moved into a [`Batch`].
struct Taken {
    /// The new events, located in the payload.
    events: Vec<EventSpan>,
    /// The confirmation to send once they are durable.
    mark: ForwardMark,
    counts: BatchCounts,
}

impl Taken {
    /// The batch of these events, `payload` being the bytes they were located in.
    fn into_accepted(self, payload: Vec<u8>) -> Accepted {
        Accepted {
            batch: Arc::new(Batch {
                frame: payload,
                events: self.events,
                durable: Some(self.mark),
            }),
            counts: self.counts,
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
    before: HashMap<String, SenderState>,
}

impl ForwardIn {
    /// The forward-in side of a daemon writing files under `dir`: binds the ROUTER at
    /// `config.forward_listen` (behind the CURVE gate when configured) and opens the ledger; the
    /// file writer reports on `durable`.
    pub fn build(
        shared: &Shared,
        config: &DaemonConfig,
        dir: &std::path::Path,
        durable: Receiver<WriteOutcome>,
    ) -> Result<ForwardInParts, ForwardInError> {
        let (ctx, addr) = (&shared.ctx, &config.forward_listen);
        // A forwarded batch is a frame like any other: the same hard cap on its size.
        let cap = config.max_message_bytes();
        let watch = Watch::of(Side::Forward, config, shared.stats.clone());
        let (bound, guard) = match &config.forward_curve {
            None => {
                let mut watcher = None;
                let bound = sockets::bind(ctx, zmq::ROUTER, "forward", addr, |s| {
                    s.set_maxmsgsize(cap)?;
                    watcher = Some(Watcher::attach(
                        ctx,
                        s,
                        "inproc://ziggyd-forward-connections",
                        watch,
                        shared.shutdown.clone(),
                    )?);
                    Ok(())
                })?;
                let watcher = watcher
                    .expect("attached before binding")
                    .on_port(bound.port());
                (
                    bound,
                    Worker::new("ziggyd-fwd-conns", move || watcher.run()),
                )
            }
            Some(curve) => {
                let gate = Gate::build(shared, curve, watch)?;
                let bound = sockets::bind(ctx, zmq::ROUTER, "forward", addr, |s| {
                    s.set_maxmsgsize(cap)?;
                    gate.secure(s, &curve.keys)
                })?;
                let gate = gate.on_port(bound.port());
                (bound, Worker::new("ziggyd-gate", move || gate.run()))
            }
        };
        let port = bound.port().ok_or(NoForwardPort::NotTcp);
        let ledger = SenderLedger::open(dir).map_err(|e| LogPathError::io(dir, e))?;
        Ok(ForwardInParts {
            forward_in: ForwardIn::new(bound.socket, ledger, durable),
            port,
            guard,
        })
    }

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
            before: HashMap::new(),
        };
        let mut accepted: Vec<Accepted> = Vec::new();
        for _ in 0..MESSAGES_PER_TURN {
            let Some(Message { parts, peer }) = Message::recv(&self.socket) else {
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
            if let Some(taken) = self.take(identity, &batch, &peer, &mut turn, log) {
                // The payload is the message's last part: moved into the batch, not copied.
                let frame = parts.into_iter().next_back().unwrap_or_default();
                accepted.push(taken.into_accepted(frame));
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
    ) -> Option<Taken> {
        let (sender, fin) = (batch.sender, turn.fin);
        let mut state = self.ledger.get(sender);
        let admitted = match self.admit(batch, peer, &mut state, turn.limits, log) {
            Ok(admitted) => admitted,
            Err(refused) => {
                (refused.counter)(fin).fetch_add(1, Ordering::Relaxed);
                // A refusal that keeps the sender id (too large, malformed, waiting) leaves a
                // hole: a later batch of the same window must not be taken past it, or its
                // confirmation would cover the refused events, never written.
                if !Refusal::of(&refused.reason).needs_new_sender_id() {
                    self.open_hole(sender, state.clone(), fin);
                }
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
                    events.push(EventSpan::locate(&meta, batch.payload));
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
        if !turn.before.contains_key(sender) {
            turn.before
                .insert(sender.to_owned(), self.ledger.get(sender));
        }
        state.intent = last_seq;
        let evicted = self.ledger.set(sender, state);
        fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
        Some(Taken {
            events,
            mark: ForwardMark {
                identity: identity.to_vec(),
                sender: sender.to_owned(),
                first_seq: fresh_from,
                last_seq,
            },
            counts,
        })
    }

    /// The ledger could not record this turn's intents: without a durable intent a crash could
    /// double-write silently, so the batches are refused (their senders keep them and resend)
    /// and the senders' states rolled back.
    fn refuse_unrecorded(
        &mut self,
        accepted: &[Accepted],
        before: HashMap<String, SenderState>,
        error: &std::io::Error,
        fin: &ForwardInStats,
        log: &mut RateLimitedLog,
    ) {
        let path = self.ledger.path().display().to_string();
        let reason = format!("cannot write the forward ledger {path}: {error}");
        log.log("ledger", || reason.clone());
        fin.ledger_failing.store(true, Ordering::Relaxed);
        for (sender, state) in before {
            // Rolled back, with a hole where the refused batches start: one still in flight
            // behind them must not be taken in the next turn and confirm past them.
            self.open_hole(&sender, state, fin);
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

    /// Records that nothing of a known `sender` past what it has reached may be taken until the
    /// next seq is sent again (a sender this daemon does not know gets no entry).
    fn open_hole(&mut self, sender: &str, mut state: SenderState, fin: &ForwardInStats) {
        if !self.ledger.contains(sender) {
            return;
        }
        let next = state.mark.max(state.intent) + 1;
        state.hole = Some(state.hole.map_or(next, |h| h.min(next)));
        let evicted = self.ledger.set(sender, state);
        fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
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

/// One multipart message and who sent it.
struct Message {
    parts: Vec<Vec<u8>>,
    peer: Peer,
}

impl Message {
    /// The next message waiting on `socket`, if one is.
    fn recv(socket: &zmq::Socket) -> Option<Message> {
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
                return Some(Message { parts, peer });
            }
            // The rest of a multipart message is already here.
            flags = 0;
        }
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
