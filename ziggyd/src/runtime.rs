//! What the parts of a running daemon share, and the threads they run on.
//!
//! Every part is built from the config with the [`Shared`] handles, then runs on a [`Worker`]
//! thread the [`Supervisor`] spawns. A worker that panics (a bug: no input should make one) is
//! recorded and stops the daemon: a daemon missing a worker must not go on answering STATUS as
//! if it were well.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::stats::DaemonStats;

/// The handles every part of a daemon shares.
#[derive(Clone)]
pub struct Shared {
    /// The ZeroMQ context of the daemon's sockets (the forwarder's link has its own).
    pub ctx: zmq::Context,
    /// The counters STATUS reports.
    pub stats: Arc<DaemonStats>,
    /// Set to stop the daemon (by `SHUTDOWN`, a signal, or a worker that died).
    pub shutdown: Arc<AtomicBool>,
    /// Bumped by SIGHUP: log files are reopened, the CURVE allow directory read again.
    pub reopen: Arc<AtomicU64>,
}

impl Shared {
    /// Fresh handles: a new context, zeroed counters, flags down.
    pub fn new() -> Shared {
        Shared {
            ctx: zmq::Context::new(),
            stats: Arc::new(DaemonStats::default()),
            shutdown: Arc::new(AtomicBool::new(false)),
            reopen: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// One part's thread, not yet started: its name (`ziggyd-…`) and its work.
pub struct Worker {
    name: &'static str,
    work: Box<dyn FnOnce() + Send>,
}

impl Worker {
    /// A thread named `name` that runs `work`.
    pub fn new(name: &'static str, work: impl FnOnce() + Send + 'static) -> Worker {
        Worker {
            name,
            work: Box::new(work),
        }
    }
}

/// A worker thread that panicked, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {thread} thread died: {why}")]
pub struct WorkerDied {
    /// The thread's name.
    pub thread: &'static str,
    /// The panic's message.
    pub why: String,
}

/// The first worker that died, if one did.
type Death = Arc<Mutex<Option<WorkerDied>>>;

/// Spawns workers and waits for them; the first that dies stops the daemon.
pub struct Supervisor {
    threads: Vec<JoinHandle<()>>,
    died: Death,
    shutdown: Arc<AtomicBool>,
}

impl Supervisor {
    /// Supervises workers that stop when `shutdown` is set.
    pub fn new(shutdown: Arc<AtomicBool>) -> Supervisor {
        Supervisor {
            threads: Vec::new(),
            died: Arc::default(),
            shutdown,
        }
    }

    /// Starts `worker` on its own thread.
    pub fn spawn(&mut self, worker: Worker) {
        let Worker { name, work } = worker;
        let (died, shutdown) = (self.died.clone(), self.shutdown.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // A test hook: proves a dead worker stops the daemon (see
                // tests/tests/master_faults.rs).
                let doomed = std::env::var("ZIGGYD_PANIC_THREAD").is_ok_and(|t| t == name);
                let run = move || {
                    if doomed {
                        panic!("ZIGGYD_PANIC_THREAD={name} asked this thread to panic");
                    }
                    work()
                };
                let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) else {
                    return;
                };
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let death = WorkerDied { thread: name, why };
                eprintln!("ziggyd: {death}; stopping");
                died.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(death);
                shutdown.store(true, Ordering::Release);
            })
            .expect("spawning a ziggyd thread");
        self.threads.push(thread);
    }

    /// Whether some workers have not been waited for.
    pub fn running(&self) -> bool {
        !self.threads.is_empty()
    }

    /// The first worker that died, if one did.
    pub fn death(&self) -> Option<WorkerDied> {
        self.died.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle on [`Supervisor::death`] that outlives the supervisor.
    pub fn death_watch(&self) -> impl Fn() -> Option<WorkerDied> + Send + 'static {
        let died = self.died.clone();
        move || died.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for every worker; `Err` is the first that died.
    pub fn join(&mut self) -> Result<(), WorkerDied> {
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        match self.death() {
            Some(death) => Err(death),
            None => Ok(()),
        }
    }
}
