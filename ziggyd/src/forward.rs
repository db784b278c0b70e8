//! The forwarder of a local daemon (`--publish`): spool every valid event, send batches upstream,
//! drop them from the spool only when the upstream confirms they are durable there.
//!
//! Spooling: events are appended to the spool's memory and written + fsynced every
//! `sync_interval`; only synced events are sent. A failed write (disk full, file size limit) is
//! counted (`spool_write_errors`), logged at most every 10 s ("disk full" when it is), and
//! retried every `sync_interval` whether or not new input comes; while more than
//! [`crate::spool::PENDING_BOUND`] bytes wait, no input is taken, so the collector blocks and
//! ZeroMQ's high-water marks push back to the applications (which count their drops): nothing
//! is dropped here unseen.
//!
//! Sending: the upstream's forward endpoint is learnt from its control endpoint
//! (`SOCK_FORWARD`); at most `WINDOW` batches are in flight. After a silence of `ack_timeout` the
//! connection is dropped, the endpoint asked again (a restarted upstream has a new port) and
//! everything unconfirmed is resent from the spool. RAM stays flat however long the upstream is
//! away: the backlog lives on disk.
//!
//! Answers: `ACK1 seq` confirms everything up to `seq`; a seq beyond what was sent confirms only
//! what was sent (counted in `acks_beyond_sent`). `NAK1 mark reason` refuses a batch
//! (`refused`): `write_failed: …` (the upstream cannot write) keeps everything spooled, pauses
//! 1 s, doubling up to 30 s until the next ACK, then resends from the confirmed mark on the
//! same connection; `seq_jump` or `sender_key` (the upstream will not take this sender id's
//! numbering) starts a new sender id ([`Spool::new_epoch`], logged) and resends everything
//! unconfirmed under it, on a new socket so that answers meant for the old id are not taken for
//! the new one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use ziggy_proto::forward::{self as protocol, Refusal, Reply};

use crate::batch::Batch;
use crate::client::announced_endpoint;
use crate::ratelog::RateLimitedLog;
use crate::spool::Spool;
use crate::stats::DaemonStats;

const WINDOW: usize = 8;
const BATCH_EVENTS: usize = 2_000;
const BATCH_BYTES: usize = 1 << 20;
/// Pause before connecting again after a refused handshake (the upstream re-reads its allowed
/// keys at every connection).
const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);
/// First pause after the upstream refuses a batch; it doubles at each refusal up to
/// `BACKOFF_MAX`, and an ACK resets it.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest wait for input in one turn (confirmations and timers are looked at in between).
const TURN: Duration = Duration::from_millis(20);
/// At shutdown, how long a failing spool write is retried before its events are given up.
const SHUTDOWN_SYNC_RETRY: Duration = Duration::from_secs(5);

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The upstream's control endpoint, asked for its forward port.
    pub upstream_control: String,
    /// Spool fsync interval (and retry interval of a failed spool write).
    pub sync_interval: Duration,
    /// Resend after this long without a confirmation.
    pub ack_timeout: Duration,
    /// CURVE towards the upstream.
    pub curve: Option<crate::config::CurveClient>,
}

/// The forwarder thread's state.
pub struct Forwarder {
    pub(crate) spool: Spool,
    pub(crate) batches: Receiver<Arc<Batch>>,
    pub(crate) config: ForwardConfig,
    pub(crate) stats: Arc<DaemonStats>,
    pub(crate) shutdown: Arc<AtomicBool>,
}

struct Link {
    socket: zmq::Socket,
    /// Handshake failures of `socket`.
    monitor: zmq::Socket,
    /// Where `socket` is connected (a new sender id reconnects there).
    endpoint: String,
    in_flight: VecDeque<(u64, u64, Instant)>,
    next_send: u64,
    last_heard: Instant,
}

