//! The connections of the sockets that accept peers (collect PULL, forward ROUTER), watched
//! through a ZeroMQ socket monitor: counted in STATUS, and every connection the daemon ended is
//! logged (rate-limited) with the peer's address.
//!
//! # What a frame over the size cap costs its sender
//! Both sockets have ZeroMQ's `ZMQ_MAXMSGSIZE` set to 4 × `--max-frame-bytes` (frames between the
//! two limits are refused one by one by the validator, as `invalid.frame_too_large`). libzmq
//! checks the cap against a frame's length header, before reading the frame, and answers a frame
//! over it by closing the TCP connection (`stream_engine_base_t::in_event_internal`: the decoder
//! fails with `EMSGSIZE`, then `error (protocol_error)`). Lost with it:
//! - the oversized frame;
//! - whatever the sender had already written into that TCP connection behind it: frames read
//!   into libzmq's 8 KiB input batch after the header, unread in this host's receive buffer, in
//!   flight, or in the sender's kernel send buffer (the close resets the connection);
//! - frames the sender's ZeroMQ I/O thread took from its pipe for that connection before it saw
//!   the reset (it takes up to an 8 KiB batch of what is queued at each write).
//!
//! Frames still queued in the sender's ZeroMQ pipe are not lost: a ZeroMQ sender reconnects by
//! itself (after its `ZMQ_RECONNECT_IVL`, 100 ms by default) and sends them on the new
//! connection. Which frames behind the oversized one are lost thus depends on timing: those the
//! sender wrote before the daemon read the header go; behind a frame too big to be written whole
//! before the daemon reads its header (a few MiB on loopback), every later frame is still in the
//! pipe and arrives. `tests/tests/hostile_peers.rs` shows both. Frames that arrived whole before
//! the oversized one are received and written normally.
//!
//! # Telling such a cut from a peer closing
//! libzmq 4.3.4 reports both the same way: `ZMQ_EVENT_DISCONNECTED` with the descriptor as value
//! and no reason (`stream_engine_base_t::error` signals protocol errors no further;
//! `ZMQ_EVENT_HANDSHAKE_SUCCEEDED` carries 0, not the descriptor). On the bound side both end the
//! same way too (`session_base_t::engine_error`: the session terminates; only a connecting side
//! reconnects). What differs is the TCP connection itself: when the peer closes, its end of
//! stream (or reset) is what made libzmq stop; when libzmq cuts, the peer is still connected.
//! So at `ZMQ_EVENT_ACCEPTED` this module copies the descriptor (`F_DUPFD_CLOEXEC`), which keeps
//! the connection open past libzmq's own `close` until the `DISCONNECTED` event is handled here;
//! the copy then tells which side ended it (`recv` with `MSG_PEEK`: end of stream or a reset, the
//! peer; data waiting or nothing yet, the daemon), and how many received bytes were never read
//! (`FIONREAD`). Closing the copy ends the connection as libzmq's close would have (with a reset
//! when bytes were unread). A handshake failure reported just before is counted as such, not as
//! a cut.
//!
//! Best effort: the events reach this thread after the fact, so a descriptor closed and reused
//! before its `ACCEPTED` event is handled would be another connection; a copy is kept only when
//! no `DISCONNECTED` for that descriptor had arrived by the time it was made. A connection that
//! opened and ended before this thread saw it open (a sender whose first frame is oversized, on a
//! loaded machine) therefore has an unknown peer and an unknown end: it counts as a disconnect,
//! not in `cut_oversized`, and is logged as a connection that ended either way.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zmq::SocketEvent;

use crate::config::DaemonConfig;
use crate::ratelog::RateLimitedLog;
use crate::sockets::{self, MonitorEvent};
use crate::stats::{ConnectionStats, DaemonStats};

/// The monitor events a [`Watch`] needs (and [`crate::gate::Gate`] adds none to them).
pub const EVENTS: i32 = SocketEvent::ACCEPTED as i32
    | SocketEvent::DISCONNECTED as i32
    | sockets::HANDSHAKE_FAILURES
    | SocketEvent::MONITOR_STOPPED as i32;

