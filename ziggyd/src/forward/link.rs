//! The forwarder's connection upstream: finding the upstream's forward endpoint, connecting (with
//! CURVE when configured), sending the window of batches, and telling the operator why a
//! handshake failed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use ziggy_proto::client::{ClientError, announced_endpoint};
use ziggy_proto::endpoint::EndpointError;
use ziggy_proto::forward as protocol;

use super::Forwarder;
use crate::bell::Input;
use crate::sockets;
use crate::spool::SpooledBatch;

/// Batches in flight at most. The window must cover the upstream's round trip (its fsyncs and
/// ledger write) at full speed: 8 batches held a local daemon to ~60% of what its upstream could
/// take (`bench/e2e.sh`).
pub(super) const WINDOW: usize = 32;
/// Bytes in flight at most (batches of large events): what the upstream may hold for this sender.
const WINDOW_BYTES: usize = 16 << 20;
/// Events per batch at most.
const BATCH_EVENTS: usize = 2_000;
/// Events a sender has in flight at most: a full window of full batches. A master lets a known
/// sender's numbering jump twice this ([`crate::receive::MAX_SEQ_JUMP`]).
pub(crate) const MAX_EVENTS_IN_FLIGHT: u64 = (WINDOW * BATCH_EVENTS) as u64;
/// Bytes per batch at most, until the upstream asks for smaller ones.
pub(super) const BATCH_BYTES: usize = 1 << 20;
/// How long one lookup of the upstream's forward endpoint waits for an answer.
const DISCOVERY_TIMEOUT: Duration = Duration::from_millis(300);

