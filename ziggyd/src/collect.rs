//! The collector: PULL frames, validate, publish to the live stream, hand batches to the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use ziggy_proto::day::Day;

use crate::batch::{Batch, ForwardMark, WriteOutcome};
use crate::ratelog::RateLimitedLog;
use crate::receive::{MAX_SEQ_JUMP, SenderLedger, SenderState};
use crate::stats::{BatchCounts, DaemonStats};
use crate::validate::{Limits, split_frame};
use ziggy_proto::forward::{self as protocol, Refusal, Reply};

/// Frames drained per wake-up before counts are merged and the shutdown flag is looked at.
const DRAIN_PER_WAKEUP: usize = 4096;
/// Counters reach STATUS at least every this many frames.
const MERGE_EVERY_FRAMES: usize = 64;

/// The collector's sockets and where its output goes.
pub struct Collector {
    pub(crate) pull: zmq::Socket,
    pub(crate) pull_endpoint: String,
    pub(crate) stream: zmq::Socket,
    pub(crate) sinks: Vec<Sender<Arc<Batch>>>,
    pub(crate) stats: Arc<DaemonStats>,
    pub(crate) limits: Limits,
    pub(crate) log_interval: Duration,
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Forwarding daemons' batches arrive here (ROUTER), when this daemon writes files.
    pub(crate) router: Option<ForwardIn>,
}

/// The receiving side of forwarding, owned by the collector (ZeroMQ sockets are single-threaded).
pub struct ForwardIn {
    pub(crate) socket: zmq::Socket,
    pub(crate) ledger: SenderLedger,
    /// Batches the file writer made durable.
    pub(crate) durable: Receiver<WriteOutcome>,
    pub(crate) pending: usize,
}

