//! The master's gate for forwarding daemons when CURVE is on: a ZAP handler that admits only the
//! public keys found in `--curve-allow DIR`, and a monitor of the forward socket that counts
//! handshakes that failed before ZAP was asked (no CURVE, or not this master's public key).
//!
//! libzmq asks the handler bound at `inproc://zeromq.zap.01` in the socket's context before it
//! completes a CURVE handshake (RFC 27, ZAP). The directory is read again at every handshake
//! (they happen once per connection), so adding a key file admits that daemon at its next
//! reconnection without restarting; removing one refuses its next connection (a connection already
//! established stays up until it drops).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::CurveServer;
use crate::connections::Watch;
use crate::curve::{self, KeyError};
use crate::ratelog::RateLimitedLog;
use crate::runtime::Shared;
use crate::sockets;
use crate::stats::DaemonStats;

/// The ZAP domain the forward socket declares.
pub const FORWARD_ZAP_DOMAIN: &str = "ziggyd-forward";
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
const MONITOR_ENDPOINT: &str = "inproc://ziggyd-forward-monitor";

/// Why CURVE cannot be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum CurveSetupError {
    /// CURVE for the forward socket, on a daemon that has none.
    #[error("CURVE: the forward socket exists only on a daemon that writes files (--log-path)")]
    NoForwardSocket,
    /// No CURVE in this libzmq, or the allow directory cannot be read.
    #[error("CURVE: {0}")]
    Keys(#[from] KeyError),
    /// The ZAP handler could not be bound.
    #[error("CURVE: cannot start the ZAP handler: {0}")]
    Zap(zmq::Error),
}

/// The public keys allowed to forward, read from a directory of key files.
#[derive(Debug)]
pub struct AllowList {
    dir: PathBuf,
    keys: HashMap<[u8; 32], String>,
}

impl AllowList {
    /// Reads every key file in `dir`. A file that holds no public key is reported on stderr and
    /// skipped; an unreadable directory is an error.
    pub fn load(dir: &Path) -> Result<AllowList, KeyError> {
        let mut list = AllowList {
            dir: dir.to_owned(),
            keys: HashMap::new(),
        };
        list.keys = list.read(&mut |problem| eprintln!("ziggyd: --curve-allow: {problem}"))?;
        Ok(list)
    }

    /// How many keys are allowed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is allowed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The file name that allows `key`, if any.
    pub fn allows(&self, key: &[u8; 32]) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    fn read(&self, warn: &mut dyn FnMut(String)) -> Result<HashMap<[u8; 32], String>, KeyError> {
        let io = |source| KeyError::Io {
            path: self.dir.display().to_string(),
            source,
        };
        let mut keys = HashMap::new();
        for entry in fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            match curve::read_public_file(&path) {
                Ok(key) => {
                    if name.ends_with(".secret") {
                        warn(format!(
                            "{}: a secret key file; only public keys belong here",
                            path.display()
                        ));
                    }
                    keys.insert(key, name);
                }
                Err(e) => warn(format!("{e}; skipped")),
            }
        }
        Ok(keys)
    }

    /// Reads the directory again; keeps the previous list if it cannot be read.
    fn refresh(&mut self, log: &mut RateLimitedLog) {
        let mut warnings = Vec::new();
        match self.read(&mut |w| warnings.push(w)) {
            Ok(keys) => self.keys = keys,
            Err(e) => log.log("allow-dir", || {
                format!("cannot read --curve-allow ({e}); keeping the previous keys")
            }),
        }
        for w in warnings {
            log.log("allow-file", || format!("--curve-allow: {w}"));
        }
    }
}

/// The gate's sockets and state; [`Gate::run`] serves it on its own thread.
pub struct Gate {
    zap: zmq::Socket,
    monitor: zmq::Socket,
    /// A socket has one monitor, so the gate's also counts the forward socket's connections.
    watch: Watch,
    allow: AllowList,
    stats: Arc<DaemonStats>,
    shutdown: Arc<AtomicBool>,
    /// Bumped by SIGHUP: the allow directory is read again at once (it is also read at every
    /// handshake).
    reopen: Arc<AtomicU64>,
}

impl Gate {
    /// Reads the allow directory of `curve` and binds the ZAP handler in the daemon's context;
    /// [`Gate::secure`] then guards the forward socket, which must not accept connections before
    /// (bind it after).
    pub fn build(
        shared: &Shared,
        curve: &CurveServer,
        watch: Watch,
    ) -> Result<Gate, CurveSetupError> {
        let allow = AllowList::load(&curve.allow_dir)?;
        if allow.is_empty() {
            eprintln!(
                "ziggyd: warning: --curve-allow {} holds no public key yet; every forwarding daemon is refused until one is added",
                curve.allow_dir.display()
            );
        }
        let ctx = &shared.ctx;
        let sockets = || -> zmq::Result<(zmq::Socket, zmq::Socket)> {
            let zap = ctx.socket(zmq::REP)?;
            zap.set_linger(0)?;
            zap.bind(ZAP_ENDPOINT)?;
            Ok((zap, sockets::monitor_reader(ctx)?))
        };
        let (zap, monitor) = sockets().map_err(CurveSetupError::Zap)?;
        Ok(Gate {
            zap,
            monitor,
            watch,
            allow,
            stats: shared.stats.clone(),
            shutdown: shared.shutdown.clone(),
            reopen: shared.reopen.clone(),
        })
    }