/// The send path's state across links.
struct Flow {
    /// Highest local seq this process sent under the current sender id: a confirmation is never
    /// taken beyond it, so nothing unsent is ever confirmed (after a restart that may hold back
    /// a confirmation of what the previous run sent; it is sent again and confirmed again).
    sent_max: u64,
    /// The pause after the last refusal; zero once an ACK came.
    backoff: Duration,
    /// No batch goes out before this.
    hold_until: Option<Instant>,
    /// What was on disk when this run started (or its sender id did): an earlier run may have
    /// sent up to here, so a confirmation up to here is not a stranger's.
    inherited: u64,
    /// Largest batch sent, in bytes: halved each time the upstream says `too_large` (its
    /// `--max-frame-bytes` is smaller), down to one event per batch.
    batch_bytes: usize,
}

impl Flow {
    fn held(&self) -> bool {
        self.hold_until.is_some_and(|t| Instant::now() < t)
    }

    /// Starts the pause after a refusal and returns it; refusals of other batches of the same
    /// window, arriving during the pause, neither lengthen nor restart it.
    fn pause(&mut self) -> Duration {
        if let Some(left) = self
            .hold_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
        {
            return left;
        }
        self.backoff = if self.backoff.is_zero() {
            BACKOFF_MIN
        } else {
            (self.backoff * 2).min(BACKOFF_MAX)
        };
        self.hold_until = Some(Instant::now() + self.backoff);
        self.backoff
    }
}

/// Asks the upstream's control endpoint for its forward port on a thread of its own: an
/// unreachable upstream costs a 300 ms timeout per try, which must not stall spooling (a stalled
/// forwarder fills the sink queue and stops the collector).
struct Discovery {
    ask: crossbeam_channel::Sender<()>,
    answers: Receiver<Result<String, String>>,
    asking: bool,
}

