//! The daemon's settings, independent of how they were given (flags, or code embedding it).

use std::path::PathBuf;
use std::time::Duration;

use crate::curve::KeyPair;
use crate::endpoint::{Endpoint, EndpointError};
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
    /// Forward every valid event to another daemon (`--publish`).
    pub forward: Option<ForwardTo>,
    /// Where forwarding daemons connect (ROUTER), when this daemon writes files; port 0 picks a
    /// free port, announced by `SOCK_FORWARD`.
    pub forward_listen: String,
    /// CURVE on the forward socket: only daemons whose keys are allowed may forward.
    pub forward_curve: Option<CurveServer>,
    /// Write what partitions of a NATS JetStream stream carry (`--consume`), instead of taking
    /// forwarded batches; needs `log_path` and the `jetstream` feature.
    pub consume: Option<ConsumeFrom>,
}

/// What a writer takes off a NATS JetStream stream (`--consume`, `--partitions`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeFrom {
    /// The stream.
    pub jetstream: JetStreamConfig,
    /// The partitions this writer owns (all of the stream's when `None`).
    pub partitions: Option<Vec<u32>>,
}

/// Where a NATS JetStream stream is and how a daemon creates it when it is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamConfig {
    /// Server URLs (`nats://host:port`); the client fails over between them.
    pub servers: Vec<String>,
    /// The stream's name.
    pub stream: String,
    /// Subjects are `<prefix>.p<partition>`.
    pub prefix: String,
    /// Partitions of a stream this daemon creates (an existing stream keeps its own).
    pub partitions: u32,
    /// Replicas of a stream this daemon creates.
    pub replicas: usize,
    /// How long JetStream remembers message ids to drop a repeated publish.
    pub duplicate_window: Duration,
    /// Most bytes the stream holds (events no writer has written yet); publishes beyond it are
    /// refused and the events wait in the publishers' spools.
    pub max_bytes: i64,
}

/// Why JetStream settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JetStreamConfigError {
    /// The `nats://` address list is malformed.
    #[error(
        "{0:?} is not a NATS address list: expected nats://HOST:PORT[,HOST:PORT...] (or several \
         nats:// URLs separated by commas)"
    )]
    Address(String),
    /// A setting is out of range.
    #[error("{0}")]
    Setting(String),
}

impl JetStreamConfig {
    /// A configuration for `urls` (`nats://h:p,h:p` or `nats://h:p,nats://h:p`), with the
    /// defaults: stream `ZIGGY`, 1 partition, replicas = servers listed (at most 3), duplicate
    /// window 1 hour, 10 GiB.
    pub fn from_urls(urls: &str) -> Result<JetStreamConfig, JetStreamConfigError> {
        let servers = parse_nats_servers(urls)?;
        Ok(JetStreamConfig {
            replicas: servers.len().min(3),
            servers,
            stream: ziggy_proto::jetstream::DEFAULT_STREAM.to_owned(),
            prefix: ziggy_proto::jetstream::DEFAULT_PREFIX.to_owned(),
            partitions: 1,
            duplicate_window: Duration::from_secs(3600),
            max_bytes: 10 << 30,
        })
    }

