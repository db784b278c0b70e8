//! The collector (app intake): PULL frames, validate, publish to the live stream, hand batches
//! to the sinks. On a master it also serves the forward-in protocol ([`crate::receive`]) on the
//! same thread, since ZeroMQ sockets are single-threaded and both feed the same sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use ziggy_proto::day::Day;

use crate::batch::{Batch, locate};
use crate::ratelog::RateLimitedLog;
use crate::receive::ForwardIn;
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
    pub(crate) forward_in: Option<ForwardIn>,
}

impl Collector {
    /// Runs until shutdown is requested, then drains what was already received and returns.
    pub fn run(mut self) {
        let mut log = RateLimitedLog::new(self.log_interval);
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                break;
            }
            let wait = if self
                .forward_in
                .as_ref()
                .is_some_and(ForwardIn::awaiting_writer)
            {
                2
            } else {
                100
            };
            let (pull_ready, router_ready) = match &self.forward_in {
                Some(r) => {
                    let mut items = [
                        self.pull.as_poll_item(zmq::POLLIN),
                        r.socket().as_poll_item(zmq::POLLIN),
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
            if let Some(forward_in) = &mut self.forward_in {
                forward_in.confirm_durable(&self.stats, &mut log);
            }
        }
        // Stop accepting: no new connections, then write out what is already here.
        let _ = self.pull.unbind(&self.pull_endpoint);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.drain(&mut log, DRAIN_PER_WAKEUP) == DRAIN_PER_WAKEUP
        {}
    }

    /// Takes forwarded batches and hands the new events on (see [`ForwardIn::receive`]).
    fn receive_forwarded(&mut self, log: &mut RateLimitedLog) {
        let Some(forward_in) = &mut self.forward_in else {
            return;
        };
        for accepted in forward_in.receive(self.limits, &self.stats, log) {
            self.stats.merge(accepted.counts);
            publish(&self.stream, &accepted.batch);
            self.hand_to_sinks(accepted.batch);
        }
    }

    fn hand_to_sinks(&self, batch: Arc<Batch>) {
        for sink in &self.sinks {
            // Blocking here is deliberate back-pressure: a full sink slows intake (and ZeroMQ's
            // own queues) instead of losing events inside the daemon.
            let _ = sink.send(batch.clone());
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
        self.hand_to_sinks(Arc::new(Batch {
            frame,
            events,
            durable: None,
        }));
    }
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
    counts.event(meta.channel, meta.host, meta.end);
    locate(meta, container)
}

/// Publishes a batch's events on the live stream.
fn publish(stream: &zmq::Socket, batch: &Batch) {
    for (channel, _, bytes) in batch.iter() {
        let _ = stream.send(channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
        let _ = stream.send(bytes, zmq::DONTWAIT);
    }
}
