//! Capturing events in-process, for tests (ours and users'): no ZeroMQ, no daemon.
//!
//! A capture collects the events of every context opened inside it, and of their sub-contexts on
//! any thread (the capture travels with the context), so parallel tests do not see each other's
//! events.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::event::Event;
use crate::sink::{self, SharedSink, Sink};

/// The sink a capture's contexts emit into.
#[derive(Debug, Default)]
struct CaptureSink {
    events: Mutex<Vec<Vec<u8>>>,
}

impl Sink for CaptureSink {
    fn accept(&self, event: Vec<u8>) {
        // A poisoned lock means a test already panicked: losing its events is harmless.
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

/// An open capture: events of contexts opened inside [`Capture::run`] or [`Capture::wrap`] are
/// collected here, in the order they closed.
///
/// ```
/// let capture = ziggy::testing::Capture::new();
/// capture.run(|| drop(ziggy::Context::new("job").enter()));
/// let fut = capture.wrap(async { drop(ziggy::Context::new("job").enter()) });
/// # let mut fut = std::pin::pin!(fut);
/// # let _ = fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
/// assert_eq!(capture.events().len(), 2);
/// assert_eq!(capture.raw().len(), 2);
/// ```
#[derive(Debug)]
pub struct Capture {
    sink: Arc<CaptureSink>,
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

impl Capture {
    /// Opens a capture (and enables ziggy while it exists).
    pub fn new() -> Self {
        crate::switch::capture_started();
        Capture {
            sink: Arc::new(CaptureSink::default()),
        }
    }

    /// Runs `f` with contexts opened on this thread captured here.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = sink::scope(self.shared());
        f()
    }

    /// Wraps a future so contexts it opens (on any executor thread) are captured here.
    pub fn wrap<F: Future>(&self, future: F) -> Captured<F> {
        Captured {
            sink: self.shared(),
            inner: Box::pin(future),
        }
    }

    /// The raw BSON bytes of every captured event.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.sink
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Every captured event, decoded.
    pub fn events(&self) -> Vec<Event> {
        self.raw()
            .iter()
            .map(|b| Event::from_slice(b).expect("the runtime encodes valid events"))
            .collect()
    }

    fn shared(&self) -> SharedSink {
        self.sink.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        crate::switch::capture_ended();
    }
}

/// A future whose contexts are captured (see [`Capture::wrap`]).
pub struct Captured<F> {
    sink: SharedSink,
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Captured<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Captured<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // The guard restores the previous sink even if the inner future panics.
        let _scope = sink::scope(self.sink.clone());
        self.inner.as_mut().poll(cx)
    }
}

/// Runs `f` and returns the events its contexts emitted, in the order they closed.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("job").enter();
///     ziggy::add("items", 3);
/// });
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].body.get_i32("items").ok(), Some(3));
/// ```
pub fn capture(f: impl FnOnce()) -> Vec<Event> {
    let capture = Capture::new();
    capture.run(f);
    capture.events()
}

/// Seeds this thread's random generator (event ids, self-targeted sampling) so a test repeats
/// exactly.
///
/// ```
/// ziggy::testing::seed_rng(7);
/// let a = ziggy::new_id();
/// ziggy::testing::seed_rng(7);
/// assert_eq!(a[8..], ziggy::new_id()[8..]); // same random part
/// ```
pub fn seed_rng(seed: u64) {
    crate::id::seed_thread_rng(seed);
}
