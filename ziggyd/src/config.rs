//! The daemon's settings, independent of how they were given (flags, or code embedding it).

use std::path::PathBuf;
use std::time::Duration;

use crate::validate::Limits;

/// Settings of one daemon.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where applications PUSH events (`HOST:PORT` or an endpoint; port 0 picks a free port).
    pub collect: String,
    /// Control endpoint (REP).
    pub control: String,
    /// Live stream endpoint (PUB); by default a free loopback port, announced by `SOCK_STREAM`.
    pub stream: String,
    /// Where to write per-channel files; `None` writes none.
    pub log_path: Option<PathBuf>,
    /// Input size limits.
    pub limits: Limits,
    /// Files are flushed at least this often.
    pub flush_interval: Duration,
    /// A file with no write for this long is closed.
    pub idle_close: Duration,
    /// Log every rejected frame's reason at most once per this interval.
    pub log_interval: Duration,
    /// Extra logging.
    pub verbose: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            collect: "127.0.0.1:3514".into(),
            control: "127.0.0.1:3513".into(),
            stream: "127.0.0.1:0".into(),
            log_path: None,
            limits: Limits::default(),
            flush_interval: Duration::from_secs(1),
            idle_close: Duration::from_secs(60),
            log_interval: Duration::from_secs(10),
            verbose: false,
        }
    }
}

impl DaemonConfig {
    /// A config on free loopback ports, for tests and embedding.
    pub fn ephemeral() -> Self {
        DaemonConfig {
            collect: "127.0.0.1:0".into(),
            control: "127.0.0.1:0".into(),
            ..Default::default()
        }
    }
}

/// Turns `HOST:PORT` into a ZeroMQ bind endpoint (`PORT` 0 → `*`, a free port); endpoints pass.
pub fn bind_endpoint(addr: &str) -> String {
    if addr.contains("://") {
        return addr.to_owned();
    }
    match addr.rsplit_once(':') {
        Some((host, "0")) => format!("tcp://{host}:*"),
        _ => format!("tcp://{addr}"),
    }
}

/// The TCP port of a bound endpoint (`tcp://127.0.0.1:4567` → 4567).
pub fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}