/// Events read in one turn (a bound on work per wake-up and on the look-ahead buffer); past it,
/// the connections accepted in that turn get no copy.
const EVENTS_PER_TURN: usize = 4096;

/// Connections whose descriptor is copied at once, at most; past this (or a quarter of the
/// open-file limit, if lower) only their peer address is kept: each copy is one more open file,
/// and those are needed for connections and log files first.
const MAX_COPIES: usize = 4096;

/// How many descriptor copies this process can afford: see [`MAX_COPIES`].
fn copy_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    usize::try_from(limit.rlim_cur / 4)
        .unwrap_or(MAX_COPIES)
        .min(MAX_COPIES)
}

/// Which watched socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The collect socket (PULL, applications).
    Collect,
    /// The forward socket (ROUTER, forwarding daemons).
    Forward,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Collect => "collect",
            Side::Forward => "forward",
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed it (end of stream) or reset it.
    PeerClosed,
    /// The daemon (libzmq) ended it while the peer was still connected; `unread` bytes it had
    /// received were never read.
    Cut {
        /// Bytes received and discarded with the connection.
        unread: usize,
    },
    /// Its handshake failed.
    HandshakeFailed,
    /// Not known (no copy of the descriptor).
    Unknown,
}

#[derive(Debug, Default)]
struct Peer {
    addr: Option<SocketAddr>,
    copy: Option<OwnedFd>,
}

/// Tracks one socket's connections from its monitor events.
#[derive(Debug)]
pub struct Watch {
    side: Side,
    stats: Arc<DaemonStats>,
    cap_bytes: i64,
    port: Option<u16>,
    verbose: bool,
    open: HashMap<u32, Peer>,
    copies: usize,
    max_copies: usize,
    handshake_failed: bool,
    log: RateLimitedLog,
}

impl Watch {
    /// A watch of `side`, whose socket cuts frames over `cap_bytes` (its `ZMQ_MAXMSGSIZE`).
    pub fn new(
        side: Side,
        stats: Arc<DaemonStats>,
        cap_bytes: i64,
        verbose: bool,
        log_interval: Duration,
    ) -> Watch {
        Watch {
            side,
            stats,
            cap_bytes,
            port: None,
            verbose,
            open: HashMap::new(),
            copies: 0,
            max_copies: copy_budget(),
            handshake_failed: false,
            log: RateLimitedLog::new(log_interval),
        }
    }

    /// A watch of `side` for a daemon with `config`.
    pub fn of(side: Side, config: &DaemonConfig, stats: Arc<DaemonStats>) -> Watch {
        Watch::new(
            side,
            stats,
            config.max_message_bytes(),
            config.verbose,
            config.log_interval,
        )
    }

    /// The TCP port the socket is bound to: a copied descriptor whose local port differs is not
    /// one of its connections, and is dropped.
    pub fn on_port(mut self, port: Option<u16>) -> Watch {
        self.port = port;
        self
    }

    fn counters(&self) -> &ConnectionStats {
        match self.side {
            Side::Collect => &self.stats.collect_conns,
            Side::Forward => &self.stats.forward_conns,
        }
    }

