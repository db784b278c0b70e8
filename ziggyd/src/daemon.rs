//! Wiring: builds every part from the config (binding every socket, so that bind errors reach
//! the caller), then runs collect → (files, forward, stream) with control beside them, each on
//! its own supervised thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::collect::{CollectSocket, Collector};
use crate::config::DaemonConfig;
use crate::control::{Control, NoForwardPort};
use crate::files::{FileWriter, LogPathError};
use crate::forward::{Forwarder, SpoolError};
use crate::gate::CurveSetupError;
use crate::receive::{ForwardIn, ForwardInError};
use crate::runtime::{Shared, Supervisor, Worker, WorkerDied};
use crate::sockets::BindError;
use crate::stats::DaemonStats;
use crate::stream::LiveStream;

/// Batches (one received frame each) queued towards each sink.
const SINK_QUEUE_BATCHES: usize = 16;

/// Why the daemon could not start: the first part that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// CURVE cannot be set up as configured.
    #[error(transparent)]
    Curve(#[from] CurveSetupError),
    /// A socket could not be bound (collect, control, stream).
    #[error(transparent)]
    Socket(#[from] BindError),
    /// The log directory cannot be used, or another daemon uses it.
    #[error(transparent)]
    LogPath(#[from] LogPathError),
    /// The forward socket or its ledger cannot be set up.
    #[error(transparent)]
    ForwardIn(#[from] ForwardInError),
    /// The spool cannot be used.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The JetStream writer cannot start (its log directory, its partitions, its settings).
    #[cfg(feature = "jetstream")]
    #[error(transparent)]
    JetStreamWriter(#[from] crate::jetstream::consume::WriterBuildError),
    /// The JetStream link cannot start.
    #[cfg(feature = "jetstream")]
    #[error(transparent)]
    JetStream(#[from] crate::jetstream::JetStreamError),
    /// The queue between the collector and the forwarder cannot be made (no file descriptors).
    #[error("cannot make the forwarder's queue: {0}")]
    ForwardQueue(std::io::Error),
    /// NATS JetStream is configured, but this ziggyd was built without it.
    #[error(
        "this ziggyd was built without NATS JetStream support: build it with \
         `cargo build --release -p ziggyd --features jetstream`"
    )]
    NoJetStream,
    /// `--consume` without a log directory to write into.
    #[error("--consume needs --log-path DIR: the directory the writer writes the files into")]
    ConsumeWithoutLogPath,
}

/// A running daemon. Dropping it stops it, as [`Daemon::stop`] does.
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
    workers: Supervisor,
}

impl Daemon {
    /// Builds and starts every part. Returns once all sockets are bound.
    pub fn start(config: DaemonConfig) -> Result<Daemon, StartError> {
        check_curve(&config)?;
        warn_beyond_loopback(&config);
        let shared = Shared::new();
        let collect = CollectSocket::build(&shared, &config)?;
        let mut control = Control::build(&shared, &config)?;
        let stream = LiveStream::build(&shared, &config)?;
        let (outcomes, durable) = crossbeam_channel::unbounded();
        // A JetStream writer writes only what it consumes: the directory is shared with the
        // writers of other partitions, so neither app events nor forwarded batches go there.
        let log_path = config
            .log_path
            .as_ref()
            .filter(|_| config.consume.is_none());
        let files = match log_path {
            Some(dir) => Some(FileWriter::build(&shared, &config, dir, outcomes)?),
            None => None,
        };
        let forward_in = match log_path {
            Some(dir) => Some(ForwardIn::build(&shared, &config, dir, durable)?),
            None => None,
        };
        if config.consume.is_some() && config.log_path.is_none() {
            return Err(StartError::ConsumeWithoutLogPath);
        }
        let publishes_to_jetstream = config.forward.as_ref().and_then(|f| f.jetstream.as_ref());
        #[cfg(not(feature = "jetstream"))]
        if config.consume.is_some() || publishes_to_jetstream.is_some() {
            return Err(StartError::NoJetStream);
        }
        #[cfg(feature = "jetstream")]
        let writer = match (&config.consume, &config.log_path) {
            (Some(consume), Some(dir)) => Some(crate::jetstream::consume::JetStreamWriter::build(
                &shared, &config, consume, dir,
            )?),
            _ => None,
        };
        #[cfg(feature = "jetstream")]
        let jetstream_link = match publishes_to_jetstream {
            Some(js) => Some(crate::jetstream::publish::JetStreamLink::start(
                js.clone(),
                &shared.stats,
            )?),
            None => None,
        };
        let forwarder = match &config.forward {
            #[cfg(feature = "jetstream")]
            Some(forward) => {
                Some(Forwarder::build(&shared, forward)?.with_jetstream(jetstream_link))
            }
            #[cfg(not(feature = "jetstream"))]
            Some(forward) => Some(Forwarder::build(&shared, forward)?),
            None => None,
        };

        // Made before any thread starts: failing here (no file descriptor left) leaves none behind.
        let forward_queue = match &forwarder {
            Some(_) => Some(
                crate::bell::queue_with_bell(SINK_QUEUE_BATCHES)
                    .map_err(StartError::ForwardQueue)?,
            ),
            None => None,
        };

        let mut workers = Supervisor::new(shared.shutdown.clone());
        let mut sinks = Vec::new();
        let watcher = collect.watcher;
        workers.spawn(Worker::new("ziggyd-conns", move || watcher.run()));
        if let Some(files) = files {
            let (output, batches) = crate::bell::queue(SINK_QUEUE_BATCHES);
            sinks.push(output);
            workers.spawn(Worker::new("ziggyd-files", move || files.run(batches)));
        }
        #[cfg(feature = "jetstream")]
        if let Some(writer) = writer {
            workers.spawn(Worker::new("ziggyd-jetstream", move || writer.run()));
        }

        let mut forward_port = Err(NoForwardPort::NoLogPath);
        let forward_in = forward_in.map(|parts| {
            forward_port = parts.port;
            workers.spawn(parts.guard);
            parts.forward_in
        });
        if let (Some(forwarder), Some((output, input))) = (forwarder, forward_queue) {
            sinks.push(output);
            workers.spawn(Worker::new("ziggyd-forward", move || forwarder.run(input)));
        }
        control.announce(&collect.bound.endpoint, stream.endpoint(), forward_port);
        let (collect_endpoint, control_endpoint, stream_endpoint) = (
            collect.bound.endpoint.clone(),
            control.endpoint().to_owned(),
            stream.endpoint().to_owned(),
        );
        workers.spawn(Worker::new("ziggyd-control", move || control.run()));
        let collector = Collector::new(&shared, &config, collect.bound, stream, sinks, forward_in);
        workers.spawn(Worker::new("ziggyd-collect", move || collector.run()));
        Ok(Daemon {
            collect_endpoint,
            control_endpoint,
            stream_endpoint,
            stats: shared.stats,
            shutdown: shared.shutdown,
            reopen: shared.reopen,
            workers,
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

    /// Which worker thread died and why, if one did (the daemon is then stopping).
    pub fn death(&self) -> Option<WorkerDied> {
        self.workers.death()
    }

    /// A handle on [`Daemon::death`] that outlives the daemon value.
    pub fn death_watch(&self) -> impl Fn() -> Option<WorkerDied> + Send + 'static {
        self.workers.death_watch()
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
    pub fn wait_for_exit(mut self) -> Result<(), WorkerDied> {
        self.workers.join()
    }

    /// Stops the daemon and waits for it.
    pub fn stop(self) {
        self.request_shutdown();
        self.wait();
    }
}

impl Drop for Daemon {
    /// Stops the daemon unless it was already waited for ([`Daemon::stop`], [`Daemon::wait`]):
    /// its threads write out what they hold before the value is gone.
    fn drop(&mut self) {
        if self.workers.running() {
            self.request_shutdown();
            let _ = self.workers.join();
        }
    }
}

/// CURVE needs a forward socket to guard (`--log-path`) and a libzmq built with it.
fn check_curve(config: &DaemonConfig) -> Result<(), CurveSetupError> {
    if config.forward_curve.is_some() && config.log_path.is_none() {
        return Err(CurveSetupError::NoForwardSocket);
    }
    let client = config.forward.as_ref().is_some_and(|f| f.curve.is_some());
    if (config.forward_curve.is_some() || client) && !crate::curve::available() {
        return Err(crate::curve::KeyError::Unsupported.into());
    }
    Ok(())
}

/// Warns about sockets bound beyond loopback without authentication (before binding them).
fn warn_beyond_loopback(config: &DaemonConfig) {
    for (what, addr) in [
        ("collect", &config.collect),
        ("control", &config.control),
        ("forward", &config.forward_listen),
    ] {
        if what == "forward" && config.log_path.is_none() {
            continue;
        }
        let Ok(endpoint) = crate::endpoint::resolve(addr).map(|r| r.endpoint) else {
            continue; // binding reports it
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
}

/// The soft and hard limits of open files, before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit found.
    pub before: libc::rlim_t,
    /// The soft limit now (the hard limit, unless it could not be raised).
    pub after: libc::rlim_t,
}

/// Raises this process's soft limit of open files to its hard limit, as daemons commonly do:
/// every connection and every open log file is one, and the usual soft limit (1,024) is low for
/// a collector.
pub fn raise_open_file_limit() -> std::io::Result<OpenFileLimit> {
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
        return Ok(OpenFileLimit {
            before,
            after: before,
        });
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OpenFileLimit {
        before,
        after: limit.rlim_cur,
    })
}