impl Discovery {
    fn start(upstream_control: String) -> Discovery {
        let (ask, asks) = crossbeam_channel::bounded::<()>(1);
        let (answer, answers) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("ziggyd-discover".into())
            .spawn(move || {
                for () in asks {
                    let found = announced_endpoint(
                        &upstream_control,
                        "SOCK_FORWARD",
                        Duration::from_millis(300),
                    )
                    .map_err(|e| e.to_string());
                    if answer.send(found).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the discovery thread");
        Discovery {
            ask,
            answers,
            asking: false,
        }
    }

    /// Starts a lookup unless one is running.
    fn ask(&mut self) {
        if !self.asking {
            self.asking = self.ask.send(()).is_ok();
        }
    }

    /// The lookup's result, once it is there.
    fn answer(&mut self) -> Option<Result<String, String>> {
        let answer = self.answers.try_recv().ok()?;
        self.asking = false;
        Some(answer)
    }
}

impl Forwarder {
    /// Runs until the collector is gone (after shutdown); leaves the spool synced.
    pub fn run(mut self) {
        let ctx = zmq::Context::new();
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        let mut link: Option<Link> = None;
        let mut next_discovery = Instant::now();
        let mut appended = 0u64;
        let mut discovery = Discovery::start(self.config.upstream_control.clone());
        let mut last_sync = Instant::now();
        let mut ages: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut flow = Flow {
            sent_max: self.spool.acked_seq(),
            backoff: Duration::ZERO,
            hold_until: None,
            inherited: self.spool.synced_seq(),
            batch_bytes: BATCH_BYTES,
        };
        let stats = self.stats.clone();
        let f = &stats.forward;
        f.enabled.store(true, Ordering::Relaxed);
        loop {
            let mut disconnected = false;
            let idle = link.as_ref().is_none_or(|l| l.in_flight.is_empty());
            let shutting_down = self.shutdown.load(Ordering::Acquire);
            let until_sync = if self.spool.pending_events() > 0 {
                self.config
                    .sync_interval
                    .saturating_sub(last_sync.elapsed())
                    .min(TURN)
            } else {
                TURN
            };
            // Back-pressure: while too much waits for the disk, batches stay in the channel (the
            // collector blocks, ZeroMQ pushes back to the apps). At shutdown everything is taken
            // in, so that the collector can finish.
            if !self.spool.over_bound() || shutting_down {
                // Intake: a bounded number of batches per turn so confirmations keep flowing.
                for i in 0..64 {
                    let next = if i == 0 && idle {
                        self.batches.recv_timeout(until_sync).map_err(|e| match e {
                            RecvTimeoutError::Timeout => TryRecvError::Empty,
                            RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                        })
                    } else {
                        self.batches.try_recv()
                    };
                    match next {
                        Ok(batch) => {
                            for (_, _, bytes) in batch.iter() {
                                match self.spool.append(bytes) {
                                    Ok(seq) => {
                                        appended += 1;
                                        if ages.back().is_none_or(|(_, t)| {
                                            t.elapsed() > Duration::from_millis(100)
                                        }) {
                                            ages.push_back((seq, Instant::now()));
                                        }
                                    }
                                    Err(e) => {
                                        log.log("spool", || format!("cannot spool an event: {e}"))
                                    }
                                }
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            } else if idle {
                std::thread::sleep(until_sync);
            }
            // Also with no new input: a write that failed is retried on this timer.
            if self.spool.pending_events() > 0
                && (last_sync.elapsed() >= self.config.sync_interval || disconnected)
            {
                self.sync_spool(&mut log);
                last_sync = Instant::now();
            }
            f.spooled.store(
                appended.saturating_sub(self.spool.pending_events()),
                Ordering::Relaxed,
            );
            if disconnected && shutting_down {
                break;
            }

            if link.is_none() && Instant::now() >= next_discovery {
                discovery.ask();
            }
            if let Some(answer) = discovery.answer() {
                match answer.and_then(|endpoint| self.connect(&ctx, &endpoint)) {
                    Ok(l) => link = Some(l),
                    Err(e) => {
                        log.log("upstream", || {
                            format!("upstream not reachable, spooling: {e}")
                        });
                        next_discovery = Instant::now() + Duration::from_millis(500);
                    }
                }
            }
            if let Some(l) = &mut link {
                if !flow.held() {
                    self.send_window(l, &mut flow, &mut log);
                }
                let new_sender_id = self.read_replies(l, &mut flow, &mut log);
                let refused = self.watch_handshakes(l, &mut log);
                let silent = l.last_heard.elapsed() > self.config.ack_timeout;
                if let Some(reason) = new_sender_id {
                    let endpoint = l.endpoint.clone();
                    self.start_epoch(&reason, &mut flow, &mut log);
                    // A new socket: answers still on their way for the old sender id must not be
                    // taken for the new one (an ACK does not name the id).
                    link = match self.connect(&ctx, &endpoint) {
                        Ok(l) => Some(l),
                        Err(e) => {
                            log.log("upstream", || format!("cannot reconnect upstream: {e}"));
                            next_discovery = Instant::now();
                            None
                        }
                    };
                } else if refused {
                    // Unconfirmed batches go again on the next link.
                    let resend = (l.next_send - 1).saturating_sub(self.spool.acked_seq());
                    f.resent.fetch_add(resend, Ordering::Relaxed);
                    link = None;
                    next_discovery = Instant::now() + HANDSHAKE_RETRY;
                } else if !l.in_flight.is_empty() && silent {
                    let resend = (l.next_send - 1).saturating_sub(self.spool.acked_seq());
                    f.resent.fetch_add(resend, Ordering::Relaxed);
                    log.log("timeout", || {
                        "no confirmation from upstream; reconnecting and resending".into()
                    });
                    link = None;
                    next_discovery = Instant::now();
                }
            }
            f.connected.store(link.is_some(), Ordering::Relaxed);
            while ages
                .front()
                .is_some_and(|(seq, _)| *seq <= self.spool.acked_seq())
            {
                ages.pop_front();
            }
            let oldest = if self.spool.depth() == 0 {
                0
            } else {
                ages.front()
                    .map_or(0, |(_, t)| t.elapsed().as_millis() as u64)
            };
            f.oldest_unconfirmed_ms.store(oldest, Ordering::Relaxed);
            self.publish_gauges();
        }
        self.final_sync(&mut log);
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        let f = &self.stats.forward;
        f.spool_events.store(self.spool.depth(), Ordering::Relaxed);
        f.spooled_seq
            .store(self.spool.synced_seq(), Ordering::Relaxed);
        f.spool_bytes.store(self.spool.bytes(), Ordering::Relaxed);
        f.spool_pending
            .store(self.spool.pending_events(), Ordering::Relaxed);
        f.spool_pending_bytes
            .store(self.spool.pending_bytes() as u64, Ordering::Relaxed);
        f.dropped.store(self.spool.dropped, Ordering::Relaxed);
    }

    /// Writes what is pending to the spool; true if it all got there.
    fn sync_spool(&mut self, log: &mut RateLimitedLog) -> bool {
        let Err(e) = self.spool.sync() else {
            return true;
        };
        self.stats
            .forward
            .spool_write_errors
            .fetch_add(1, Ordering::Relaxed);
        let (events, bytes) = (self.spool.pending_events(), self.spool.pending_bytes());
        let (dir, every) = (self.spool.dir().display(), self.config.sync_interval);
        log.log("spool-write", || {
            format!(
                "cannot write the spool in {dir}: {}; {events} events ({bytes} bytes) wait in \
                 memory and the write is retried every {every:?}; past {} MiB no more input is \
                 taken (the applications' queues fill and count their drops)",
                crate::files::describe_io_error(&e),
                crate::spool::PENDING_BOUND >> 20
            )
        });
        false
    }

    /// At shutdown: retries a failing spool write for a while, then says what is lost.
    fn final_sync(&mut self, log: &mut RateLimitedLog) {
        let deadline = Instant::now() + SHUTDOWN_SYNC_RETRY;
        while self.spool.pending_events() > 0 && !self.sync_spool(log) {
            if Instant::now() >= deadline {
                eprintln!(
                    "ziggyd: {} events received were never written to the spool in {} and are \
                     lost at shutdown",
                    self.spool.pending_events(),
                    self.spool.dir().display()
                );
                return;
            }
            std::thread::sleep(self.config.sync_interval.min(Duration::from_millis(200)));
        }
    }

    /// Starts a new sender id after the upstream refused the old one's numbering.
    fn start_epoch(&mut self, reason: &str, flow: &mut Flow, log: &mut RateLimitedLog) {
        let resent = flow.sent_max.saturating_sub(self.spool.acked_seq());
        match self.spool.new_epoch(reason) {
            Ok(epoch) => {
                let f = &self.stats.forward;
                f.epochs.fetch_add(1, Ordering::Relaxed);
                f.resent.fetch_add(resent, Ordering::Relaxed);
                eprintln!(
                    "ziggyd: spool {}: new sender id {} (was {}): the upstream answered {:?}; \
                     {} unconfirmed events go again under the new id",
                    self.spool.dir().display(),
                    epoch.new_id,
                    epoch.old_id.as_deref().unwrap_or("none"),
                    epoch.reason,
                    epoch.resent
                );
                flow.sent_max = self.spool.acked_seq();
                // Nothing was ever sent under the new id.
                flow.inherited = self.spool.acked_seq();
            }
            Err(e) => log.log("epoch", || {
                format!("cannot start a new sender id after the upstream's refusal ({reason}): {e}")
            }),
        }
        // Not at once: an upstream refusing every id must not be hammered.
        flow.pause();
    }

    fn connect(&self, ctx: &zmq::Context, endpoint: &str) -> Result<Link, String> {
        let err = |e: zmq::Error| e.to_string();
        let socket = ctx.socket(zmq::DEALER).map_err(err)?;
        socket.set_linger(0).map_err(err)?;
        socket.set_sndhwm(WINDOW as i32 * 2).map_err(err)?;
        if let Some(curve) = &self.config.curve {
            socket
                .set_curve_serverkey(&curve.upstream_public)
                .map_err(err)?;
            socket
                .set_curve_publickey(&curve.keys.public)
                .map_err(err)?;
            socket
                .set_curve_secretkey(&curve.keys.secret)
                .map_err(err)?;
        }
        // A refused key, or CURVE on one side only, shows only as failed handshakes (the
        // connection is retried silently); watch them to tell the operator.
        static LINKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let at = format!(
            "inproc://ziggyd-forward-link-{}",
            LINKS.fetch_add(1, Ordering::Relaxed)
        );
        let events = zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
            | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32;
        socket.monitor(&at, events).map_err(err)?;
        let monitor = ctx.socket(zmq::PAIR).map_err(err)?;
        monitor.set_linger(0).map_err(err)?;
        monitor.connect(&at).map_err(err)?;
        crate::endpoint::connect(&socket, endpoint)?;
        Ok(Link {
            socket,
            monitor,
            endpoint: endpoint.to_owned(),
            in_flight: VecDeque::new(),
            next_send: self.spool.acked_seq() + 1,
            last_heard: Instant::now(),
        })
    }

    fn send_window(&mut self, link: &mut Link, flow: &mut Flow, log: &mut RateLimitedLog) {
        while link.in_flight.len() < WINDOW {
            let batch = match self
                .spool
                .read_batch(link.next_send, BATCH_EVENTS, flow.batch_bytes)
            {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    log.log("read", || format!("cannot read the spool: {e}"));
                    break;
                }
            };
            let (first, last, payload) = batch;
            let batch = protocol::Batch {
                sender: self.spool.sender_id(),
                first_seq: self.spool.wire_seq(first),
                payload: &payload,
            };
            let sent = link.socket.send_multipart(batch.frames(), zmq::DONTWAIT);
            if sent.is_err() {
                break;
            }
            if link.in_flight.is_empty() {
                link.last_heard = Instant::now();
            }
            link.in_flight.push_back((first, last, Instant::now()));
            link.next_send = last + 1;
            flow.sent_max = flow.sent_max.max(last);
            self.stats
                .forward
                .forwarded
                .fetch_add(last - first + 1, Ordering::Relaxed);
        }
    }

    /// Reports failed handshakes; true if one failed (libzmq does not retry a refused CURVE
    /// handshake by itself, so the caller reconnects).
    fn watch_handshakes(&self, link: &Link, log: &mut RateLimitedLog) -> bool {
        let mut failed = false;
        while let Some((code, value)) = crate::gate::recv_monitor_event(&link.monitor) {
            failed = true;
            self.stats
                .forward
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            let curve = self.config.curve.as_ref();
            log.log("handshake", || {
                if curve.is_none() {
                    "handshake with the upstream failed: does it require CURVE? (then give \
                     --curve-secret-key and --curve-master-key)"
                        .into()
                } else if code == zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as u16 {
                    let public = curve.map(|c| crate::curve::z85(&c.keys.public));
                    format!(
                        "the upstream refused this daemon's public key {} (ZAP status \
                         {value}): add this daemon's .public file to its --curve-allow directory",
                        public.unwrap_or_default()
                    )
                } else {
                    "CURVE handshake with the upstream failed: is --curve-master-key the \
                     upstream's public key, and does it run with --curve-secret-key?"
                        .into()
                }
            });
        }
        failed
    }

    /// Reads the upstream's answers: confirmations (`ACK1`) and refusals (`NAK1`). Returns the
    /// reason when a refusal asks for a new sender id.
    fn read_replies(
        &mut self,
        link: &mut Link,
        flow: &mut Flow,
        log: &mut RateLimitedLog,
    ) -> Option<String> {
        let wait = if link.in_flight.is_empty() { 0 } else { 20 };
        if link.socket.poll(zmq::POLLIN, wait).unwrap_or(0) == 0 {
            return None;
        }
        // Every answer waiting is read first: one ledger write covers all confirmations.
        let mut highest = None;
        let mut refusals = Vec::new();
        while let Ok(parts) = link.socket.recv_multipart(zmq::DONTWAIT) {
            match Reply::parse(&parts) {
                Some(Reply::Ack { seq }) => highest = highest.max(Some(seq)),
                Some(Reply::Nak { mark, reason }) => refusals.push((mark, reason)),
                None => {
                    log.log("reply", || {
                        "ignored an answer from the upstream that is neither ACK1 nor NAK1".into()
                    });
                    continue;
                }
            }
            link.last_heard = Instant::now();
        }
        let mut new_sender_id = None;
        if let Some(seq) = highest {
            flow.backoff = Duration::ZERO;
            if self.confirm(link, flow, seq, log) {
                new_sender_id = Some(format!(
                    "the upstream confirmed seq {seq}, beyond anything this spool ever held under \
                     this sender id: another peer has used it"
                ));
            }
        }
        for (mark, reason) in refusals {
            self.stats.forward.refused.fetch_add(1, Ordering::Relaxed);
            if Refusal::of(&reason).needs_new_sender_id() {
                new_sender_id.get_or_insert(reason);
                continue;
            }
            if Refusal::of(&reason) == Refusal::TooLarge {
                let first_unconfirmed = self.spool.acked_seq() + 1;
                let single = link
                    .in_flight
                    .front()
                    .is_some_and(|&(first, last, _)| first == last && first == first_unconfirmed);
                if flow.batch_bytes > 1 {
                    flow.batch_bytes /= 2;
                } else if single {
                    // One event the upstream will never take: give it up, counted, so the
                    // rest can go.
                    self.stats
                        .forward
                        .refused_events
                        .fetch_add(1, Ordering::Relaxed);
                    log.log("too_large", || {
                        format!(
                            "the upstream refuses event {} as too large ({reason}); it is dropped",
                            self.spool.wire_seq(first_unconfirmed)
                        )
                    });
                    flow.sent_max = flow.sent_max.max(first_unconfirmed);
                    let _ = self.spool.ack(first_unconfirmed);
                }
            }
            // The mark is the upstream's confirmed position: as good as an ACK.
            self.confirm(link, flow, mark, log);
            let pause = flow.pause();
            let acked = self.spool.acked_seq();
            let resend = (link.next_send - 1).saturating_sub(acked);
            self.stats
                .forward
                .resent
                .fetch_add(resend, Ordering::Relaxed);
            link.in_flight.clear();
            link.next_send = acked + 1;
            log.log("refused", || {
                format!(
                    "the upstream refused a batch ({reason}); everything stays in the spool and \
                     is sent again from seq {} in {pause:.1?}",
                    self.spool.wire_seq(acked + 1)
                )
            });
        }
        new_sender_id
    }

    /// Takes the upstream's confirmation of everything up to `wire` (its numbering), never
    /// beyond what was sent under the current sender id.
    ///
    /// Returns true when the confirmation goes beyond anything this spool ever held under the
    /// sender id: another peer has used the id, and a new one must start.
    fn confirm(
        &mut self,
        link: &mut Link,
        flow: &Flow,
        wire: u64,
        log: &mut RateLimitedLog,
    ) -> bool {
        // Beyond anything sent under this id (by this run, or by an earlier one, which may have
        // sent all that is on disk): another peer used the id. Nothing is confirmed then: the
        // events it "confirms" were never written.
        let hijacked = self
            .spool
            .local_seq(wire)
            .is_none_or(|seq| seq > flow.sent_max.max(flow.inherited));
        if hijacked {
            self.stats
                .forward
                .acks_beyond_sent
                .fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let seq = match self.spool.local_seq(wire) {
            Some(seq) if seq <= flow.sent_max => seq,
            _ => {
                self.stats
                    .forward
                    .acks_beyond_sent
                    .fetch_add(1, Ordering::Relaxed);
                let sent = self.spool.wire_seq(flow.sent_max);
                log.log("ack-beyond", || {
                    format!(
                        "the upstream confirmed seq {wire} but this run sent only up to {sent} \
                         under this sender id: taken as confirming those (after a restart, the \
                         previous run may have sent more)"
                    )
                });
                flow.sent_max
            }
        };
        let before = self.spool.acked_seq();
        if let Err(e) = self.spool.ack(seq) {
            log.log("ledger", || format!("cannot record a confirmation: {e}"));
            return hijacked;
        }
        let after = self.spool.acked_seq();
        self.stats
            .forward
            .confirmed
            .fetch_add(after.saturating_sub(before), Ordering::Relaxed);
        while link
            .in_flight
            .front()
            .is_some_and(|&(_, last, _)| last <= after)
        {
            link.in_flight.pop_front();
        }
        hijacked
    }
}