    /// Reads the waiting monitor events (at most a turn's worth), handles those about
    /// connections, and returns them all (the gate handles handshake failures and the stop).
    pub fn pump(&mut self, monitor: &zmq::Socket) -> Vec<MonitorEvent> {
        let mut events = Vec::new();
        let mut drained = read_events(monitor, &mut events);
        let mut i = 0;
        while i < events.len() {
            let event = events[i];
            let value = event.value;
            if event.is(SocketEvent::ACCEPTED) {
                let mut peer = Peer::default();
                if drained && !ends_later(&events, i) {
                    peer = self.inspect(value);
                    // Whatever arrived while copying: if this connection ended among it, the
                    // descriptor may already name the next one, so the copy proves nothing.
                    drained = read_events(monitor, &mut events);
                    if !drained || ends_later(&events, i) {
                        peer = Peer::default();
                    }
                }
                self.copies += usize::from(peer.copy.is_some());
                if let Some(old) = self.open.insert(value, peer) {
                    self.copies -= usize::from(old.copy.is_some());
                }
                self.counters()
                    .connections
                    .store(self.open.len() as u64, Ordering::Relaxed);
            } else if event.is(SocketEvent::DISCONNECTED) {
                let peer = self.open.remove(&value).unwrap_or_default();
                self.copies -= usize::from(peer.copy.is_some());
                let end = if std::mem::take(&mut self.handshake_failed) {
                    End::HandshakeFailed
                } else {
                    peer.copy.as_ref().map_or(End::Unknown, how_it_ended)
                };
                drop(peer.copy); // ends the connection, if libzmq has closed it already
                self.ended(peer.addr, end);
            } else if event.is_handshake_failure() {
                // libzmq reports it just before the DISCONNECTED of the same connection.
                self.handshake_failed = true;
            }
            i += 1;
        }
        events
    }

    /// Copies an accepted connection's descriptor and learns its peer (best effort).
    fn inspect(&self, fd: u32) -> Peer {
        let Ok(raw) = RawFd::try_from(fd) else {
            return Peer::default();
        };
        // SAFETY: F_DUPFD_CLOEXEC on any number is harmless; it fails on a closed descriptor.
        let copy = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            return Peer::default();
        }
        // SAFETY: `copy` is a new descriptor that nothing else owns.
        let copy = unsafe { OwnedFd::from_raw_fd(copy) };
        let Addresses { local, peer: addr } = addresses(&copy);
        if self.port.is_some() && local.map(|a| a.port()) != self.port {
            return Peer::default(); // reused by something else (a file, another socket)
        }
        let keep = self.copies < self.max_copies;
        Peer {
            addr,
            copy: keep.then_some(copy),
        }
    }

    fn ended(&mut self, addr: Option<SocketAddr>, end: End) {
        let side = self.side.name();
        let c = self.counters();
        c.disconnects.fetch_add(1, Ordering::Relaxed);
        c.connections
            .store(self.open.len() as u64, Ordering::Relaxed);
        if let End::Cut { .. } = end {
            c.cut_oversized.fetch_add(1, Ordering::Relaxed);
        }
        let peer = addr.map_or_else(|| "unknown peer".to_owned(), |a| a.to_string());
        let cap = self.cap_bytes;
        let lost = match self.side {
            Side::Collect => {
                "lost with it: that frame and whatever the sender had already written into the \
                 connection behind it; what was still queued in the sender's ZeroMQ pipe is sent \
                 after its automatic reconnect"
            }
            Side::Forward => {
                "that batch and those written behind it are not confirmed, so the forwarding \
                 daemon sends them again"
            }
        };
        match end {
            End::Cut { unread } => self.log.log("cut", || {
                format!(
                    "{side}: cut the connection from {peer}, still connected ({unread} bytes \
                     received and not yet read went with it): a frame over {cap} bytes \
                     (4 × --max-frame-bytes) ends a connection; {lost}"
                )
            }),
            End::Unknown => self.log.log("ended", || {
                format!(
                    "{side}: the connection from {peer} ended (by the peer, or cut: a frame over \
                     {cap} bytes (4 × --max-frame-bytes) ends a connection; {lost})"
                )
            }),
            End::PeerClosed if self.verbose => self
                .log
                .log("closed", || format!("{side}: {peer} closed its connection")),
            End::HandshakeFailed if self.verbose => self.log.log("handshake-ended", || {
                format!("{side}: the connection from {peer} ended after a failed handshake")
            }),
            End::PeerClosed | End::HandshakeFailed => {}
        }
    }
}

/// A [`Watch`] with the reader of its socket's monitor, served on a thread of its own.
pub struct Watcher {
    watch: Watch,
    monitor: zmq::Socket,
    shutdown: Arc<AtomicBool>,
}

