//! ZeroMQ sockets as the daemon sets them up, shared by the server side (collect, control, the
//! forward-in ROUTER, the connection watches, the CURVE gate) and the forwarder's link: socket
//! monitors and the events they report.

use std::sync::atomic::{AtomicU64, Ordering};

use zmq::SocketEvent;

/// Monitor messages (two per event) that may wait for the reader. libzmq sends them blocking
/// from its I/O thread, so a full queue would stall all intake; this is ~10 MB at most.
pub const MONITOR_QUEUE: i32 = 100_000;

/// The handshake failures, as a monitor's event mask.
pub const HANDSHAKE_FAILURES: i32 = SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
    | SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
    | SocketEvent::HANDSHAKE_FAILED_AUTH as i32;

/// One event from a socket monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorEvent {
    /// What happened: a `ZMQ_EVENT_*` number.
    pub event: u16,
    /// Its value: the descriptor for connection events, an error number or ZAP status for
    /// handshake failures.
    pub value: u32,
}

impl MonitorEvent {
    /// Whether this is a `kind` event.
    pub fn is(self, kind: SocketEvent) -> bool {
        self.event == kind as u16
    }

    /// Whether a handshake failed (no detail, a protocol error, or refused authentication).
    pub fn is_handshake_failure(self) -> bool {
        self.is(SocketEvent::HANDSHAKE_FAILED_NO_DETAIL)
            || self.is(SocketEvent::HANDSHAKE_FAILED_PROTOCOL)
            || self.is(SocketEvent::HANDSHAKE_FAILED_AUTH)
    }
}

/// The socket a monitor's events are read from; [`attach`] connects it.
pub fn monitor_reader(ctx: &zmq::Context) -> zmq::Result<zmq::Socket> {
    let reader = ctx.socket(zmq::PAIR)?;
    reader.set_linger(0)?;
    reader.set_rcvhwm(MONITOR_QUEUE)?;
    Ok(reader)
}

/// Starts monitoring `socket`'s `events` at `endpoint` (inproc, unique in its context) and
/// connects `reader` to it.
pub fn attach(
    socket: &zmq::Socket,
    reader: &zmq::Socket,
    endpoint: &str,
    events: i32,
) -> zmq::Result<()> {
    socket.monitor(endpoint, events)?;
    reader.connect(endpoint)
}

/// Starts monitoring `socket` at `endpoint` and returns the reader. Call it before binding or
/// connecting `socket`, so that no connection goes unseen.
pub fn monitor(
    ctx: &zmq::Context,
    socket: &zmq::Socket,
    endpoint: &str,
    events: i32,
) -> zmq::Result<zmq::Socket> {
    let reader = monitor_reader(ctx)?;
    attach(socket, &reader, endpoint, events)?;
    Ok(reader)
}

/// An inproc endpoint for a monitor no other socket of this process uses (`name-N`).
pub fn unique_inproc(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("inproc://{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The next event waiting on a monitor's reader (`zmq_socket_monitor`'s first frame: event
/// number u16, value u32, native byte order), if one is waiting.
pub fn recv_event(reader: &zmq::Socket) -> Option<MonitorEvent> {
    let parts = reader.recv_multipart(zmq::DONTWAIT).ok()?;
    let frame = parts.first().filter(|p| p.len() >= 6)?;
    Some(MonitorEvent {
        event: u16::from_ne_bytes([frame[0], frame[1]]),
        value: u32::from_ne_bytes([frame[2], frame[3], frame[4], frame[5]]),
    })
}
