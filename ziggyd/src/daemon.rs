//! Wiring: binds every socket (so bind errors reach the caller), then runs collect → (files,
//! stream) with control beside them, each on its own thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::collect::Collector;
use crate::config::{DaemonConfig, bind_endpoint, endpoint_port};
use crate::control::Control;
use crate::files::FileWriter;
use crate::stats::DaemonStats;

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
    /// The log directory could not be created.
    #[error("cannot use log path {path}: {source}")]
    LogPath {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

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
    threads: Vec<JoinHandle<()>>,
}

fn bind(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
    addr: &str,
) -> Result<(zmq::Socket, String), StartError> {
    let endpoint = bind_endpoint(addr);
    let err = |source| StartError::Bind {
        what,
        endpoint: endpoint.clone(),
        source,
    };
    let socket = ctx.socket(kind).map_err(err)?;
    socket.set_linger(1000).map_err(err)?;
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
        let ctx = zmq::Context::new();
        let (pull, collect_endpoint) = bind(&ctx, zmq::PULL, "collect", &config.collect)?;
        let _ = pull.set_rcvhwm(100_000);
        let _ = pull.set_maxmsgsize((config.limits.max_frame_bytes as i64).saturating_mul(4));
        let (control_socket, control_endpoint) = bind(&ctx, zmq::REP, "control", &config.control)?;
        let (stream, stream_endpoint) = bind(&ctx, zmq::PUB, "stream", &config.stream)?;
        let _ = stream.set_sndhwm(10_000);
        let stats = Arc::new(DaemonStats::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut sinks = Vec::new();

        if let Some(dir) = &config.log_path {
            let writer =
                FileWriter::new(dir, stats.clone()).map_err(|source| StartError::LogPath {
                    path: dir.display().to_string(),
                    source,
                })?;
            let (tx, rx) = crossbeam_channel::bounded(1024);
            sinks.push(tx);
            let (flush, idle) = (config.flush_interval, config.idle_close);
            threads.push(spawn("ziggyd-files", move || writer.run(rx, flush, idle)));
        }

        let control = Control {
            socket: control_socket,
            stats: stats.clone(),
            collect_port: endpoint_port(&collect_endpoint),
            stream_port: endpoint_port(&stream_endpoint),
            collect_endpoint: collect_endpoint.clone(),
            stream_endpoint: stream_endpoint.clone(),
            shutdown: shutdown.clone(),
        };
        threads.push(spawn("ziggyd-control", move || control.run()));

        let collector = Collector {
            pull,
            pull_endpoint: collect_endpoint.clone(),
            stream,
            sinks,
            stats: stats.clone(),
            limits: config.limits,
            log_interval: config.log_interval,
            shutdown: shutdown.clone(),
        };
        threads.push(spawn("ziggyd-collect", move || collector.run()));
        // The context lives as long as its sockets; they own references to it.
        drop(ctx);
        Ok(Daemon {
            collect_endpoint,
            control_endpoint,
            stream_endpoint,
            stats,
            shutdown,
            threads,
        })
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
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Stops the daemon and waits for it.
    pub fn stop(self) {
        self.request_shutdown();
        self.wait();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a ziggyd thread")
}