impl Watcher {
    /// Starts monitoring `socket` at `endpoint` (inproc, unique in its context) for `watch`.
    /// Call it before binding `socket`, so that no connection goes unseen.
    pub fn attach(
        ctx: &zmq::Context,
        socket: &zmq::Socket,
        endpoint: &str,
        watch: Watch,
        shutdown: Arc<AtomicBool>,
    ) -> zmq::Result<Watcher> {
        Ok(Watcher {
            watch,
            monitor: sockets::monitor(ctx, socket, endpoint, EVENTS)?,
            shutdown,
        })
    }

    /// The TCP port the socket is bound to (see [`Watch::on_port`]).
    pub fn on_port(mut self, port: Option<u16>) -> Watcher {
        self.watch = self.watch.on_port(port);
        self
    }

    /// Serves the monitor until its socket is closed (`MONITOR_STOPPED`), or 2 s after shutdown
    /// at the latest.
    pub fn run(mut self) {
        let mut stopping_since: Option<Instant> = None;
        loop {
            if self.monitor.poll(zmq::POLLIN, 200).is_err() {
                break;
            }
            let stopped = self
                .watch
                .pump(&self.monitor)
                .iter()
                .any(|e| e.is(SocketEvent::MONITOR_STOPPED));
            if stopped {
                break;
            }
            if self.shutdown.load(Ordering::Acquire) {
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
}

/// Whether a `DISCONNECTED` for the descriptor of the `ACCEPTED` event at `i` follows it.
fn ends_later(events: &[MonitorEvent], i: usize) -> bool {
    let fd = events[i].value;
    events[i + 1..]
        .iter()
        .any(|e| e.is(SocketEvent::DISCONNECTED) && e.value == fd)
}

/// Appends waiting events, up to a turn's worth in `events`; true if none was left waiting.
fn read_events(monitor: &zmq::Socket, events: &mut Vec<MonitorEvent>) -> bool {
    while events.len() < EVENTS_PER_TURN {
        match sockets::recv_event(monitor) {
            Some(event) => events.push(event),
            None => return true,
        }
    }
    false
}

/// Both ends of a TCP connection (`None` for other kinds, e.g. ipc).
struct Addresses {
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

/// The addresses of the connection under `fd`.
fn addresses(fd: &OwnedFd) -> Addresses {
    // SAFETY: the stream borrows `fd` and is never dropped, so it never closes it.
    let stream = std::mem::ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd.as_raw_fd()) });
    Addresses {
        local: stream.local_addr().ok(),
        peer: stream.peer_addr().ok(),
    }
}

/// How the connection under `fd` ended, once libzmq dropped it: a peer that closed has sent its
/// end of stream (or reset); otherwise the peer is still there and libzmq cut it.
pub fn how_it_ended(fd: &OwnedFd) -> End {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer that lives across the call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return End::PeerClosed;
    }
    if n > 0 {
        return End::Cut {
            unread: unread_bytes(fd),
        };
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => End::Cut { unread: 0 },
        Some(libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT) => End::PeerClosed,
        _ => End::Unknown,
    }
}

