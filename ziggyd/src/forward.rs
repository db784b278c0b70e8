//! The forwarder of a local daemon (`--publish`): spool every valid event, send batches upstream,
//! drop them from the spool only when the upstream confirms they are durable there.
//!
//! The upstream's forward endpoint is learnt from its control endpoint (`SOCK_FORWARD`); after a
//! silence of `ack_timeout` the connection is dropped, the endpoint asked again (a restarted
//! upstream has a new port) and everything unconfirmed is resent from the spool. At most
//! `WINDOW` batches are in flight. RAM stays flat however long the upstream is away: the
//! backlog lives on disk.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

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

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The upstream's control endpoint, asked for its forward port.
    pub upstream_control: String,
    /// Spool fsync interval.
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
    in_flight: VecDeque<(u64, u64, Instant)>,
    next_send: u64,
    last_heard: Instant,
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
        let mut unsynced = false;
        let mut ages: VecDeque<(u64, Instant)> = VecDeque::new();
        let stats = self.stats.clone();
        let f = &stats.forward;
        f.enabled.store(true, Ordering::Relaxed);
        loop {
            // Intake: a bounded number of batches per turn so confirmations keep flowing.
            let mut disconnected = false;
            let idle = link.as_ref().is_none_or(|l| l.in_flight.is_empty());
            for i in 0..64 {
                let next = if i == 0 && idle && !unsynced {
                    self.batches
                        .recv_timeout(Duration::from_millis(20))
                        .map_err(|e| match e {
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
                                    log.log("spool", || format!("cannot append to the spool: {e}"))
                                }
                            }
                        }
                        unsynced = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if unsynced && (last_sync.elapsed() >= self.config.sync_interval || disconnected) {
                match self.spool.sync() {
                    Ok(_) => f.spooled.store(appended, Ordering::Relaxed),
                    Err(e) => log.log("sync", || format!("cannot fsync the spool: {e}")),
                }
                unsynced = false;
                last_sync = Instant::now();
            }
            if disconnected && self.shutdown.load(Ordering::Acquire) {
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
                self.send_window(l, &mut log);
                self.read_acks(l, &mut log);
                let refused = self.watch_handshakes(l, &mut log);
                let silent = l.last_heard.elapsed() > self.config.ack_timeout;
                if refused {
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
            f.spool_events.store(self.spool.depth(), Ordering::Relaxed);
            f.spooled_seq
                .store(self.spool.synced_seq(), Ordering::Relaxed);
            f.spool_bytes.store(self.spool.bytes(), Ordering::Relaxed);
            f.dropped.store(self.spool.dropped, Ordering::Relaxed);
        }
        let _ = self.spool.sync();
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
        socket.connect(endpoint).map_err(err)?;
        Ok(Link {
            socket,
            monitor,
            in_flight: VecDeque::new(),
            next_send: self.spool.acked_seq() + 1,
            last_heard: Instant::now(),
        })
    }

    fn send_window(&mut self, link: &mut Link, log: &mut RateLimitedLog) {
        while link.in_flight.len() < WINDOW {
            let batch = match self
                .spool
                .read_batch(link.next_send, BATCH_EVENTS, BATCH_BYTES)
            {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    log.log("read", || format!("cannot read the spool: {e}"));
                    break;
                }
            };
            let (first, last, payload) = batch;
            let sent = link.socket.send_multipart(
                [
                    &b"ZGB1"[..],
                    self.spool.sender_id().as_bytes(),
                    &first.to_le_bytes(),
                    &payload,
                ],
                zmq::DONTWAIT,
            );
            if sent.is_err() {
                break;
            }
            if link.in_flight.is_empty() {
                link.last_heard = Instant::now();
            }
            link.in_flight.push_back((first, last, Instant::now()));
            link.next_send = last + 1;
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

    fn read_acks(&mut self, link: &mut Link, log: &mut RateLimitedLog) {
        let wait = if link.in_flight.is_empty() { 0 } else { 20 };
        if link.socket.poll(zmq::POLLIN, wait).unwrap_or(0) == 0 {
            return;
        }
        // Every confirmation waiting is read first: one ledger write covers them all.
        let mut highest = None;
        while let Ok(parts) = link.socket.recv_multipart(zmq::DONTWAIT) {
            let [tag, seq] = parts.as_slice() else {
                continue;
            };
            if tag != b"ACK1" || seq.len() != 8 {
                continue;
            }
            link.last_heard = Instant::now();
            let seq = u64::from_le_bytes(seq[..].try_into().expect("8 bytes"));
            highest = highest.max(Some(seq));
        }
        let Some(seq) = highest else {
            return;
        };
        let before = self.spool.acked_seq();
        if let Err(e) = self.spool.ack(seq) {
            log.log("ledger", || format!("cannot record a confirmation: {e}"));
            return;
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
    }
}
