//! The collector (app intake): PULL frames, validate, publish to the live stream, hand batches
//! to the sinks. On a master it also serves the forward-in protocol ([`crate::receive`]) on the
//! same thread, since ZeroMQ sockets are single-threaded and both feed the same sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::batch::{Batch, EventSpan};
use crate::bell::Output;
use crate::config::DaemonConfig;
use crate::connections::{Side, Watch, Watcher};
use crate::ratelog::RateLimitedLog;
use crate::receive::ForwardIn;
use crate::runtime::Shared;
use crate::sockets::{self, BindError, Bound};
use crate::stats::{BatchCounts, DaemonStats};
use crate::stream::LiveStream;
use crate::validate::{Limits, split_frame};

/// Frames drained per wake-up before counts are merged and the shutdown flag is looked at.
const DRAIN_PER_WAKEUP: usize = 4096;
/// Counters reach STATUS at least every this many frames.
const MERGE_EVERY_FRAMES: usize = 64;
/// Frames the collect socket queues before pushing back on senders.
const COLLECT_HWM_FRAMES: i32 = 64;

/// The collect socket (PULL), bound with its limits, and the watch of its connections.
pub struct CollectSocket {
    /// The socket and where it is bound.
    pub bound: Bound,
    /// The watch of its connections, to run on a thread of its own.
    pub watcher: Watcher,
}

impl CollectSocket {
    /// Binds the collect socket at `config.collect`, watched from before the bind so that no
    /// connection goes unseen.
    pub fn build(shared: &Shared, config: &DaemonConfig) -> Result<CollectSocket, BindError> {
        let watch = Watch::of(Side::Collect, config, shared.stats.clone());
        let mut watcher = None;
        let bound = sockets::bind(&shared.ctx, zmq::PULL, "collect", &config.collect, |s| {
            // Memory is bounded by frames, not events: a frame may hold 64 KiB of events, so a
            // deep receive queue would be hundreds of MiB. Past this, back-pressure reaches the
            // senders.
            s.set_rcvhwm(COLLECT_HWM_FRAMES)?;
            s.set_maxmsgsize(config.max_message_bytes())?;
            watcher = Some(Watcher::attach(
                &shared.ctx,
                s,
                "inproc://ziggyd-collect-connections",
                watch,
                shared.shutdown.clone(),
            )?);
            Ok(())
        })?;
        let watcher = watcher
            .expect("attached before binding")
            .on_port(bound.port());
        Ok(CollectSocket { bound, watcher })
    }
}

/// The collector's sockets and where its output goes.
pub struct Collector {
    pull: zmq::Socket,
    pull_endpoint: String,
    stream: LiveStream,
    sinks: Vec<Output>,
    stats: Arc<DaemonStats>,
    limits: Limits,
    log_interval: Duration,
    shutdown: Arc<AtomicBool>,
    /// Forwarding daemons' batches arrive here (ROUTER), when this daemon writes files.
    forward_in: Option<ForwardIn>,
}

impl Collector {
    /// The collector of `collect`, publishing on `stream` and handing batches to `sinks`; with
    /// `forward_in`, it also serves forwarding daemons.
    pub fn new(
        shared: &Shared,
        config: &DaemonConfig,
        collect: Bound,
        stream: LiveStream,
        sinks: Vec<Output>,
        forward_in: Option<ForwardIn>,
    ) -> Collector {
        Collector {
            pull: collect.socket,
            pull_endpoint: collect.endpoint,
            stream,
            sinks,
            stats: shared.stats.clone(),
            limits: config.limits,
            log_interval: config.log_interval,
            shutdown: shared.shutdown.clone(),
            forward_in,
        }
    }

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
            self.stream.publish_batch(&accepted.batch);
            self.hand_to_sinks(accepted.batch);
        }
    }

    fn hand_to_sinks(&self, batch: Arc<Batch>) {
        for sink in &self.sinks {
            // Blocking here is deliberate back-pressure: a full sink slows intake (and ZeroMQ's
            // own queues) instead of losing events inside the daemon.
            sink.send(batch.clone());
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
        self.stream.refresh();
        let mut events = Vec::new();
        for item in split_frame(&frame, self.limits) {
            match item {
                Ok(meta) => {
                    // Published at once; the sinks get the whole frame's events.
                    self.stream.publish(meta.channel, meta.bytes);
                    counts.event(meta.channel, meta.host, meta.end);
                    events.push(EventSpan::locate(&meta, &frame));
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
        self.hand_to_sinks(Arc::new(Batch {
            frame,
            events,
            durable: None,
        }));
    }
}
