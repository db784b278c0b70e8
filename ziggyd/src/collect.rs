//! The collector: PULL frames, validate, publish to the live stream, hand batches to the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::batch::{Batch, ForwardMark, day_number};
use crate::ratelog::RateLimitedLog;
use crate::receive::{SenderLedger, SenderState, parse_batch};
use crate::stats::{BatchCounts, DaemonStats};
use crate::validate::{Limits, split_frame};

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
    pub(crate) durable: Receiver<ForwardMark>,
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
            self.confirm_durable();
        }
        // Stop accepting: no new connections, then write out what is already here.
        let _ = self.pull.unbind(&self.pull_endpoint);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.drain(&mut log, DRAIN_PER_WAKEUP) == DRAIN_PER_WAKEUP
        {}
    }

    /// Takes forwarded batches: skips what this sender already had confirmed, records the intent
    /// durably (one ledger write for everything received in this turn), and hands the new events
    /// to the writer, which confirms them once fsynced.
    fn receive_forwarded(&mut self, log: &mut RateLimitedLog) {
        let Some(router) = &mut self.router else {
            return;
        };
        let fin = &self.stats.forward_in;
        let mut accepted: Vec<Arc<Batch>> = Vec::new();
        // Each touched sender's state before this turn, to undo the intents if the ledger
        // cannot be written.
        let mut before: Vec<(String, SenderState)> = Vec::new();
        for _ in 0..256 {
            let Ok(parts) = router.socket.recv_multipart(zmq::DONTWAIT) else {
                break;
            };
            let Some((identity, rest)) = parts.split_first() else {
                continue;
            };
            let Some((sender, first_seq, payload)) = parse_batch(rest) else {
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
            let mut state = router.ledger.get(&sender);
            let items = split_frame(payload, self.limits);
            let last_seq = first_seq + items.len().max(1) as u64 - 1;
            let mut counts = BatchCounts::default();
            let mut events = Vec::new();
            let mut fresh = false;
            for (i, item) in items.into_iter().enumerate() {
                let seq = first_seq + i as u64;
                if seq <= state.mark.max(state.intent) {
                    fin.deduplicated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                fresh = true;
                if seq <= state.recovered {
                    fin.possible_duplicates.fetch_add(1, Ordering::Relaxed);
                }
                match item {
                    Ok(meta) => events.push(accept(&self.stream, &meta, payload, &mut counts)),
                    Err(reason) => *counts.invalid.entry(reason).or_default() += 1,
                }
            }
            fin.events.fetch_add(events.len() as u64, Ordering::Relaxed);
            self.stats.merge(counts);
            if !fresh {
                if last_seq <= state.mark {
                    let _ = router.socket.send_multipart(
                        [&identity[..], b"ACK1", &state.mark.to_le_bytes()],
                        zmq::DONTWAIT,
                    );
                }
                continue;
            }
            if !before.iter().any(|(s, _)| *s == sender) {
                before.push((sender.clone(), state));
            }
            state.intent = last_seq;
            router.ledger.set(&sender, state);
            accepted.push(Arc::new(Batch {
                frame: payload.to_vec(),
                events,
                durable: Some(ForwardMark {
                    identity: identity.clone(),
                    sender,
                    last_seq,
                }),
            }));
        }
        if accepted.is_empty() {
            return;
        }
        if let Err(e) = router.ledger.persist() {
            // Without a durable intent, a crash could double-write silently: refuse the batches
            // (no confirmation), the senders resend.
            log.log("ledger", || format!("cannot write the forward ledger: {e}"));
            for (sender, state) in before {
                router.ledger.set(&sender, state);
            }
            return;
        }
        router.pending += accepted.len();
        for batch in accepted {
            for sink in &self.sinks {
                let _ = sink.send(batch.clone());
            }
        }
    }

    /// Sends the confirmations of batches the writer made durable.
    fn confirm_durable(&mut self) {
        let Some(router) = &mut self.router else {
            return;
        };
        let marks: Vec<ForwardMark> = router.durable.try_iter().collect();
        if marks.is_empty() {
            return;
        }
        for m in &marks {
            let mut state = router.ledger.get(&m.sender);
            state.mark = state.mark.max(m.last_seq);
            router.ledger.set(&m.sender, state);
        }
        router.pending = router.pending.saturating_sub(marks.len());
        if router.ledger.persist().is_err() {
            return; // unconfirmed: the senders resend, and the intent makes them possible duplicates
        }
        for m in marks {
            let mark = router.ledger.get(&m.sender).mark;
            let _ = router.socket.send_multipart(
                [&m.identity[..], b"ACK1", &mark.to_le_bytes()],
                zmq::DONTWAIT,
            );
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

/// Takes in one valid event: counts it, publishes it on the live stream, and returns where it sits
/// in `container` (the frame or forwarded batch it arrived in) for the sinks.
fn accept(
    stream: &zmq::Socket,
    meta: &crate::validate::EventMeta<'_>,
    container: &[u8],
    counts: &mut BatchCounts,
) -> (String, i64, std::ops::Range<usize>) {
    counts.event(meta.channel, meta.host, meta.end);
    // PUB never blocks: a slow subscriber loses messages, collection goes on.
    let _ = stream.send(meta.channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
    let _ = stream.send(meta.bytes, zmq::DONTWAIT);
    let start = meta.bytes.as_ptr() as usize - container.as_ptr() as usize;
    (
        meta.channel.to_owned(),
        day_number(meta.start),
        start..start + meta.bytes.len(),
    )
}
