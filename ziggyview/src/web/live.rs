//! `GET /api/live`: a daemon's live stream as Server-Sent Events.
//!
//! One thread follows the daemon (the viewer's live code: control endpoint, SUB socket, health
//! probes, following a restart) and broadcasts each event's bytes into a bounded ring
//! ([`RING`] events). Each browser reads the ring at its own pace and filters on its own; one
//! that falls behind loses the oldest events, is told how many, and never slows the thread or
//! the others. When the daemon does not answer, the thread says why to every browser and keeps
//! trying.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use crate::json;
use crate::live::follow_stream;
use crate::web::filter::{EventFilter, Verdict};

/// Events the ring holds for browsers that are behind.
const RING: usize = 1024;

/// Browsers streaming at once; more are refused (503).
pub(crate) const MAX_STREAMS: usize = 16;

/// How often each browser is told the stream's state.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Wait before following again after the daemon did not answer.
const RETRY: Duration = Duration::from_secs(1);

/// What the following thread shares with the browsers.
#[derive(Debug)]
pub(crate) struct LiveShared {
    pub events: broadcast::Sender<Arc<[u8]>>,
    /// The daemon's address as given.
    pub daemon: String,
    /// Events received from the daemon.
    pub received: AtomicU64,
    /// Why the daemon cannot be followed now, if it cannot.
    pub trouble: Mutex<Option<String>>,
    /// Whether `trouble` is set (read for every event, so without the lock).
    troubled: AtomicBool,
    /// Browsers streaming now.
    pub streams: AtomicUsize,
}

/// The following thread, and what it shares.
pub(crate) struct LiveHub {
    shared: Arc<LiveShared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveHub {
    /// Starts following the daemon at `addr` (control or collect address).
    pub fn start(addr: String, timeout: Duration) -> LiveHub {
        let (events, _) = broadcast::channel(RING);
        let shared = Arc::new(LiveShared {
            events,
            daemon: addr,
            received: AtomicU64::new(0),
            trouble: Mutex::new(None),
            troubled: AtomicBool::new(false),
            streams: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ziggyview-live".into())
                .spawn(move || follow(&shared, &stop, timeout))
        };
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                set_trouble(&shared, Some(format!("cannot start the live thread: {e}")));
                None
            }
        };
        LiveHub {
            shared,
            stop,
            thread,
        }
    }

    /// What the routes hold.
    pub fn handle(&self) -> Arc<LiveShared> {
        self.shared.clone()
    }

    /// Stops the thread (within one tick of its socket) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn set_trouble(shared: &LiveShared, trouble: Option<String>) {
    shared.troubled.store(trouble.is_some(), Ordering::Relaxed);
    if let Ok(mut t) = shared.trouble.lock() {
        *t = trouble;
    }
}

/// The thread: follows the daemon until `stop`, again and again if it does not answer.
fn follow(shared: &LiveShared, stop: &AtomicBool, timeout: Duration) {
    while !stop.load(Ordering::SeqCst) {
        let followed = follow_stream(
            &shared.daemon,
            "",
            timeout,
            stop,
            |_, _, event| {
                shared.received.fetch_add(1, Ordering::Relaxed);
                if shared.troubled.load(Ordering::Relaxed) {
                    // The daemon streams again.
                    set_trouble(shared, None);
                }
                // No browser listening is no error.
                let _ = shared.events.send(Arc::from(event));
                Ok(ControlFlow::Continue(()))
            },
            // The daemon went away mid-stream, or came back: the browsers' status says so.
            |trouble| set_trouble(shared, trouble),
        );
        if let Err(e) = followed {
            set_trouble(shared, Some(e.to_string()));
            let mut waited = Duration::ZERO;
            while waited < RETRY && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
        }
    }
}

/// Counts a browser's stream while it lives.
struct StreamSlot(Arc<LiveShared>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes a stream slot, or `None` when [`MAX_STREAMS`] are in use.
fn slot(shared: &Arc<LiveShared>) -> Option<StreamSlot> {
    let taken = shared
        .streams
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        });
    taken.ok().map(|_| StreamSlot(shared.clone()))
}

/// What one browser's stream keeps between events.
struct Watcher {
    events: broadcast::Receiver<Arc<[u8]>>,
    filter: EventFilter,
    shutdown: watch::Receiver<bool>,
    ticks: tokio::time::Interval,
    shared: Arc<LiveShared>,
    /// Events shown and lost (behind) on this stream.
    shown: u64,
    lost: u64,
    _slot: StreamSlot,
}

/// The SSE answer: `event` messages (one event's JSON each), a `status` message every second
/// (`{"daemon", "trouble", "received", "shown", "lost"}`), until the browser goes or the server
/// stops. `None` when too many browsers stream already.
pub(crate) fn stream(
    shared: &Arc<LiveShared>,
    filter: EventFilter,
    shutdown: watch::Receiver<bool>,
) -> Option<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>> {
    let slot = slot(shared)?;
    let watcher = Watcher {
        events: shared.events.subscribe(),
        filter,
        shutdown,
        ticks: tokio::time::interval(STATUS_EVERY),
        shared: shared.clone(),
        shown: 0,
        lost: 0,
        _slot: slot,
    };
    let messages = futures_util::stream::unfold(watcher, |mut w| async move {
        let message = next_message(&mut w).await?;
        Some((Ok(message), w))
    });
    Some(Sse::new(messages).keep_alive(KeepAlive::default()))
}

/// The next message for the browser, `None` to end the stream.
async fn next_message(w: &mut Watcher) -> Option<Event> {
    loop {
        if *w.shutdown.borrow() {
            return None;
        }
        tokio::select! {
            _ = w.shutdown.changed() => return None,
            _ = w.ticks.tick() => return Some(status(w)),
            got = w.events.recv() => match got {
                Ok(bytes) => {
                    if let Some(line) = event_json(&w.filter, &bytes) {
                        w.shown += 1;
                        return Some(Event::default().event("event").data(line));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => w.lost += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}

/// The event's JSON if it passes the browser's filter (one that cannot be decoded is not shown).
fn event_json(filter: &EventFilter, bytes: &[u8]) -> Option<String> {
    match filter.check(bytes) {
        Ok(Verdict::Yes(_)) => {
            let mut out = Vec::new();
            json::write_event(&mut out, bytes, None).ok()?;
            // Written from whole strings and ASCII escapes.
            String::from_utf8(out).ok()
        }
        _ => None,
    }
}

fn status(w: &Watcher) -> Event {
    let trouble = w.shared.trouble.lock().ok().and_then(|t| t.clone());
    let body = serde_json::json!({
        "daemon": w.shared.daemon,
        "trouble": trouble,
        "received": w.shared.received.load(Ordering::Relaxed),
        "shown": w.shown,
        "lost": w.lost,
    });
    let mut out = Vec::new();
    // A Vec never fails, and this value holds only strings and numbers.
    let _ = crate::safe::write_json(&mut out, &body);
    Event::default()
        .event("status")
        .data(String::from_utf8_lossy(&out))
}
