//! The transport: a bounded queue drained by one background thread ([`sender`]) into a ZeroMQ
//! PUSH socket, or into JSON lines for development ([`crate::json_lines`]).
//!
//! The application thread only ever pushes into a lock-free bounded queue: it never blocks on the
//! network and makes no system call (the sender is not woken per event; it polls the queue every
//! millisecond when idle), and when the queue is full the event is dropped and counted. The sender
//! batches what is queued into frames of concatenated BSON events (docs/PROTOCOL.md §3).
//!
//! Returning from `main` (or `std::process::exit`) without [`shutdown`] loses nothing queued: the
//! first `configure` registers an exit handler that runs `shutdown`, which waits up to the
//! shutdown timeout for the queue to drain and ZeroMQ to deliver.

mod at_exit;
mod outlet;
mod sender;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::counters::COUNTERS;
use crate::json_lines::JsonOutput;
use crate::sink::Sink;
use crate::switch;
use outlet::Outlet;

/// Settings of [`configure_with`]: start from `default()` and change what you need, with the
/// `with_*` methods (the struct may gain fields, so it cannot be built as a literal).
///
/// ```no_run
/// let config = ziggy::TransportConfig::default().with_queue_capacity(10_000);
/// ziggy::configure_with("127.0.0.1:3514", config).unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Events the queue holds before new ones are dropped (default 100,000).
    pub queue_capacity: usize,
    /// Largest frame the sender builds by concatenating events, in bytes (default 64 KiB); `0`
    /// sends one event per frame, as the 2012 clients did.
    pub max_batch_bytes: usize,
    /// ZeroMQ send high-water mark, in frames (default 1,000).
    pub send_hwm: i32,
    /// How long `shutdown` waits for queued events to reach ZeroMQ, and ZeroMQ to deliver them.
    pub shutdown_timeout: Duration,
    /// At most this often, when events were dropped since the last report, the sender adds an
    /// event of channel `ziggy.dropped` (body: `dropped`, `dropped_total`) to the stream, so the
    /// loss shows where the events go (default 10 s).
    pub drop_report_interval: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            queue_capacity: 100_000,
            max_batch_bytes: 64 * 1024,
            send_hwm: 1_000,
            shutdown_timeout: Duration::from_secs(5),
            drop_report_interval: Duration::from_secs(10),
        }
    }
}

impl TransportConfig {
    /// Sets [`queue_capacity`](Self::queue_capacity).
    pub fn with_queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Sets [`max_batch_bytes`](Self::max_batch_bytes).
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Sets [`send_hwm`](Self::send_hwm).
    pub fn with_send_hwm(mut self, frames: i32) -> Self {
        self.send_hwm = frames;
        self
    }

    /// Sets [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets [`drop_report_interval`](Self::drop_report_interval).
    pub fn with_drop_report_interval(mut self, interval: Duration) -> Self {
        self.drop_report_interval = interval;
        self
    }
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The address is neither `host:port` nor a `tcp://` / `ipc://` endpoint.
    #[error("invalid daemon address {0:?}: expected HOST:PORT, tcp://HOST:PORT or ipc://PATH")]
    BadAddress(String),
    /// ZeroMQ refused the socket or the endpoint.
    #[error("cannot connect to {endpoint}: {source}")]
    Zmq {
        /// The endpoint tried.
        endpoint: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// The JSON lines output could not be opened.
    #[error("cannot open {output} for JSON lines: {source}")]
    JsonOutput {
        /// The output tried.
        output: JsonOutput,
        /// The system's error.
        source: std::io::Error,
    },
}

pub(crate) type Queue = Arc<ArrayQueue<Vec<u8>>>;

struct Running {
    queue: Queue,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// The ZeroMQ context of a socket outlet, terminated last by `shutdown`.
    context: Option<zmq::Context>,
    /// The process that started the sender (a forked child has none of its threads).
    pid: u32,
    shutdown_timeout: Duration,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);
// Bumped whenever the transport starts or stops, so threads refresh their cached queue handle;
// the hot path then needs no lock.
static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static QUEUE: RefCell<(u64, Option<Queue>)> = const { RefCell::new((0, None)) };
}