impl Collector {
    /// Runs until shutdown is requested, then drains what was already received and returns.
    pub fn run(mut self) {
        let mut log = RateLimitedLog::new(self.log_interval);
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                break;
            }
            let wait = if self.router.as_ref().is_some_and(|r| r.pending > 0) {
                2
            } else {
                100
            };
            let (pull_ready, router_ready) = match &self.router {
                Some(r) => {
                    let mut items = [
                        self.pull.as_poll_item(zmq::POLLIN),
                        r.socket.as_poll_item(zmq::POLLIN),
                    ];
                    let _ = zmq::poll(&mut items, wait);
                    (items[0].is_readable(), items[1].is_readable())
                }
                None => (self.pull.poll(zmq::POLLIN, wait).unwrap_or(0) > 0, false),
            };
            if pull_ready {
                self.drain(&mut log, DRAIN_PER_WAKEUP);
            }
            if router_ready {
                self.receive_forwarded(&mut log);
            }
            self.confirm_durable(&mut log);
        }
        // Stop accepting: no new connections, then write out what is already here.
        let _ = self.pull.unbind(&self.pull_endpoint);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.drain(&mut log, DRAIN_PER_WAKEUP) == DRAIN_PER_WAKEUP
        {}
    }

    /// Takes forwarded batches: refuses what cannot be numbered or written whole, claims on a
    /// sender id by another peer, and numbering that is not the sender's; skips what this sender
    /// already had confirmed; records the intent durably (one ledger write for everything
    /// received in this turn); and hands the new events to the writer, which reports once they
    /// are fsynced (or could not be written).
    fn receive_forwarded(&mut self, log: &mut RateLimitedLog) {
        let Some(router) = &mut self.router else {
            return;
        };
        let fin = &self.stats.forward_in;
        // Accepted batches with their counts, published and counted once the ledger holds them.
        let mut accepted: Vec<(Arc<Batch>, BatchCounts)> = Vec::new();
        // Each touched sender's state before this turn, to undo the intents if the ledger
        // cannot be written.
        let mut before: Vec<(String, SenderState)> = Vec::new();
        let now = unix_secs();
        for _ in 0..256 {
            let Some((parts, peer)) = recv_with_peer(&router.socket) else {
                break;
            };
            let Some((identity, rest)) = parts.split_first() else {
                continue;
            };
            let Some(protocol::Batch {
                sender,
                first_seq,
                payload,
            }) = protocol::Batch::parse(rest)
            else {
                let mut counts = BatchCounts::default();
                *counts
                    .invalid
                    .entry(crate::validate::InvalidReason::MalformedBson)
                    .or_default() += 1;
                self.stats.merge(counts);
                log.log("forward", || "rejected a malformed forwarded batch".into());
                continue;
            };
            fin.batches.fetch_add(1, Ordering::Relaxed);
            let mut state = router.ledger.get(sender);
            let refuse = |reason: String, counter: &std::sync::atomic::AtomicU64| {
                counter.fetch_add(1, Ordering::Relaxed);
                nak(&router.socket, identity, state.mark, &reason);
            };
            // A batch is numbered one seq per document: one that does not split into whole
            // documents cannot be numbered, and one over the frame limit cannot be split.
            if payload.len() > self.limits.max_frame_bytes {
                let max = self.limits.max_frame_bytes;
                log.log("too_large", || {
                    format!(
                        "refused a batch of {} bytes from sender {sender}: this daemon takes \
                         frames up to {max} bytes (--max-frame-bytes); it sends smaller ones",
                        payload.len()
                    )
                });
                refuse(
                    format!("too_large: this daemon takes batches up to {max} bytes"),
                    &fin.refused_malformed,
                );
                continue;
            }
            if !protocol::frames_whole(payload) {
                log.log("malformed_batch", || {
                    format!("refused a batch from sender {sender}: not whole BSON documents")
                });
                refuse(
                    "malformed: the batch is not whole BSON documents".into(),
                    &fin.refused_malformed,
                );
                continue;
            }
            let items = split_frame(payload, self.limits);
            let Some(last_seq) = protocol::last_seq(first_seq, items.len()) else {
                log.log("bad_seq", || {
                    format!(
                        "refused a batch of sender {sender}: first seq {first_seq} with {} \
                         events cannot be numbered",
                        items.len()
                    )
                });
                refuse(
                    "seq_jump: these numbers cannot be right".into(),
                    &fin.refused_bad_seq,
                );
                continue;
            };
            // A sender id belongs to the peer that first used it: its CURVE key, or without
            // CURVE its address.
            let owner = match (&peer.key, &peer.address) {
                (Some(key), _) => format!("key:{key}"),
                (None, Some(address)) => format!("ip:{address}"),
                (None, None) => "local".to_owned(),
            };
            match &state.key {
                Some(first) if *first != owner => {
                    log.log("sender_key", || {
                        format!(
                            "refused a batch claiming sender id {sender}: that id belongs to \
                             {first}, this peer is {owner}"
                        )
                    });
                    refuse(
                        "sender_key: this sender id belongs to another peer".into(),
                        &fin.refused_sender_key,
                    );
                    continue;
                }
                Some(_) => {}
                None => state.key = Some(owner),
            }
            let known = router.ledger.contains(sender);
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
                refuse(
                    format!("seq_jump: have up to {reached}"),
                    &fin.refused_seq_jump,
                );
                continue;
            }
            // While a refused batch waits to be resent, nothing after it is taken: it could
            // only be written twice, or confirm past the hole.
            if let Some(hole) = state.hole.filter(|h| first_seq > *h) {
                refuse(
                    format!(
                        "write_failed: waiting for seq {hole}, refused earlier, to be sent again"
                    ),
                    &fin.refused_write,
                );
                continue;
            }
            state.last_seen = now;
            let mut counts = BatchCounts::default();
            let mut events = Vec::new();
            let mut fresh_from = None;
            let mut deduplicated = 0;
            let mut possible_duplicates = 0;
            for (seq, item) in (first_seq..=last_seq).zip(items) {
                if seq <= reached {
                    deduplicated += 1;
                    continue;
                }
                fresh_from.get_or_insert(seq);
                if seq <= state.recovered {
                    possible_duplicates += 1;
                }
                match item {
                    Ok(meta) => events.push(locate(&meta, payload, &mut counts)),
                    Err(reason) => *counts.invalid.entry(reason).or_default() += 1,
                }
            }
            fin.deduplicated.fetch_add(deduplicated, Ordering::Relaxed);
            fin.possible_duplicates
                .fetch_add(possible_duplicates, Ordering::Relaxed);
            let Some(fresh_from) = fresh_from else {
                if last_seq <= state.mark {
                    ack(&router.socket, identity, state.mark);
                }
                continue;
            };
            if !before.iter().any(|(s, _)| *s == sender) {
                before.push((sender.to_owned(), router.ledger.get(sender)));
            }
            state.intent = last_seq;
            let evicted = router.ledger.set(sender, state);
            fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
            let batch = Batch {
                frame: payload.to_vec(),
                events,
                durable: Some(ForwardMark {
                    identity: identity.clone(),
                    sender: sender.to_owned(),
                    first_seq: fresh_from,
                    last_seq,
                }),
            };
            accepted.push((Arc::new(batch), counts));
        }
        if accepted.is_empty() {
            return;
        }
        if let Err(e) = router.ledger.persist() {
            // Without a durable intent, a crash could double-write silently: refuse the batches;
            // the senders keep them and resend.
            let path = router.ledger.path().display().to_string();
            let reason = format!("cannot write the forward ledger {path}: {e}");
            log.log("ledger", || reason.clone());
            fin.ledger_failing.store(true, Ordering::Relaxed);
            for (sender, state) in before {
                router.ledger.set(&sender, state);
            }
            for (batch, _) in &accepted {
                let mark = batch.durable.as_ref().expect("forwarded");
                fin.refused_write.fetch_add(1, Ordering::Relaxed);
                let confirmed = router.ledger.get(&mark.sender).mark;
                nak(
                    &router.socket,
                    &mark.identity,
                    confirmed,
                    &format!("write_failed: {reason}"),
                );
            }
            return;
        }
        fin.ledger_failing.store(false, Ordering::Relaxed);
        router.pending += accepted.len();
        for (batch, counts) in accepted {
            fin.events
                .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
            self.stats.merge(counts);
            publish(&self.stream, &batch);
            for sink in &self.sinks {
                let _ = sink.send(batch.clone());
            }
        }
    }

    /// Answers the batches the writer is done with: `ACK1` when durable; `NAK1` with the
    /// writer's reason when not, after rolling the sender back so its resend is written.
    fn confirm_durable(&mut self, log: &mut RateLimitedLog) {
        let Some(router) = &mut self.router else {
            return;
        };
        let outcomes: Vec<WriteOutcome> = router.durable.try_iter().collect();
        if outcomes.is_empty() {
            return;
        }
        let fin = &self.stats.forward_in;
        for o in &outcomes {
            let m = &o.mark;
            let mut state = router.ledger.get(&m.sender);
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
            let evicted = router.ledger.set(&m.sender, state);
            fin.senders_evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        router.pending = router.pending.saturating_sub(outcomes.len());
        if router.ledger.persist().is_err() {
            return; // unconfirmed: the senders resend, and the intent makes them possible duplicates
        }
        for o in outcomes {
            let mark = router.ledger.get(&o.mark.sender).mark;
            match o.result {
                Ok(()) => ack(&router.socket, &o.mark.identity, mark),
                Err(reason) => nak(
                    &router.socket,
                    &o.mark.identity,
                    mark,
                    &format!("write_failed: {reason}"),
                ),
            }
        }
    }

    /// Receives up to `max` frames without blocking; returns how many it got.
    fn drain(&self, log: &mut RateLimitedLog, max: usize) -> usize {
        let mut counts = BatchCounts::default();
        let mut got = 0;
        while got < max {
            let frame = match self.pull.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(_) => break,
            };
            got += 1;
            counts.frames += 1;
            self.handle_frame(frame, &mut counts, log);
            if got % MERGE_EVERY_FRAMES == 0 {
                // Keep STATUS current during a long drain (4,096 frames can be seconds of input).
                self.stats.merge(std::mem::take(&mut counts));
            }
        }
        if got > 0 {
            self.stats.merge(counts);
        }
        got
    }

    fn handle_frame(&self, frame: Vec<u8>, counts: &mut BatchCounts, log: &mut RateLimitedLog) {
        let mut events = Vec::new();
        for item in split_frame(&frame, self.limits) {
            match item {
                Ok(meta) => events.push(accept(&self.stream, &meta, &frame, counts)),
                Err(reason) => {
                    *counts.invalid.entry(reason).or_default() += 1;
                    log.log(reason.as_str(), || {
                        format!("rejected an event: {}", reason.as_str())
                    });
                }
            }
        }
        if events.is_empty() {
            return;
        }
        let batch = Arc::new(Batch {
            frame,
            events,
            durable: None,
        });
        for sink in &self.sinks {
            // Blocking here is deliberate back-pressure: a full sink slows intake (and ZeroMQ's
            // own queues) instead of losing events inside the daemon.
            let _ = sink.send(batch.clone());
        }
    }
}

