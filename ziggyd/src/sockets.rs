//! ZeroMQ sockets as the daemon sets them up, shared by the server side (collect, control,
//! stream, the forward-in ROUTER, the connection watches, the CURVE gate) and the forwarder's
//! link: binding with options, socket monitors and the events they report.

use std::sync::atomic::{AtomicU64, Ordering};

use zmq::SocketEvent;

use crate::endpoint::{Endpoint, EndpointError};

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A socket could not bind its address.
    #[error("cannot bind the {what} socket to {endpoint}: {source}")]
    Bind {
        /// Which socket (collect, control, stream, forward).
        what: &'static str,
        /// The endpoint tried.
        endpoint: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// An address is malformed or its host name does not resolve.
    #[error("the {what} address: {source}")]
    Address {
        /// Which socket.
        what: &'static str,
        /// What is wrong with it.
        source: EndpointError,
    },
}

/// A bound socket and where it is bound.
pub struct Bound {
    /// The socket.
    pub socket: zmq::Socket,
    /// The endpoint it is bound to, with the real port when port 0 was asked for.
    pub endpoint: String,
}

impl Bound {
    /// The TCP port it is bound to (`None` for ipc and inproc).
    pub fn port(&self) -> Option<u16> {
        crate::config::endpoint_port(&self.endpoint)
    }
}

/// Binds a `kind` socket (`what` names it in errors) to `addr` after `prepare` has set its
/// options: ZeroMQ applies options to accepted connections only if they were set before the
/// bind.
pub fn bind(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
    addr: &str,
    prepare: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> Result<Bound, BindError> {
    let resolved = Endpoint::parse(addr)
        .and_then(|e| e.resolve())
        .map_err(|source| BindError::Address { what, source })?;
    let endpoint = resolved.endpoint;
    let err = |source| BindError::Bind {
        what,
        endpoint: endpoint.clone(),
        source,
    };
    let socket = ctx.socket(kind).map_err(err)?;
    socket.set_linger(1000).map_err(err)?;
    if resolved.ipv6 {
        socket.set_ipv6(true).map_err(err)?;
    }
    prepare(&socket).map_err(err)?;
    socket.bind(&endpoint).map_err(err)?;
    let bound = socket
        .get_last_endpoint()
        .ok()
        .and_then(Result::ok)
        .unwrap_or(endpoint.clone());
    Ok(Bound {
        socket,
        endpoint: bound,
    })
}

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
