//! The control endpoint (REP, BSON): `STATUS`, `SOCK_STREAM`, `SOCK_COLLECT`, `SHUTDOWN`.
//!
//! It runs on its own thread with its own socket, so it answers promptly however busy the
//! collector is (the 2012 daemon served it only when the collect socket was idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bson::{Document, doc};

use crate::config::{DaemonConfig, endpoint_port};
use crate::runtime::Shared;
use crate::sockets::{self, BindError, Bound};
use crate::stats::DaemonStats;

/// Largest control request accepted, in bytes; a larger one gets an error reply.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;
/// Largest control request ZeroMQ takes in at all (it closes the connection of a larger one,
/// without a reply: buffering gigabytes to refuse them is not worth it).
pub const MAX_BUFFERED_REQUEST_BYTES: usize = 64 << 20;

/// Why a daemon announces no forward port (`SOCK_FORWARD` answers with this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoForwardPort {
    /// Only a daemon that writes files takes forwarded batches.
    #[error("this daemon writes no files: start it with --log-path to accept forwarding")]
    NoLogPath,
    /// The forward socket is bound to an ipc or inproc endpoint.
    #[error("the forward socket is not on a TCP port")]
    NotTcp,
}

/// The control thread's state.
pub struct Control {
    bound: Bound,
    stats: Arc<DaemonStats>,
    collect_port: Option<u16>,
    stream_port: Option<u16>,
    /// Why not, when this daemon does not accept forwarded batches.
    forward_port: Result<u16, NoForwardPort>,
    collect_endpoint: String,
    stream_endpoint: String,
    shutdown: Arc<AtomicBool>,
}

impl Control {
    /// Binds the control socket (REP) at `config.control`; it announces nothing until
    /// [`Control::announce`].
    pub fn build(shared: &Shared, config: &DaemonConfig) -> Result<Control, BindError> {
        let bound = sockets::bind(&shared.ctx, zmq::REP, "control", &config.control, |s| {
            // Requests over MAX_REQUEST_BYTES get an error reply; ZeroMQ only cuts the
            // connection of a request so large that buffering it would be the attack.
            s.set_maxmsgsize(MAX_BUFFERED_REQUEST_BYTES as i64)
        })?;
        Ok(Control {
            bound,
            stats: shared.stats.clone(),
            collect_port: None,
            stream_port: None,
            forward_port: Err(NoForwardPort::NoLogPath),
            collect_endpoint: String::new(),
            stream_endpoint: String::new(),
            shutdown: shared.shutdown.clone(),
        })
    }

    /// Where the control socket is bound.
    pub fn endpoint(&self) -> &str {
        &self.bound.endpoint
    }

    /// What the control endpoint tells: where collect and the stream are bound, and the forward
    /// port (or why there is none).
    pub fn announce(
        &mut self,
        collect_endpoint: &str,
        stream_endpoint: &str,
        forward_port: Result<u16, NoForwardPort>,
    ) {
        self.collect_port = endpoint_port(collect_endpoint);
        self.stream_port = endpoint_port(stream_endpoint);
        self.collect_endpoint = collect_endpoint.to_owned();
        self.stream_endpoint = stream_endpoint.to_owned();
        self.forward_port = forward_port;
    }

    /// Serves requests until shutdown.
    pub fn run(self) {
        while !self.shutdown.load(Ordering::Acquire) {
            match self.bound.socket.poll(zmq::POLLIN, 100) {
                Ok(n) if n > 0 => {}
                _ => continue,
            }
            let Ok(mut message) = self.bound.socket.recv_msg(zmq::DONTWAIT) else {
                continue;
            };
            // Over TCP ZeroMQ reports the peer's address; ipc and inproc peers are local.
            let peer_is_local = message.gets("Peer-Address").is_none_or(is_loopback);
            let request = message.to_vec();
            // A REQ peer may send several frames; REP must consume them all before replying.
            while self.bound.socket.get_rcvmore().unwrap_or(false) {
                let _ = self.bound.socket.recv_bytes(0);
            }
            let reply = self.answer(&request, peer_is_local);
            let bytes = reply.to_vec().unwrap_or_default();
            let _ = self.bound.socket.send(bytes, 0);
        }
    }

    fn answer(&self, request: &[u8], peer_is_local: bool) -> Document {
        if request.len() > MAX_REQUEST_BYTES {
            return error(format!(
                "request of {} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
                request.len()
            ));
        }
        // Checked first: the bson crate's decoder recurses without a depth limit, and a request
        // nested thousands deep would overflow this thread's stack.
        if !crate::bson_walk::is_well_formed(request) {
            return error(
                "request is not a well-formed BSON document (at most 100 levels deep); send \
                 {cmd: \"STATUS\"}"
                    .into(),
            );
        }
        let Ok(doc) = Document::from_reader(request) else {
            return error("request is not a BSON document; send {cmd: \"STATUS\"}".into());
        };
        let cmd = match doc.get("cmd") {
            Some(bson::Bson::String(s)) => s.clone(),
            Some(bson::Bson::Binary(b)) => String::from_utf8_lossy(&b.bytes).into_owned(),
            _ => return error("request has no string field `cmd`".into()),
        };
        match cmd.as_str() {
            "STATUS" => {
                let mut status = self.stats.status();
                status.collect = self.collect_endpoint.clone();
                status.stream = self.stream_endpoint.clone();
                status.to_document()
            }
            "SOCK_STREAM" => port_reply(self.stream_port),
            "SOCK_COLLECT" => port_reply(self.collect_port),
            "SOCK_FORWARD" => match &self.forward_port {
                Ok(p) => doc! { "port": *p as i32 },
                Err(reason) => error(reason.to_string()),
            },
            "SHUTDOWN" if !peer_is_local => error(
                "SHUTDOWN is refused from a non-loopback peer: run `ziggyd shutdown` on the daemon's host".into(),
            ),
            "SHUTDOWN" => {
                self.shutdown.store(true, Ordering::Release);
                doc! { "ok": true }
            }
            other => error(format!(
                "unknown cmd {other:?}: expected STATUS, SOCK_STREAM, SOCK_COLLECT, SOCK_FORWARD or SHUTDOWN"
            )),
        }
    }
}

fn port_reply(port: Option<u16>) -> Document {
    match port {
        Some(p) => doc! { "port": p as i32 },
        None => error("this socket is not on a TCP port".into()),
    }
}

fn error(message: String) -> Document {
    doc! { "error": message }
}

/// Whether an address (ZeroMQ's `Peer-Address`, or a bind host) is on this machine's loopback.
pub fn is_loopback(addr: &str) -> bool {
    let addr = addr.trim_start_matches("tcp://");
    let local = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || host
                .strip_prefix("::ffff:")
                .and_then(|v4| v4.parse::<std::net::Ipv4Addr>().ok())
                .is_some_and(|ip| ip.is_loopback())
    };
    // A bare address (ZeroMQ's Peer-Address, `::1`), or one with a port.
    local(addr) || addr.rsplit_once(':').is_some_and(|(host, _)| local(host))
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses() {
        for local in [
            "127.0.0.1",
            "127.3.4.5",
            "::1",
            "localhost",
            "tcp://127.0.0.1:3513",
            "[::1]:3513",
            "::ffff:127.0.0.1",
        ] {
            assert!(super::is_loopback(local), "{local}");
        }
        for remote in [
            "10.0.0.1",
            "0.0.0.0:3513",
            "tcp://192.168.1.2:3513",
            "example.com",
        ] {
            assert!(!super::is_loopback(remote), "{remote}");
        }
    }
}