    /// Makes `socket` a CURVE server with `keys`, asking this gate about every client.
    pub fn secure(&self, socket: &zmq::Socket, keys: &curve::KeyPair) -> zmq::Result<()> {
        socket.set_curve_server(true)?;
        socket.set_curve_secretkey(&keys.secret)?;
        socket.set_zap_domain(FORWARD_ZAP_DOMAIN)?;
        sockets::attach(
            socket,
            &self.monitor,
            MONITOR_ENDPOINT,
            crate::connections::EVENTS,
        )
    }

    /// Tells the connection watch the forward socket's port, once bound.
    pub fn on_port(mut self, port: Option<u16>) -> Gate {
        self.watch = self.watch.on_port(port);
        self
    }

    /// Serves ZAP requests until the forward socket is closed (its monitor stops), or 5 s after
    /// shutdown at the latest.
    pub fn run(mut self) {
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        let mut stopping_since: Option<Instant> = None;
        let mut reopen_seen = self.reopen.load(Ordering::Acquire);
        loop {
            let generation = self.reopen.load(Ordering::Acquire);
            if generation != reopen_seen {
                reopen_seen = generation;
                self.allow.refresh(&mut log);
                eprintln!(
                    "ziggyd: SIGHUP: {} public key(s) allowed in {}",
                    self.allow.len(),
                    self.allow.dir.display()
                );
            }
            let mut items = [
                self.zap.as_poll_item(zmq::POLLIN),
                self.monitor.as_poll_item(zmq::POLLIN),
            ];
            if zmq::poll(&mut items, 200).is_err() {
                break;
            }
            let (zap_ready, monitor_ready) = (items[0].is_readable(), items[1].is_readable());
            if zap_ready && let Ok(request) = self.zap.recv_multipart(0) {
                let reply = self.answer(&request, &mut log);
                let _ = self.zap.send_multipart(reply, 0);
            }
            if monitor_ready && self.monitor_event(&mut log) {
                break;
            }
            if self.shutdown.load(Ordering::Acquire) {
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
        }
    }

    /// The ZAP reply to one request (RFC 27): admits a CURVE client whose key is allowed.
    fn answer(&mut self, request: &[Vec<u8>], log: &mut RateLimitedLog) -> Vec<Vec<u8>> {
        let reply = |id: &[u8], code: &str, text: &str, user: &str| {
            vec![
                b"1.0".to_vec(),
                id.to_vec(),
                code.as_bytes().to_vec(),
                text.as_bytes().to_vec(),
                user.as_bytes().to_vec(),
                Vec::new(),
            ]
        };
        let [
            version,
            id,
            domain,
            address,
            _identity,
            mechanism,
            credentials @ ..,
        ] = request
        else {
            return reply(b"", "500", "malformed ZAP request", "");
        };
        if version != b"1.0" {
            return reply(id, "500", "unsupported ZAP version", "");
        }
        if domain != FORWARD_ZAP_DOMAIN.as_bytes() || mechanism != b"CURVE" {
            // Not the forward socket: no other socket of this daemon uses CURVE or a domain.
            return reply(id, "200", "OK", "");
        }
        let fi = &self.stats.forward_in;
        let Some(key) = credentials
            .first()
            .and_then(|k| <[u8; 32]>::try_from(&k[..]).ok())
        else {
            fi.auth_rejected.fetch_add(1, Ordering::Relaxed);
            return reply(id, "400", "no CURVE key", "");
        };
        self.allow.refresh(log);
        if self.allow.allows(&key).is_some() {
            fi.auth_accepted.fetch_add(1, Ordering::Relaxed);
            // The user id ZeroMQ attaches to this peer's messages: the key itself, so a sender
            // id stays bound to a key whatever its file is called.
            return reply(id, "200", "OK", &curve::z85(&key));
        }
        fi.auth_rejected.fetch_add(1, Ordering::Relaxed);
        let address = String::from_utf8_lossy(address).into_owned();
        let dir = self.allow.dir.display().to_string();
        log.log("refused", || {
            format!(
                "refused a forwarding daemon at {address}: its public key {} is not in {dir}",
                curve::z85(&key)
            )
        });
        reply(id, "400", "public key not allowed", "")
    }

    /// Counts the waiting monitor events; true when the monitored socket has closed.
    fn monitor_event(&mut self, log: &mut RateLimitedLog) -> bool {
        let mut stopped = false;
        for event in self.watch.pump(&self.monitor) {
            if event.is(zmq::SocketEvent::MONITOR_STOPPED) {
                stopped = true;
            }
            // Refused keys are counted by `answer` (ZAP); these failed before ZAP was asked.
            if !event.is(zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL)
                && !event.is(zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL)
            {
                continue;
            }
            self.stats
                .forward_in
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            log.log("handshake", || {
                "a forwarding daemon failed the CURVE handshake (no CURVE, or not this daemon's \
                 public key as --curve-master-key)"
                    .into()
            });
        }
        stopped
    }
}
