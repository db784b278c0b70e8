//! The client side of the control endpoint, for `ziggyd status|shutdown`, tests and `ziggyview`.

use std::time::Duration;

use bson::{Document, doc};

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No reply within the timeout (no daemon there, or it is stuck).
    #[error("no answer from the ziggyd control endpoint {endpoint} within {timeout:?}")]
    Timeout {
        /// The endpoint asked.
        endpoint: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// ZeroMQ refused the socket or the endpoint.
    #[error("cannot reach {endpoint}: {source}")]
    Zmq {
        /// The endpoint asked.
        endpoint: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// The address is malformed or does not resolve.
    #[error(transparent)]
    Address(crate::endpoint::EndpointError),
    /// The reply was not BSON.
    #[error("reply from {endpoint} is not a BSON document")]
    BadReply {
        /// The endpoint asked.
        endpoint: String,
    },
    /// The daemon answered with an error.
    #[error("ziggyd at {endpoint} answered: {message}")]
    Refused {
        /// The endpoint asked.
        endpoint: String,
        /// Its error message.
        message: String,
    },
}

/// Sends `{cmd}` to the control endpoint at `addr` (`HOST:PORT` or an endpoint) and returns the
/// reply, or an error after `timeout`.
pub fn control_request(addr: &str, cmd: &str, timeout: Duration) -> Result<Document, ClientError> {
    let resolved = crate::endpoint::resolve(addr).map_err(ClientError::Address)?;
    let endpoint = resolved.endpoint;
    let zmq_err = |source| ClientError::Zmq {
        endpoint: endpoint.clone(),
        source,
    };
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::REQ).map_err(zmq_err)?;
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    socket.set_linger(0).map_err(zmq_err)?;
    socket.set_rcvtimeo(ms).map_err(zmq_err)?;
    socket.set_sndtimeo(ms).map_err(zmq_err)?;
    if resolved.ipv6 {
        socket.set_ipv6(true).map_err(zmq_err)?;
    }
    socket.connect(&endpoint).map_err(zmq_err)?;
    let request = doc! { "cmd": cmd }
        .to_vec()
        .expect("a small document encodes");
    socket.send(request, 0).map_err(|e| match e {
        zmq::Error::EAGAIN => ClientError::Timeout {
            endpoint: endpoint.clone(),
            timeout,
        },
        e => zmq_err(e),
    })?;
    let reply = socket.recv_bytes(0).map_err(|e| match e {
        zmq::Error::EAGAIN => ClientError::Timeout {
            endpoint: endpoint.clone(),
            timeout,
        },
        e => zmq_err(e),
    })?;
    // `Document::from_reader` recurses without a limit: a reply nested thousands deep (from
    // whatever answers on that port) would overflow the stack, so the bounded walk goes first.
    if !crate::walk::is_well_formed(&reply) {
        return Err(ClientError::BadReply { endpoint });
    }
    let doc = Document::from_reader(&reply[..]).map_err(|_| ClientError::BadReply {
        endpoint: endpoint.clone(),
    })?;
    if let Ok(message) = doc.get_str("error") {
        return Err(ClientError::Refused {
            endpoint,
            message: message.to_owned(),
        });
    }
    Ok(doc)
}

/// Asks the daemon at control address `addr` for one of its sockets (`SOCK_STREAM`,
/// `SOCK_FORWARD`, …) and returns its endpoint, resolved for `connect`: the announced port on
/// the control address's host.
pub fn announced_endpoint(addr: &str, cmd: &str, timeout: Duration) -> Result<String, ClientError> {
    let reply = control_request(addr, cmd, timeout)?;
    let port = reply.get_i32("port").map_err(|_| ClientError::BadReply {
        endpoint: addr.to_owned(),
    })?;
    let port = u16::try_from(port).map_err(|_| ClientError::BadReply {
        endpoint: addr.to_owned(),
    })?;
    let control = crate::endpoint::Endpoint::parse(addr).map_err(ClientError::Address)?;
    let socket = control.with_port(port);
    Ok(socket.resolve().map_err(ClientError::Address)?.endpoint)
}

/// Finds a daemon's control endpoint from an address that is either its control address or, as
/// the 2012 README's `ziggyview -H HOST:3514` has it, its collect address (control: the port
/// below). Returns the control address that answered, and its reply to `cmd`.
pub fn find_control(
    addr: &str,
    cmd: &str,
    timeout: Duration,
) -> Result<(String, Document), ClientError> {
    // A collect (PULL) socket never answers a REQ: try it briefly, then the port below.
    let first = control_request(addr, cmd, timeout.min(Duration::from_millis(1500)));
    let Err(ClientError::Timeout { .. }) = first else {
        return first.map(|doc| (addr.to_owned(), doc));
    };
    let given = crate::endpoint::Endpoint::parse(addr).map_err(ClientError::Address)?;
    match given.port() {
        Some(port) if port > 1 => {
            let below = given.with_port(port - 1).to_string();
            let doc = control_request(&below, cmd, timeout)?;
            Ok((below, doc))
        }
        _ => first.map(|doc| (addr.to_owned(), doc)),
    }
}
