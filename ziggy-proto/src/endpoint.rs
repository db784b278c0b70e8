//! Addresses as operators type them (`localhost:3514`, `master:3514`, `[::1]:3514`, `*:3514`,
//! `10.0.0.5:3514`, `tcp://…`, `ipc://…`), checked and resolved into what ZeroMQ takes.
//!
//! ZeroMQ binds only interfaces and IP addresses (`tcp://localhost:3514` fails with "No such
//! device"), and connects to IPv6 addresses only when told to, so host names are resolved here,
//! before `bind` and before `connect`.

use std::net::{IpAddr, ToSocketAddrs};

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not `HOST:PORT` nor a `tcp://`, `ipc://` or `inproc://` endpoint.
    #[error("{0:?} is not HOST:PORT (or a tcp://, ipc:// or inproc:// endpoint)")]
    Syntax(String),
    /// The port is not a number in range.
    #[error("{addr:?}: port {port:?} is not a number from 0 to 65535")]
    Port {
        /// The address given.
        addr: String,
        /// The port part.
        port: String,
    },
    /// The host name does not resolve.
    #[error("{addr:?}: cannot resolve host name {host:?}: {reason}")]
    Resolve {
        /// The address given.
        addr: String,
        /// The host part.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// A checked address: a TCP host and port, or another ZeroMQ transport taken as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `HOST:PORT` (port 0: any free port, when binding).
    Tcp {
        /// A host name, an IP address, or `*` (every interface).
        host: String,
        /// The port.
        port: u16,
    },
    /// `ipc://…` or `inproc://…`.
    Other(String),
}

/// What ZeroMQ is given: the endpoint string, and whether the socket needs IPv6 turned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// E.g. `tcp://127.0.0.1:3514`, `tcp://[::1]:3514`, `tcp://*:*`.
    pub endpoint: String,
    /// The address is IPv6 (set `ZMQ_IPV6` on the socket).
    pub ipv6: bool,
}

impl Endpoint {
    /// Parses `HOST:PORT`, `tcp://HOST:PORT`, `[V6]:PORT`, `*:PORT`, or `ipc://`/`inproc://`.
    pub fn parse(addr: &str) -> Result<Endpoint, EndpointError> {
        if addr.starts_with("ipc://") || addr.starts_with("inproc://") {
            return Ok(Endpoint::Other(addr.to_owned()));
        }
        let rest = addr.strip_prefix("tcp://").unwrap_or(addr);
        if rest.contains("://") {
            return Err(EndpointError::Syntax(addr.to_owned()));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| EndpointError::Syntax(addr.to_owned()))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(EndpointError::Syntax(addr.to_owned()));
        }
        let port = match port {
            "*" => 0,
            p => p.parse::<u16>().map_err(|_| EndpointError::Port {
                addr: addr.to_owned(),
                port: p.to_owned(),
            })?,
        };
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// The TCP port, if this is TCP.
    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { port, .. } => Some(*port),
            Endpoint::Other(_) => None,
        }
    }

    /// The same host with another port (the control port beside a collect port).
    pub fn with_port(&self, port: u16) -> Endpoint {
        match self {
            Endpoint::Tcp { host, .. } => Endpoint::Tcp {
                host: host.clone(),
                port,
            },
            Endpoint::Other(o) => Endpoint::Other(o.clone()),
        }
    }

    /// The form a connecting socket takes without a lookup here: ZeroMQ resolves a host name itself
    /// when it connects, and again on every reconnect, so a name that does not resolve yet (a
    /// daemon's host still starting) is not an error. IPv6 is turned on for an IPv6 address.
    pub fn for_connect(&self) -> Resolved {
        match self {
            Endpoint::Other(o) => Resolved {
                endpoint: o.clone(),
                ipv6: false,
            },
            Endpoint::Tcp { host, port } => Resolved {
                endpoint: format!("tcp://{self}"),
                ipv6: host.contains(':') && *port > 0,
            },
        }
    }

    /// Resolves the host into an IP address (IPv4 first) and formats it for ZeroMQ; port 0
    /// becomes `*` (a free port), which only binding understands.
    pub fn resolve(&self) -> Result<Resolved, EndpointError> {
        let (host, port) = match self {
            Endpoint::Other(o) => {
                return Ok(Resolved {
                    endpoint: o.clone(),
                    ipv6: false,
                });
            }
            Endpoint::Tcp { host, port } => (host, *port),
        };
        let port_text = if port == 0 {
            "*".to_owned()
        } else {
            port.to_string()
        };
        let ip = if host == "*" {
            None
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Some(ip)
        } else {
            let failed = |reason: String| EndpointError::Resolve {
                addr: self.to_string(),
                host: host.clone(),
                reason,
            };
            let addrs: Vec<IpAddr> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| failed(e.to_string()))?
                .map(|a| a.ip())
                .collect();
            let ip = addrs
                .iter()
                .find(|ip| ip.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| failed("no address".into()))?;
            Some(ip)
        };
        Ok(match ip {
            None => Resolved {
                endpoint: format!("tcp://*:{port_text}"),
                ipv6: false,
            },
            Some(IpAddr::V4(v4)) => Resolved {
                endpoint: format!("tcp://{v4}:{port_text}"),
                ipv6: false,
            },
            Some(IpAddr::V6(v6)) => Resolved {
                endpoint: format!("tcp://[{v6}]:{port_text}"),
                ipv6: true,
            },
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Other(o) => f.write_str(o),
        }
    }
}

