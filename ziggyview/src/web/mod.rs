//! `ziggyview serve`: the web view. A small axum server on loopback serves one static page
//! (embedded in the binary) and the JSON endpoints it uses (docs/WEB.md): search with paging,
//! one request as a waterfall, a timer's histogram and percentiles, and a daemon's live stream.
//!
//! Every file read is one the log layout names (`DIR/YYYYMMDD/<channel>.YYYYMMDD.bson`), built
//! from a parsed day and a valid channel name, and checked once open to lie under the log path:
//! nothing from a request is ever used as a path. Files are read incrementally in bounded
//! chunks, and scans are limited in number and time, so one request cannot hold a day in memory.

mod assets;
mod files;
mod filter;
mod live;
mod params;
mod request;
mod routes;
mod scan;
mod search;
mod timers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::safe::escape;

/// What `ziggyview serve` serves.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The log directory to search (`--log-path`).
    pub log_path: Option<PathBuf>,
    /// A daemon to stream live from (`-H`: its control or collect address).
    pub live: Option<String>,
    /// Where to listen (`--listen`, loopback by default).
    pub listen: String,
    /// Host names answered besides the loopback names and the address listened on
    /// (`--allow-host`, without the port).
    pub allow_hosts: Vec<String>,
    /// How long to wait for each answer of the daemon's control endpoint.
    pub timeout: Duration,
}

/// Why the web view could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Neither a log path nor a daemon to follow.
    #[error("give --log-path DIR (files), -H HOST:PORT (live), or both")]
    NothingToServe,
    /// The log path is not a readable directory.
    #[error("log path {}: {source}", .path.display())]
    LogPath {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address given.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The async runtime or the server failed.
    #[error("web server: {0}")]
    Server(#[from] std::io::Error),
}

/// How long requests still running may take once SIGINT or SIGTERM came.
const SHUTDOWN_TIME: Duration = Duration::from_secs(5);

/// Serves the web view until SIGINT or SIGTERM. `ready` is called with the bound address once
/// the server accepts connections (the binary prints it; tests read it).
pub fn serve(config: WebConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), WebError> {
    if config.log_path.is_none() && config.live.is_none() {
        return Err(WebError::NothingToServe);
    }
    let logs = match &config.log_path {
        Some(path) => Some(
            files::LogRoot::open(path).map_err(|source| WebError::LogPath {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(scan::MAX_SCANS + 2)
        .thread_name("ziggyview-web")
        .enable_all()
        .build()?;
    let (shutdown, shutdown_seen) = tokio::sync::watch::channel(false);
    let live = config
        .live
        .as_ref()
        .map(|addr| live::LiveHub::start(addr.clone(), config.timeout));
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|source| WebError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            eprintln!(
                "ziggyview: serving events on {local}, beyond loopback, without authentication: \
                 anyone who reaches this address reads them"
            );
        }
        let state = Arc::new(routes::WebState {
            logs,
            live: live.as_ref().map(live::LiveHub::handle),
            scans: Arc::new(tokio::sync::Semaphore::new(scan::MAX_SCANS)),
            shutdown: shutdown_seen,
            hosts: routes::allowed_hosts(local, &config.allow_hosts),
        });
        ready(local);
        let mut stopping = state.shutdown.clone();
        let server =
            axum::serve(listener, routes::router(state)).with_graceful_shutdown(async move {
                stop_signal().await;
                // Ends the live streams, which would otherwise keep the shutdown waiting.
                let _ = shutdown.send(true);
            });
        // Requests still running get SHUTDOWN_TIME once the signal came; then they are dropped
        // (which stops their scans).
        let deadline = async move {
            if stopping.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_TIME).await;
        };
        tokio::select! {
            served = server => served.map_err(WebError::Server),
            () = deadline => {
                eprintln!(
                    "ziggyview: requests still running after {} s; stopping anyway",
                    SHUTDOWN_TIME.as_secs()
                );
                Ok(())
            }
        }
    });
    if let Some(live) = live {
        live.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    served
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "ziggyview: cannot watch for SIGINT/SIGTERM ({}); stop with SIGKILL",
                escape(&e.to_string())
            );
            std::future::pending::<()>().await;
        }
    }
}
