//! Wiring: binds every socket (so bind errors reach the caller), then runs collect → (files,
//! stream) with control beside them, each on its own thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::collect::Collector;
use crate::config::{DaemonConfig, endpoint_port};
use crate::connections::{Side, Watch};
use crate::control::Control;
use crate::endpoint::{Endpoint, EndpointError};
use crate::files::FileWriter;
use crate::forward::{ForwardConfig, Forwarder};
use crate::gate::{AllowList, Gate};
use crate::lock::{DirLock, LockError};
use crate::receive::{ForwardIn, SenderLedger};
use crate::spool::{Spool, SpoolConfig};
use crate::stats::DaemonStats;

/// Frames the collect socket queues before pushing back on senders.
const COLLECT_HWM_FRAMES: i32 = 64;
/// Batches (one received frame each) queued towards each sink.
const SINK_QUEUE_BATCHES: usize = 16;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not bind its address.
    #[error("cannot bind the {what} socket to {endpoint}: {source}")]
    Bind {
        /// Which socket (collect, control, stream).
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
    /// The spool directory could not be opened.
    #[error("cannot use spool directory {path}: {source}")]
    Spool {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log directory could not be created.
    #[error("cannot use log path {path}: {source}")]
    LogPath {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// CURVE could not be set up (keys, allow directory, ZAP handler).
    #[error("CURVE: {0}")]
    Curve(String),
    /// Another daemon uses the same directory.
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// The first worker thread that died, and why.
type Death = Arc<Mutex<Option<String>>>;

/// A running daemon.
pub struct Daemon {
    /// Where the collect socket is bound (with the real port).
    pub collect_endpoint: String,
    /// Where the control socket is bound.
    pub control_endpoint: String,
    /// Where the live stream is bound.
    pub stream_endpoint: String,
    stats: Arc<DaemonStats>,
    shutdown: Arc<AtomicBool>,
    reopen: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    died: Death,
    /// Held while the daemon runs: one daemon per log path.
    _locks: Vec<DirLock>,
}

/// Binds after `prepare` has set the socket's options: ZeroMQ applies options to accepted
/// connections only if they were set before the bind.
fn bind_with(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
    addr: &str,
    prepare: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> Result<(zmq::Socket, String), StartError> {
    let resolved = Endpoint::parse(addr)
        .and_then(|e| e.resolve())
        .map_err(|source| StartError::Address { what, source })?;
    let endpoint = resolved.endpoint;
    let err = |source| StartError::Bind {
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
    Ok((socket, bound))
}

impl Daemon {
    /// Binds and starts every part. Returns once all sockets are bound.
    pub fn start(config: DaemonConfig) -> Result<Daemon, StartError> {
        if config.forward_curve.is_some() && config.log_path.is_none() {
            return Err(StartError::Curve(
                "the forward socket exists only on a daemon that writes files (--log-path)".into(),
            ));
        }
        if (config.forward_curve.is_some()
            || config.forward.as_ref().is_some_and(|f| f.curve.is_some()))
            && !crate::curve::available()
        {
            return Err(StartError::Curve(
                crate::curve::KeyError::Unsupported.to_string(),
            ));
        }
        let ctx = zmq::Context::new();
        for (what, addr) in [
            ("collect", &config.collect),
            ("control", &config.control),
            ("forward", &config.forward_listen),
        ] {
            if what == "forward" && config.log_path.is_none() {
                continue;
            }
            let Ok(endpoint) = crate::endpoint::resolve(addr).map(|r| r.endpoint) else {
                continue; // bind_with reports it
            };
            let authenticated = what == "forward" && config.forward_curve.is_some();
            if endpoint.starts_with("tcp://")
                && !crate::control::is_loopback(&endpoint)
                && !authenticated
            {
                eprintln!(
                    "ziggyd: warning: the {what} socket binds {endpoint}, beyond loopback, without authentication"
                );
            }
        }
        // ZeroMQ copies a socket's options into its listener at bind time, so every limit is set
        // before binding (set after, it would not apply to the connections accepted).
        let max_message = (config.limits.max_frame_bytes as i64).saturating_mul(4);
        // A frame over `max_message` makes ZeroMQ drop its connection without a word: a monitor
        // of each accepting socket counts and logs connections (see `connections`).
        let mut collect_monitor = None;
        let (pull, collect_endpoint) =
            bind_with(&ctx, zmq::PULL, "collect", &config.collect, |s| {
                // Memory is bounded by frames, not events: a frame may hold 64 KiB of events, so
                // a deep receive queue would be hundreds of MiB. Past this, back-pressure reaches
                // the senders.
                s.set_rcvhwm(COLLECT_HWM_FRAMES)?;
                s.set_maxmsgsize(max_message)?;
                collect_monitor = Some(crate::connections::monitor(
                    &ctx,
                    s,
                    "inproc://ziggyd-collect-connections",
                )?);
                Ok(())
            })?;
        let (control_socket, control_endpoint) =
            bind_with(&ctx, zmq::REP, "control", &config.control, |s| {
                // Requests over MAX_REQUEST_BYTES get an error reply; ZeroMQ only cuts the
                // connection of a request so large that buffering it would be the attack.
                s.set_maxmsgsize(crate::control::MAX_BUFFERED_REQUEST_BYTES as i64)
            })?;
        let (stream, stream_endpoint) = bind_with(&ctx, zmq::PUB, "stream", &config.stream, |s| {
            s.set_sndhwm(10_000)
        })?;
        let stats = Arc::new(DaemonStats::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicU64::new(0));
        let died: Death = Arc::default();
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            spawn_watched(name, f, died.clone(), shutdown.clone())
        };
        let mut locks = Vec::new();
        let mut threads = Vec::new();
        let mut sinks = Vec::new();
        let watch = |side| {
            Watch::new(
                side,
                stats.clone(),
                max_message,
                config.verbose,
                config.log_interval,
            )
        };
        if let Some(monitor) = collect_monitor {
            let watch = watch(Side::Collect).on_port(endpoint_port(&collect_endpoint));
            let shutdown = shutdown.clone();
            threads.push(spawn(
                "ziggyd-conns",
                Box::new(move || watch.run(monitor, shutdown)),
            ));
        }

        let mut forward_in = None;
        let mut forward_port = Err(
            "this daemon writes no files: start it with --log-path to accept forwarding".to_owned(),
        );
        if let Some(dir) = &config.log_path {
            let log_err = |source| StartError::LogPath {
                path: dir.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dir).map_err(log_err)?;
            locks.push(DirLock::acquire(dir, ".ziggyd-lock")?);
            let (outcomes_tx, outcomes_rx) = crossbeam_channel::unbounded();
            let writer = FileWriter::new(dir, stats.clone())
                .map_err(log_err)?
                .with_outcomes(outcomes_tx)
                .with_reopen(reopen.clone());
            let (tx, rx) = crossbeam_channel::bounded(SINK_QUEUE_BATCHES);
            sinks.push(tx);
            let (flush, idle) = (config.flush_interval, config.idle_close);
            threads.push(spawn(
                "ziggyd-files",
                Box::new(move || writer.run(rx, flush, idle)),
            ));
            // A forwarded batch is a frame like any other: the same hard cap on its size.
            let cap = |s: &zmq::Socket| s.set_maxmsgsize(max_message);
            let (socket, endpoint) = match &config.forward_curve {
                None => {
                    let mut monitor = None;
                    let bound =
                        bind_with(&ctx, zmq::ROUTER, "forward", &config.forward_listen, |s| {
                            cap(s)?;
                            monitor = Some(crate::connections::monitor(
                                &ctx,
                                s,
                                "inproc://ziggyd-forward-connections",
                            )?);
                            Ok(())
                        })?;
                    if let Some(monitor) = monitor {
                        let watch = watch(Side::Forward).on_port(endpoint_port(&bound.1));
                        let shutdown = shutdown.clone();
                        threads.push(spawn(
                            "ziggyd-fwd-conns",
                            Box::new(move || watch.run(monitor, shutdown)),
                        ));
                    }
                    bound
                }
                Some(curve) => {
                    let allow = AllowList::load(&curve.allow_dir)
                        .map_err(|e| StartError::Curve(e.to_string()))?;
                    if allow.is_empty() {
                        eprintln!(
                            "ziggyd: warning: --curve-allow {} holds no public key yet; every forwarding daemon is refused until one is added",
                            curve.allow_dir.display()
                        );
                    }
                    let gate = Gate::install(
                        &ctx,
                        allow,
                        stats.clone(),
                        shutdown.clone(),
                        watch(Side::Forward),
                    )
                    .map(|g| g.with_reopen(reopen.clone()))
                    .map_err(|e| StartError::Curve(format!("cannot start the ZAP handler: {e}")))?;
                    let bound =
                        bind_with(&ctx, zmq::ROUTER, "forward", &config.forward_listen, |s| {
                            cap(s)?;
                            gate.secure(s, &curve.keys)
                        })?;
                    let gate = gate.on_port(endpoint_port(&bound.1));
                    threads.push(spawn("ziggyd-gate", Box::new(move || gate.run())));
                    bound
                }
            };
            forward_port = endpoint_port(&endpoint)
                .ok_or_else(|| "the forward socket is not on a TCP port".to_owned());
            let ledger = SenderLedger::open(dir).map_err(log_err)?;
            forward_in = Some(ForwardIn::new(socket, ledger, outcomes_rx));
        }

        if let Some(forward) = &config.forward {
            let spool_config = SpoolConfig {
                dir: forward.spool_dir.clone(),
                segment_bytes: forward.segment_bytes,
                max_bytes: forward.spool_max_bytes,
            };
            let spool_err = |source| StartError::Spool {
                path: forward.spool_dir.display().to_string(),
                source,
            };
            let (spool, recovery) = Spool::open(spool_config).map_err(spool_err)?;
            report_recovery(&forward.spool_dir, &recovery);
            // Gauges are right from the first STATUS, before the forwarder's first turn.
            let f = &stats.forward;
            f.enabled.store(true, Ordering::Relaxed);
            f.spool_corrupt.store(recovery.corrupt, Ordering::Relaxed);
            f.spool_cut_bytes
                .store(recovery.bytes_cut, Ordering::Relaxed);
            f.spool_lost.store(recovery.lost, Ordering::Relaxed);
            f.epochs
                .store(recovery.epoch.is_some() as u64, Ordering::Relaxed);
            f.spool_events.store(spool.depth(), Ordering::Relaxed);
            f.spooled_seq.store(spool.synced_seq(), Ordering::Relaxed);
            f.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
            let (tx, rx) = crossbeam_channel::bounded(SINK_QUEUE_BATCHES);
            sinks.push(tx);
            let forwarder = Forwarder::new(
                spool,
                rx,
                ForwardConfig {
                    upstream_control: forward.upstream_control.clone(),
                    sync_interval: forward.sync_interval,
                    ack_timeout: forward.ack_timeout,
                    curve: forward.curve.clone(),
                },
                stats.clone(),
                shutdown.clone(),
            );
            threads.push(spawn("ziggyd-forward", Box::new(move || forwarder.run())));
        }

        let control = Control {
            socket: control_socket,
            stats: stats.clone(),
            collect_port: endpoint_port(&collect_endpoint),
            stream_port: endpoint_port(&stream_endpoint),
            forward_port,
            collect_endpoint: collect_endpoint.clone(),
            stream_endpoint: stream_endpoint.clone(),
            shutdown: shutdown.clone(),
        };
        threads.push(spawn("ziggyd-control", Box::new(move || control.run())));

        let collector = Collector {
            pull,
            pull_endpoint: collect_endpoint.clone(),
            stream,
            sinks,
            stats: stats.clone(),
            limits: config.limits,
            log_interval: config.log_interval,
            shutdown: shutdown.clone(),
            forward_in,
        };
        threads.push(spawn("ziggyd-collect", Box::new(move || collector.run())));
        // The context lives as long as its sockets; they own references to it.
        drop(ctx);
        Ok(Daemon {
            collect_endpoint,
            control_endpoint,
            stream_endpoint,
            stats,
            shutdown,
            reopen,
            threads,
            died,
            _locks: locks,
        })
    }

    /// Asks every log file to be closed and reopened at its next write, and the CURVE allow
    /// directory to be read again (what SIGHUP does).
    pub fn request_reopen(&self) {
        self.reopen.fetch_add(1, Ordering::AcqRel);
    }

    /// The counter [`Daemon::request_reopen`] bumps (a signal handler may bump it too).
    pub fn reopen_handle(&self) -> Arc<AtomicU64> {
        self.reopen.clone()
    }

    /// Why a worker thread died, if one did (the daemon is then stopping).
    pub fn death(&self) -> Option<String> {
        self.died.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle on [`Daemon::death`] that outlives the daemon value.
    pub fn death_watch(&self) -> impl Fn() -> Option<String> + Send + 'static {
        let died = self.died.clone();
        move || died.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The flag that stops the daemon when set (signal handlers set it too).
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// The daemon's counters.
    pub fn stats(&self) -> &Arc<DaemonStats> {
        &self.stats
    }

    /// Asks the daemon to stop (as `SHUTDOWN` does).
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// Waits until the daemon has stopped (by `SHUTDOWN`, a signal or [`Daemon::request_shutdown`])
    /// and everything received is written.
    pub fn wait(self) {
        let _ = self.wait_for_exit();
    }

    /// Waits as [`Daemon::wait`] does; `Err` names the worker thread that died and why.
    pub fn wait_for_exit(self) -> Result<(), String> {
        for t in self.threads {
            let _ = t.join();
        }
        match self.died.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(death) => Err(death),
            None => Ok(()),
        }
    }

    /// Stops the daemon and waits for it.
    pub fn stop(self) {
        self.request_shutdown();
        self.wait();
    }
}

/// Raises this process's soft limit of open files to its hard limit, as daemons commonly do:
/// every connection and every open log file is one, and the usual soft limit (1,024) is low for
/// a collector. Returns the limits before and after.
pub fn raise_open_file_limit() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok((before, before));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((before, limit.rlim_cur))
}

/// Tells the operator what opening the spool found: damage cut out, events lost, a new sender id.
fn report_recovery(dir: &std::path::Path, recovery: &crate::spool::Recovery) {
    let dir = dir.display();
    for d in &recovery.damage {
        let lost = if d.lost > 0 {
            format!("{} unconfirmed event(s) lost", d.lost)
        } else {
            "no unconfirmed event known lost".to_owned()
        };
        eprintln!(
            "ziggyd: spool {dir}: {}: damaged bytes {}..{} ({} bytes) cut out; {lost}",
            d.segment.file_name().unwrap_or_default().to_string_lossy(),
            d.start,
            d.end,
            d.end - d.start
        );
    }
    if recovery.corrupt > 0 {
        eprintln!(
            "ziggyd: spool {dir}: {} damaged place(s), {} bytes cut, {} events lost; {} records kept and will be forwarded",
            recovery.corrupt, recovery.bytes_cut, recovery.lost, recovery.records
        );
    }
    if let Some(epoch) = &recovery.epoch {
        eprintln!(
            "ziggyd: spool {dir}: new sender id {} (was {}): {}; {} unconfirmed events on disk go (again) under the new id, and none of the old id's sequence numbers is reused",
            epoch.new_id,
            epoch.old_id.as_deref().unwrap_or("unknown"),
            epoch.reason,
            epoch.resent
        );
    }
}

/// Runs a worker thread. If it panics (a bug: no input should make one), the daemon records
/// it and stops: a daemon missing a worker must not go on answering STATUS as if it were well.
fn spawn_watched(
    name: &'static str,
    f: Box<dyn FnOnce() + Send>,
    died: Death,
    shutdown: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // A test hook: proves a dead worker stops the daemon (see tests/tests/master_faults.rs).
            let doomed = std::env::var("ZIGGYD_PANIC_THREAD").is_ok_and(|t| t == name);
            let run = move || {
                if doomed {
                    panic!("ZIGGYD_PANIC_THREAD={name} asked this thread to panic");
                }
                f()
            };
            let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) else {
                return;
            };
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let death = format!("the {name} thread died: {why}");
            eprintln!("ziggyd: {death}; stopping");
            died.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(death);
            shutdown.store(true, Ordering::Release);
        })
        .expect("spawning a ziggyd thread")
}
