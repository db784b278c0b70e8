//! The collector: PULL frames, validate, publish to the live stream, hand batches to the sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::batch::{Batch, day_number};
use crate::ratelog::RateLimitedLog;
use crate::stats::{BatchCounts, DaemonStats};
use crate::validate::{Limits, split_frame};

/// Frames drained per wake-up before counts are merged and the shutdown flag is looked at.
const DRAIN_PER_WAKEUP: usize = 4096;

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
}

impl Collector {
    /// Runs until shutdown is requested, then drains what was already received and returns.
    pub fn run(self) {
        let mut log = RateLimitedLog::new(self.log_interval);
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                break;
            }
            match self.pull.poll(zmq::POLLIN, 100) {
                Ok(n) if n > 0 => {
                    self.drain(&mut log, DRAIN_PER_WAKEUP);
                }
                _ => {}
            }
        }
        // Stop accepting: no new connections, then write out what is already here.
        let _ = self.pull.unbind(&self.pull_endpoint);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.drain(&mut log, DRAIN_PER_WAKEUP) == DRAIN_PER_WAKEUP
        {}
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
                Ok(meta) => {
                    counts.event(meta.channel, meta.host, meta.end);
                    // PUB never blocks: a slow subscriber loses messages, collection goes on.
                    let _ = self
                        .stream
                        .send(meta.channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
                    let _ = self.stream.send(meta.bytes, zmq::DONTWAIT);
                    let start = meta.bytes.as_ptr() as usize - frame.as_ptr() as usize;
                    events.push((
                        meta.channel.to_owned(),
                        day_number(meta.start),
                        start..start + meta.bytes.len(),
                    ));
                }
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
        let batch = Arc::new(Batch { frame, events });
        for sink in &self.sinks {
            // Blocking here is deliberate back-pressure: a full sink slows intake (and ZeroMQ's
            // own queues) instead of losing events inside the daemon.
            let _ = sink.send(batch.clone());
        }
    }
}