/// Why the forwarder has no link upstream.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    /// The upstream's control endpoint did not announce a forward endpoint.
    #[error(transparent)]
    Discovery(#[from] ClientError),
    /// The announced endpoint is malformed or does not resolve.
    #[error(transparent)]
    Address(#[from] EndpointError),
    /// ZeroMQ refused to set up the socket.
    #[error(transparent)]
    Socket(#[from] zmq::Error),
    /// ZeroMQ refused to connect.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The resolved endpoint.
        endpoint: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
}

/// A batch sent and not yet confirmed.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    /// Its first local seq.
    pub(super) first: u64,
    /// Its last local seq.
    pub(super) last: u64,
    /// Its events' bytes.
    pub(super) bytes: usize,
}

/// How batches reach the upstream.
enum Wire {
    /// A DEALER connected to a master's forward socket, and the monitor of its handshakes.
    Daemon {
        socket: zmq::Socket,
        monitor: zmq::Socket,
    },
    /// A NATS JetStream stream, through the link's own thread, answering as a master would.
    #[cfg(feature = "jetstream")]
    JetStream(std::sync::Arc<crate::jetstream::publish::JetStreamLink>),
}

/// One connection to the upstream's forward socket (or one run of batches through JetStream).
pub(super) struct Link {
    wire: Wire,
    /// Where the socket is connected (a new sender id reconnects there).
    pub(super) endpoint: String,
    /// Sent and not yet confirmed, oldest first.
    pub(super) in_flight: VecDeque<InFlight>,
    /// The local seq of the next event to send.
    pub(super) next_send: u64,
    /// When the upstream last answered (or the first batch of a window went out).
    pub(super) last_heard: Instant,
}

impl Link {
    /// Whether batches wait for an answer.
    pub(super) fn awaiting_answers(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The last local seq sent on this link.
    pub(super) fn sent_up_to(&self) -> u64 {
        self.next_send - 1
    }

    /// Waits up to `wait` for the upstream's answers, or less if `input` gets a batch; then
    /// reads every answer waiting.
    pub(super) fn answers(&self, wait: Duration, input: Option<&Input>) -> Vec<Vec<Vec<u8>>> {
        let mut answers = Vec::new();
        match &self.wire {
            Wire::Daemon { socket, .. } => {
                match input {
                    Some(input) => {
                        input.wait_with(wait, |wait| {
                            let mut items = [socket.as_poll_item(zmq::POLLIN), input.poll_item()];
                            let _ = zmq::poll(&mut items, wait.as_millis() as i64);
                        });
                    }
                    // No input is taken now: a waiting batch must not cut the wait short.
                    None if !wait.is_zero() => {
                        let _ = socket.poll(zmq::POLLIN, wait.as_millis() as i64);
                    }
                    None => {}
                }
                while let Ok(parts) = socket.recv_multipart(zmq::DONTWAIT) {
                    answers.push(parts);
                }
            }
            #[cfg(feature = "jetstream")]
            Wire::JetStream(js) => {
                if !wait.is_zero() && input.is_none_or(|i| i.batches.is_empty()) {
                    let mut either = crossbeam_channel::Select::new();
                    either.recv(js.replies());
                    if let Some(input) = input {
                        either.recv(&input.batches);
                    }
                    let _ = either.ready_timeout(wait);
                }
                while let Some(reply) = js.try_recv() {
                    answers.push(reply.frames());
                }
            }
        }
        answers
    }

    /// Sends one batch; false when it cannot go now (the socket's queue is full).
    fn send(&self, batch: &protocol::Batch<'_>) -> bool {
        match &self.wire {
            Wire::Daemon { socket, .. } => batch.send(socket, zmq::DONTWAIT).is_ok(),
            #[cfg(feature = "jetstream")]
            Wire::JetStream(js) => {
                js.send(batch);
                true
            }
        }
    }

    /// Whether the upstream is reachable now, as far as the link can tell.
    pub(super) fn connected(&self) -> bool {
        match &self.wire {
            Wire::Daemon { .. } => true,
            #[cfg(feature = "jetstream")]
            Wire::JetStream(js) => js.connected(),
        }
    }

    /// The monitor of the socket's handshakes, for a link to a daemon.
    fn monitor(&self) -> Option<&zmq::Socket> {
        match &self.wire {
            Wire::Daemon { monitor, .. } => Some(monitor),
            #[cfg(feature = "jetstream")]
            Wire::JetStream(_) => None,
        }
    }
}

/// Asks the upstream's control endpoint for its forward port on a thread of its own: an
/// unreachable upstream costs a 300 ms timeout per try, which must not stall spooling (a stalled
/// forwarder fills the sink queue and stops the collector).
pub(super) struct Discovery {
    upstream_control: String,
    /// The lookup thread, once started (at the first lookup).
    thread: Option<LookupThread>,
    asking: bool,
}

/// The forwarder's ends of the lookup thread's channels.
struct LookupThread {
    ask: Sender<()>,
    answers: Receiver<Result<String, ClientError>>,
}

impl LookupThread {
    fn spawn(upstream_control: String) -> LookupThread {
        let (ask, asks) = crossbeam_channel::bounded::<()>(1);
        let (answer, answers) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("ziggyd-discover".into())
            .spawn(move || {
                for () in asks {
                    let found =
                        announced_endpoint(&upstream_control, "SOCK_FORWARD", DISCOVERY_TIMEOUT);
                    if answer.send(found).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the discovery thread");
        LookupThread { ask, answers }
    }
}

impl Discovery {
    /// Lookups of `upstream_control`'s forward endpoint.
    pub(super) fn new(upstream_control: String) -> Discovery {
        Discovery {
            upstream_control,
            thread: None,
            asking: false,
        }
    }

    /// Starts a lookup unless one is running.
    pub(super) fn ask(&mut self) {
        if self.asking {
            return;
        }
        let upstream_control = &self.upstream_control;
        let thread = self
            .thread
            .get_or_insert_with(|| LookupThread::spawn(upstream_control.clone()));
        self.asking = thread.ask.send(()).is_ok();
    }

    /// The lookup's result, once it is there.
    pub(super) fn answer(&mut self) -> Option<Result<String, ClientError>> {
        let answer = self.thread.as_ref()?.answers.try_recv().ok()?;
        self.asking = false;
        Some(answer)
    }
}

impl Forwarder {
    /// A new run of batches through the JetStream link, numbering from the first unconfirmed
    /// event.
    #[cfg(feature = "jetstream")]
    pub(super) fn over_jetstream(
        &self,
        js: std::sync::Arc<crate::jetstream::publish::JetStreamLink>,
    ) -> Link {
        Link {
            wire: Wire::JetStream(js),
            endpoint: String::new(),
            in_flight: VecDeque::new(),
            next_send: self.spool.acked_seq() + 1,
            last_heard: Instant::now(),
        }
    }

    /// A new link to `endpoint`, numbering from the first unconfirmed event.
    pub(super) fn connect(&self, endpoint: &str) -> Result<Link, LinkError> {
        let socket = self.ctx.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        socket.set_sndhwm(WINDOW as i32 * 2)?;
        if let Some(curve) = &self.config.curve {
            socket.set_curve_serverkey(&curve.upstream_public)?;
            socket.set_curve_publickey(&curve.keys.public)?;
            socket.set_curve_secretkey(&curve.keys.secret)?;
        }
        // A refused key, or CURVE on one side only, shows only as failed handshakes (the
        // connection is retried silently); watch them to tell the operator.
        let at = sockets::unique_inproc("ziggyd-forward-link");
        let monitor = sockets::monitor(&self.ctx, &socket, &at, sockets::HANDSHAKE_FAILURES)?;
        let resolved = crate::endpoint::resolve(endpoint)?;
        if resolved.ipv6 {
            socket.set_ipv6(true)?;
        }
        socket
            .connect(&resolved.endpoint)
            .map_err(|source| LinkError::Connect {
                endpoint: resolved.endpoint.clone(),
                source,
            })?;
        Ok(Link {
            wire: Wire::Daemon { socket, monitor },
            endpoint: endpoint.to_owned(),
            in_flight: VecDeque::new(),
            next_send: self.spool.acked_seq() + 1,
            last_heard: Instant::now(),
        })
    }

    /// Sends batches from the spool until the window is full or nothing synced is left.
    pub(super) fn send_window(&mut self, link: &mut Link) {
        while link.in_flight.len() < WINDOW
            && link.in_flight.iter().map(|b| b.bytes).sum::<usize>() < WINDOW_BYTES
        {
            let batch =
                match self
                    .spool
                    .read_batch(link.next_send, BATCH_EVENTS, self.flow.batch_bytes)
                {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        self.log
                            .log("read", || format!("cannot read the spool: {e}"));
                        break;
                    }
                };
            let SpooledBatch {
                first,
                last,
                payload,
            } = batch;
            let batch = protocol::Batch {
                sender: self.spool.sender_id(),
                first_seq: self.spool.wire_seq(first),
                payload: &payload,
            };
            if !link.send(&batch) {
                break;
            }
            if link.in_flight.is_empty() {
                link.last_heard = Instant::now();
            }
            link.in_flight.push_back(InFlight {
                first,
                last,
                bytes: payload.len(),
            });
            link.next_send = last + 1;
            self.flow.sent_max = self.flow.sent_max.max(last);
            self.stats
                .forward
                .forwarded
                .fetch_add(last - first + 1, Ordering::Relaxed);
        }
    }

    /// Reports failed handshakes; true if one failed (libzmq does not retry a refused CURVE
    /// handshake by itself, so the caller reconnects).
    pub(super) fn watch_handshakes(&mut self, link: &Link) -> bool {
        let mut failed = false;
        while let Some(event) = link.monitor().and_then(sockets::recv_event) {
            failed = true;
            self.stats
                .forward
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            let curve = self.config.curve.as_ref();
            self.log.log("handshake", || {
                if curve.is_none() {
                    "handshake with the upstream failed: does it require CURVE? (then give \
                     --curve-secret-key and --curve-master-key)"
                        .into()
                } else if event.is(zmq::SocketEvent::HANDSHAKE_FAILED_AUTH) {
                    let public = curve.map(|c| crate::curve::z85(&c.keys.public));
                    format!(
                        "the upstream refused this daemon's public key {} (ZAP status \
                         {}): add this daemon's .public file to its --curve-allow directory",
                        public.unwrap_or_default(),
                        event.value
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
}