fn unread_bytes(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 { n.max(0) as usize } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn settle(mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_copy_tells_a_peer_close_from_a_cut() {
        // The peer still connected, nothing sent: the daemon's side ended it.
        let (_client, server) = pair();
        let fd = OwnedFd::from(server);
        assert_eq!(how_it_ended(&fd), End::Cut { unread: 0 });

        // The peer still connected, bytes waiting unread.
        let (mut client, server) = pair();
        client.write_all(&[7u8; 1000]).unwrap();
        let fd = OwnedFd::from(server);
        settle(|| unread_bytes(&fd) == 1000);
        assert_eq!(how_it_ended(&fd), End::Cut { unread: 1000 });

        // The peer closed.
        let (client, server) = pair();
        drop(client);
        let fd = OwnedFd::from(server);
        settle(|| how_it_ended(&fd) != End::Cut { unread: 0 });
        assert_eq!(how_it_ended(&fd), End::PeerClosed);
    }

    /// A real PULL socket with a frame cap, its watch pumped by hand.
    struct Rig {
        _ctx: zmq::Context,
        pull: zmq::Socket,
        monitor: zmq::Socket,
        watch: Watch,
        endpoint: String,
    }

    fn rig(cap: i64) -> Rig {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        pull.set_maxmsgsize(cap).unwrap();
        let monitor = sockets::monitor(&ctx, &pull, "inproc://test-monitor", EVENTS).unwrap();
        pull.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = pull.get_last_endpoint().unwrap().unwrap();
        let port = crate::config::endpoint_port(&endpoint);
        let stats = Arc::new(DaemonStats::default());
        let watch =
            Watch::new(Side::Collect, stats, cap, false, Duration::from_secs(10)).on_port(port);
        Rig {
            _ctx: ctx,
            pull,
            monitor,
            watch,
            endpoint,
        }
    }

    impl Rig {
        fn pump_until(&mut self, mut done: impl FnMut(&ConnectionStats) -> bool) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let _ = self.monitor.poll(zmq::POLLIN, 20);
                self.watch.pump(&self.monitor);
                if done(&self.watch.stats.collect_conns) {
                    return true;
                }
            }
            false
        }
    }

    fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    #[test]
    fn a_peer_closing_is_a_disconnect_and_an_oversized_frame_a_cut() {
        let mut r = rig(1000);
        let ctx = zmq::Context::new();

        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(1000).unwrap();
        push.connect(&r.endpoint).unwrap();
        push.send(&b"small"[..], 0).unwrap();
        assert_eq!(r.pull.recv_bytes(0).unwrap(), b"small");
        assert!(r.pump_until(|c| get(&c.connections) == 1));
        drop(push);
        assert!(r.pump_until(|c| get(&c.disconnects) == 1));
        let c = &r.watch.stats.collect_conns;
        assert_eq!((get(&c.connections), get(&c.cut_oversized)), (0, 0));

        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.connect(&r.endpoint).unwrap();
        // Seen open before it ends: a connection that opens and ends before its ACCEPTED event
        // is handled has no copy, and ends as `Unknown`.
        assert!(r.pump_until(|c| get(&c.connections) == 1));
        push.send(vec![1u8; 50_000], 0).unwrap();
        assert!(
            r.pump_until(|c| get(&c.cut_oversized) == 1),
            "{:?}",
            r.watch.stats.collect_conns
        );
        // The sender reconnects by itself, and its next frame arrives (sent once the sender has
        // seen the reset: one taken for the broken connection would be lost).
        std::thread::sleep(Duration::from_millis(500));
        push.send(&b"after"[..], 0).unwrap();
        r.pull.set_rcvtimeo(10_000).unwrap();
        assert_eq!(r.pull.recv_bytes(0).unwrap(), b"after");
        assert!(r.pump_until(|c| get(&c.connections) == 1));
        assert_eq!(get(&r.watch.stats.collect_conns.disconnects), 2);
    }

    #[test]
    fn a_connection_that_ended_before_it_was_seen_ends_unknown() {
        let mut r = rig(1000);
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        // No reconnection: the events of one connection only.
        push.set_reconnect_ivl(-1).unwrap();
        push.connect(&r.endpoint).unwrap();
        push.send(vec![1u8; 50_000], 0).unwrap();
        // Not pumped meanwhile: its ACCEPTED and DISCONNECTED wait together, and by then the
        // descriptor is closed (or already another's), so the end cannot be told.
        std::thread::sleep(Duration::from_millis(1000));
        assert!(r.pump_until(|c| get(&c.disconnects) == 1));
        let c = &r.watch.stats.collect_conns;
        assert_eq!((get(&c.connections), get(&c.cut_oversized)), (0, 0));
        assert_eq!(r.watch.copies, 0);
    }
}