/// Who sent a message: its CURVE key (the `User-Id` the ZAP handler set) and its address.
struct Peer {
    key: Option<String>,
    address: Option<String>,
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

/// Takes in one valid event: counts it, publishes it on the live stream, and returns where it sits
/// in `container` (the frame it arrived in) for the sinks.
fn accept(
    stream: &zmq::Socket,
    meta: &crate::validate::EventMeta<'_>,
    container: &[u8],
    counts: &mut BatchCounts,
) -> (String, Day, std::ops::Range<usize>) {
    // PUB never blocks: a slow subscriber loses messages, collection goes on.
    let _ = stream.send(meta.channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
    let _ = stream.send(meta.bytes, zmq::DONTWAIT);
    locate(meta, container, counts)
}

/// Counts one valid event and returns where it sits in `container`.
fn locate(
    meta: &crate::validate::EventMeta<'_>,
    container: &[u8],
    counts: &mut BatchCounts,
) -> (String, Day, std::ops::Range<usize>) {
    counts.event(meta.channel, meta.host, meta.end);
    let start = meta.bytes.as_ptr() as usize - container.as_ptr() as usize;
    (
        meta.channel.to_owned(),
        Day::from_unix(meta.start),
        start..start + meta.bytes.len(),
    )
}

/// Publishes a batch's events on the live stream.
fn publish(stream: &zmq::Socket, batch: &Batch) {
    for (channel, _, bytes) in batch.iter() {
        let _ = stream.send(channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
        let _ = stream.send(bytes, zmq::DONTWAIT);
    }
}