    /// Checks the settings a user may give.
    pub fn check(&self) -> Result<(), JetStreamConfigError> {
        let max = ziggy_proto::jetstream::MAX_PARTITIONS;
        if !(1..=max).contains(&self.partitions) {
            return Err(JetStreamConfigError::Setting(format!(
                "--nats-partitions {} is out of range: 1 to {max}",
                self.partitions
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(JetStreamConfigError::Setting(format!(
                "--nats-replicas {} is out of range: JetStream allows 1 to 5",
                self.replicas
            )));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.stream) {
            return Err(JetStreamConfigError::Setting(format!(
                "--nats-stream {:?}: use up to 64 letters, digits, - and _",
                self.stream
            )));
        }
        if self.max_bytes < 1 << 20 {
            return Err(JetStreamConfigError::Setting(format!(
                "--nats-max-bytes {} is too small: at least 1 MiB",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Splits `nats://h:p,h:p` (or `nats://h:p,nats://h:p`) into server URLs.
pub fn parse_nats_servers(urls: &str) -> Result<Vec<String>, JetStreamConfigError> {
    let bad = || JetStreamConfigError::Address(urls.to_owned());
    let rest = urls.strip_prefix("nats://").ok_or_else(bad)?;
    let mut servers = Vec::new();
    for part in rest.split(',') {
        let part = part.strip_prefix("nats://").unwrap_or(part);
        let (host, port) = part.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains(['/', ' ']) || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        servers.push(format!("nats://{part}"));
    }
    Ok(servers)
}

/// The partitions of a `--partitions` list (`0,2,3`), sorted, each once.
pub fn parse_partitions(text: &str) -> Result<Vec<u32>, JetStreamConfigError> {
    let mut partitions = std::collections::BTreeSet::new();
    for part in text.split(',') {
        let n: u32 = part.trim().parse().map_err(|_| {
            JetStreamConfigError::Setting(format!(
                "--partitions {text:?}: expected partition numbers separated by commas, e.g. 0,2"
            ))
        })?;
        partitions.insert(n);
    }
    Ok(partitions.into_iter().collect())
}

/// CURVE settings of a daemon that accepts forwarded events (`--curve-secret-key`,
/// `--curve-allow`).
#[derive(Debug, Clone)]
pub struct CurveServer {
    /// This daemon's key pair.
    pub keys: KeyPair,
    /// Directory of the public keys allowed to forward (read at every handshake).
    pub allow_dir: PathBuf,
}

/// CURVE settings of a forwarding daemon (`--curve-secret-key`, `--curve-master-key`).
#[derive(Debug, Clone)]
pub struct CurveClient {
    /// This daemon's key pair, which the upstream must allow.
    pub keys: KeyPair,
    /// The upstream's public key: only a daemon holding its secret key can answer.
    pub upstream_public: [u8; 32],
}

/// How often a forwarding daemon writes and fsyncs its spool by default: the wait before an
/// event can be forwarded, and what `kill -9` of the daemon can lose. 25 ms: end-to-end latency
/// under load p50 ~60 ms, p99 ~130–170 ms on the benchmark machine (100 ms gave ~150 / ~270–440
/// ms), for 40 fsyncs a second.
pub const SPOOL_SYNC_INTERVAL: Duration = Duration::from_millis(25);

/// Forwarding settings of a local daemon.
#[derive(Debug, Clone)]
pub struct ForwardTo {
    /// The upstream's control endpoint (`--publish-control`, default: `--publish`'s port − 1).
    pub upstream_control: String,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// Hard bound on the spool's size.
    pub spool_max_bytes: u64,
    /// Spool segment size.
    pub segment_bytes: u64,
    /// Spool fsync interval ([`SPOOL_SYNC_INTERVAL`] by default).
    pub sync_interval: Duration,
    /// Resend after this long without a confirmation.
    pub ack_timeout: Duration,
    /// CURVE towards the upstream, when it requires it.
    pub curve: Option<CurveClient>,
    /// Publish to a NATS JetStream stream instead of a master (`--publish nats://…`); needs the
    /// `jetstream` feature.
    pub jetstream: Option<JetStreamConfig>,
}

/// Why the forwarding flags do not name an upstream this daemon can reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardToError {
    /// `--publish-control` is malformed or does not resolve.
    #[error("--publish-control: {0}")]
    Control(EndpointError),
    /// `--publish` is malformed or does not resolve.
    #[error("--publish: {0}")]
    Publish(EndpointError),
    /// `--publish` has no port to derive the control port from.
    #[error("--publish {0:?} is not HOST:PORT")]
    NotHostPort(String),
    /// `--publish`'s port has no port below it.
    #[error("--publish port 1 or 0 has no control port below it: give --publish-control")]
    NoPortBelow,
    /// The derived control address does not resolve.
    #[error("the master's control address: {0}")]
    UpstreamControl(EndpointError),
}

impl ForwardTo {
    /// Forwarding to the daemon collecting at `publish` (HOST:PORT), whose control endpoint is at
    /// `control` or, by the default layout, on the port below.
    pub fn new(
        publish: &str,
        control: Option<&str>,
        spool_dir: PathBuf,
    ) -> Result<ForwardTo, ForwardToError> {
        let upstream_control = match control {
            Some(c) => {
                crate::endpoint::resolve(c).map_err(ForwardToError::Control)?;
                c.to_owned()
            }
            None => {
                let master = Endpoint::parse(publish).map_err(ForwardToError::Publish)?;
                let port = master
                    .port()
                    .ok_or_else(|| ForwardToError::NotHostPort(publish.to_owned()))?;
                let below = port
                    .checked_sub(1)
                    .filter(|p| *p > 0)
                    .ok_or(ForwardToError::NoPortBelow)?;
                master.with_port(below).to_string()
            }
        };
        // Checked now: a name that does not resolve is a typo more often than an outage.
        crate::endpoint::resolve(&upstream_control).map_err(ForwardToError::UpstreamControl)?;
        Ok(ForwardTo {
            upstream_control,
            spool_dir,
            spool_max_bytes: 10 << 30,
            segment_bytes: 64 << 20,
            sync_interval: SPOOL_SYNC_INTERVAL,
            ack_timeout: Duration::from_secs(3),
            curve: None,
            jetstream: None,
        })
    }

    /// Publishing to the NATS JetStream stream of `jetstream` through the spool in `spool_dir`.
    pub fn jetstream(jetstream: JetStreamConfig, spool_dir: PathBuf) -> ForwardTo {
        ForwardTo {
            upstream_control: String::new(),
            spool_dir,
            spool_max_bytes: 10 << 30,
            segment_bytes: 64 << 20,
            sync_interval: SPOOL_SYNC_INTERVAL,
            // A publish waits up to 5 s for the stream's acknowledgement (a leader election takes
            // about 3 s); the link answers every batch within that.
            ack_timeout: Duration::from_secs(10),
            curve: None,
            jetstream: Some(jetstream),
        }
    }
}

/// The control address that goes with a collect address when `--control` is not given: the
/// same host, the port below (3514 → 3513), as in the default layout; port 0 stays 0 (free).
pub fn default_control(collect: &str) -> Result<String, EndpointError> {
    match Endpoint::parse(collect)? {
        Endpoint::Tcp { host, port } => Ok(Endpoint::Tcp {
            host,
            port: port.saturating_sub(1),
        }
        .to_string()),
        Endpoint::Other(_) => Ok("127.0.0.1:3513".to_owned()),
    }
}

/// The forward address that goes with a collect address when `--forward-listen` is not given:
/// the same host, a free port (announced by `SOCK_FORWARD`).
pub fn default_forward_listen(collect: &str) -> Result<String, EndpointError> {
    match Endpoint::parse(collect)? {
        e @ Endpoint::Tcp { .. } => Ok(e.with_port(0).to_string()),
        Endpoint::Other(_) => Ok("127.0.0.1:0".to_owned()),
    }
}

/// The documented default spool directory for a daemon collecting on `collect`.
pub fn default_spool_dir(collect: &str) -> PathBuf {
    let port = collect.rsplit_once(':').map_or("default", |(_, p)| p);
    PathBuf::from(format!("/var/tmp/ziggyd/spool-{port}"))
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
            forward: None,
            forward_listen: "127.0.0.1:0".into(),
            forward_curve: None,
            consume: None,
        }
    }
}

impl DaemonConfig {
    /// The hard cap on a frame at the accepting sockets (`ZMQ_MAXMSGSIZE`): 4 × the frame
    /// limit. ZeroMQ copies it into a socket's listener at bind time, and drops the connection
    /// of a frame over it without a word (see `connections`).
    pub(crate) fn max_message_bytes(&self) -> i64 {
        (self.limits.max_frame_bytes as i64).saturating_mul(4)
    }

    /// A config on free loopback ports, for tests and embedding.
    pub fn ephemeral() -> Self {
        DaemonConfig {
            collect: "127.0.0.1:0".into(),
            control: "127.0.0.1:0".into(),
            ..Default::default()
        }
    }
}

/// The TCP port of a bound endpoint (`tcp://127.0.0.1:4567` → 4567).
pub(crate) fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit_once(':')?.1.parse().ok()
}