/// What the socket connects to: `HOST:PORT`, `[V6]:PORT`, or a `tcp://`, `ipc://` or `inproc://`
/// endpoint, parsed by the one address rule (`ziggy_proto::endpoint`).
fn endpoint_for(addr: &str) -> Result<ziggy_proto::endpoint::Resolved, ConfigureError> {
    ziggy_proto::endpoint::Endpoint::parse(addr)
        .map(|e| e.for_connect())
        .map_err(|_| ConfigureError::BadAddress(addr.to_owned()))
}

/// Sends events to the daemon at `addr` with the default settings (see [`configure_with`]).
///
/// ```no_run
/// ziggy::configure("127.0.0.1:3514").unwrap();
/// // ... the application runs, events queue and are sent in the background ...
/// ziggy::shutdown();
/// ```
pub fn configure(addr: &str) -> Result<(), ConfigureError> {
    configure_with(addr, TransportConfig::default())
}

/// Starts (or restarts, after flushing the previous one) the sender thread for `addr`.
///
/// When the environment has `ZIGGY_JSON` (see [`configure_json`]), events go there as JSON lines
/// instead, and one line on stderr says so.
pub fn configure_with(addr: &str, config: TransportConfig) -> Result<(), ConfigureError> {
    if let Some(output) = JsonOutput::from_env() {
        eprintln!(
            "ziggy: {}={output}: events go there as JSON lines, not to {addr}",
            crate::json_lines::JSON_ENV_VAR
        );
        return configure_json_with(output, config);
    }
    let resolved = endpoint_for(addr)?;
    let endpoint = resolved.endpoint;
    // A context per transport, terminated by `shutdown`: termination is what makes ZeroMQ honour
    // the linger and deliver what it still holds (a never-terminated global context loses it at
    // process exit).
    let context = zmq::Context::new();
    let socket = context
        .socket(zmq::PUSH)
        .and_then(|s| {
            // High-water mark and linger must be set before connect (ANCHORS: the 2012 client set
            // its limit after connect, so it never applied).
            s.set_sndhwm(config.send_hwm)?;
            s.set_linger(config.shutdown_timeout.as_millis().min(i32::MAX as u128) as i32)?;
            s.set_sndtimeo(0)?;
            s.set_ipv6(resolved.ipv6)?;
            s.connect(&endpoint)?;
            Ok(s)
        })
        .map_err(|source| ConfigureError::Zmq {
            endpoint: endpoint.clone(),
            source,
        })?;
    start(Outlet::Zmq(socket), Some(context), &config);
    Ok(())
}

/// Sends events as JSON lines to stderr or a file, with the default settings: development without
/// a daemon. Stops, flushes and exits like the ZeroMQ transport.
///
/// ```
/// let path = std::env::temp_dir().join(format!("ziggy-doc-{}.jsonl", std::process::id()));
/// ziggy::configure_json(ziggy::JsonOutput::File(path.clone())).unwrap();
/// {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::set("response.status", 200);
/// }
/// ziggy::shutdown();
/// let line = std::fs::read_to_string(&path).unwrap();
/// assert!(line.contains(r#""body":{"response":{"status":200}}"#));
/// # std::fs::remove_file(path).unwrap();
/// ```
pub fn configure_json(output: JsonOutput) -> Result<(), ConfigureError> {
    configure_json_with(output, TransportConfig::default())
}

/// [`configure_json`] with settings (the queue capacity, batch size and timeouts apply).
pub fn configure_json_with(
    output: JsonOutput,
    config: TransportConfig,
) -> Result<(), ConfigureError> {
    let writer = output
        .open()
        .map_err(|source| ConfigureError::JsonOutput { output, source })?;
    start(Outlet::JsonLines(writer), None, &config);
    Ok(())
}