/// Parses and resolves in one step.
pub fn resolve(addr: &str) -> Result<Resolved, EndpointError> {
    Endpoint::parse(addr)?.resolve()
}

/// Connects `socket` to `addr` (a host name is resolved first, IPv6 turned on when needed).
#[cfg(feature = "client")]
pub fn connect(socket: &zmq::Socket, addr: &str) -> Result<String, String> {
    let resolved = resolve(addr).map_err(|e| e.to_string())?;
    if resolved.ipv6 {
        socket.set_ipv6(true).map_err(|e| e.to_string())?;
    }
    socket
        .connect(&resolved.endpoint)
        .map_err(|e| format!("cannot connect to {}: {e}", resolved.endpoint))?;
    Ok(resolved.endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_operators_type() {
        let r = |a: &str| resolve(a).map(|r| r.endpoint);
        assert_eq!(r("127.0.0.1:3514").unwrap(), "tcp://127.0.0.1:3514");
        assert_eq!(r("tcp://127.0.0.1:0").unwrap(), "tcp://127.0.0.1:*");
        assert_eq!(r("localhost:3514").unwrap(), "tcp://127.0.0.1:3514");
        assert_eq!(r("*:3514").unwrap(), "tcp://*:3514");
        assert_eq!(r("[::1]:3514").unwrap(), "tcp://[::1]:3514");
        assert!(resolve("[::1]:3514").unwrap().ipv6);
        assert_eq!(r("ipc:///tmp/z").unwrap(), "ipc:///tmp/z");
    }

    #[test]
    fn mistakes_are_named() {
        let e = |a: &str| resolve(a).unwrap_err().to_string();
        assert!(e("localhost:99999").contains("port \"99999\""));
        assert!(e("localhost").contains("not HOST:PORT"));
        assert!(e(":3514").contains("not HOST:PORT"));
        assert!(e("no-such-host.invalid:3514").contains("cannot resolve"));
        assert!(e("udp://x:1").contains("not HOST:PORT"));
    }

    #[test]
    fn connecting_forms_resolve_nothing_here() {
        let c = |a: &str| Endpoint::parse(a).unwrap().for_connect();
        assert_eq!(c("127.0.0.1:3514").endpoint, "tcp://127.0.0.1:3514");
        assert_eq!(
            c("no-such-host.invalid:3514").endpoint,
            "tcp://no-such-host.invalid:3514"
        );
        assert_eq!(c("tcp://[::1]:3514").endpoint, "tcp://[::1]:3514");
        assert!(c("[::1]:3514").ipv6);
        assert!(!c("localhost:3514").ipv6);
        assert_eq!(c("ipc:///run/ziggy").endpoint, "ipc:///run/ziggy");
    }

    #[test]
    fn a_control_port_beside_the_collect_port() {
        let collect = Endpoint::parse("localhost:3514").unwrap();
        assert_eq!(collect.with_port(3513).to_string(), "localhost:3513");
    }
}