/// Replaces the running transport (flushing it) by a sender thread feeding `outlet`.
fn start(outlet: Outlet, context: Option<zmq::Context>, config: &TransportConfig) {
    shutdown();
    crate::overrides::load_env();
    let queue: Queue = Arc::new(ArrayQueue::new(config.queue_capacity.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let max_batch = config.max_batch_bytes;
    let (q, st) = (queue.clone(), stop.clone());
    let reports = sender::DropReports::new(config.drop_report_interval);
    let thread = std::thread::Builder::new()
        .name("ziggy-sender".into())
        .spawn(move || sender::run(outlet, q, st, max_batch, reports))
        .expect("spawning the ziggy sender thread");
    *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
        queue,
        stop,
        thread,
        context,
        pid: std::process::id(),
        shutdown_timeout: config.shutdown_timeout,
    });
    GENERATION.fetch_add(1, Ordering::AcqRel);
    at_exit::register();
    switch::set_configured(true);
}

/// The transport (ZeroMQ or JSON lines) as a sink: where events go unless a test capture takes them.
pub(crate) struct TransportSink;

impl Sink for TransportSink {
    fn accept(&self, event: Vec<u8>) {
        submit(event);
    }
}

/// Queues one encoded event; never blocks.
fn submit(bytes: Vec<u8>) {
    let generation = GENERATION.load(Ordering::Acquire);
    let sent = QUEUE.try_with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != generation {
            let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            *cached = (generation, running.as_ref().map(|r| r.queue.clone()));
        }
        match &cached.1 {
            Some(queue) => queue.push(bytes).is_ok(),
            None => false,
        }
    });
    if sent == Ok(true) {
        COUNTERS.queued_in.add(1);
    } else {
        COUNTERS.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until every queued event has been handed to ZeroMQ, at most `timeout`. Returns whether
/// the queue emptied in time.
///
/// ```
/// // Nothing queued: returns at once.
/// assert!(ziggy::flush(std::time::Duration::from_millis(10)));
/// ```
pub fn flush(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if crate::counters::queued() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Flushes (up to the configured shutdown timeout), stops the sender thread and closes the socket.
/// Afterwards ziggy is off again, as before `configure` (unless a test capture is open): calls are
/// no-ops that serialise nothing, until `configure` is called again.
///
/// ```
/// ziggy::shutdown(); // harmless when nothing was configured
/// assert!(!ziggy::enabled());
/// ```
pub fn shutdown() {
    // Off first, so no new context opens (nor any value is serialised) for an event that could
    // only be dropped.
    switch::set_configured(false);
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take();
    GENERATION.fetch_add(1, Ordering::AcqRel);
    if let Some(running) = running {
        if running.pid != std::process::id() {
            // A forked child: the sender thread and its socket are the parent's, and no thread
            // drains this copy of the queue. Nothing here is ours to flush or close.
            std::mem::forget(running);
            return;
        }
        flush(running.shutdown_timeout);
        running.stop.store(true, Ordering::Release);
        // Bounded: a sender stuck in a blocking write (a full stderr pipe, or a stderr lock held
        // by the thread that is exiting) is left behind rather than hanging the process.
        let deadline = Instant::now() + running.shutdown_timeout;
        while !running.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !running.thread.is_finished() {
            std::mem::forget(running.context);
            return;
        }
        let _ = running.thread.join();
        // A producer that raced with the stop may have pushed after the final drain.
        let mut late = 0;
        while running.queue.pop().is_some() {
            late += 1;
        }
        COUNTERS.dropped.fetch_add(late, Ordering::Relaxed);
        COUNTERS.taken.0.fetch_add(late, Ordering::Release);
        // Blocks until ZeroMQ delivered what it holds, at most the linger (the shutdown timeout).
        drop(running.context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_operators_type_them() {
        let e = |a: &str| endpoint_for(a).map(|r| r.endpoint);
        assert_eq!(e("127.0.0.1:3514").unwrap(), "tcp://127.0.0.1:3514");
        assert_eq!(e("localhost:3514").unwrap(), "tcp://localhost:3514");
        assert_eq!(e("ipc:///run/ziggy").unwrap(), "ipc:///run/ziggy");
        assert!(endpoint_for("[::1]:3514").unwrap().ipv6);
        assert!(matches!(
            endpoint_for("no-port"),
            Err(ConfigureError::BadAddress(a)) if a == "no-port"
        ));
    }
}
