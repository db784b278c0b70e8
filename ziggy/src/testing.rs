//! Capturing events in-process, for tests (ours and users'): no ZeroMQ, no daemon.
//!
//! A capture collects the events of every context opened inside it, and of their sub-contexts on
//! any thread (the capture travels with the context), so parallel tests do not see each other's
//! events.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::context::THREAD_CAPTURE;
use crate::event::Event;

/// Where captured events go.
#[derive(Debug, Default)]
pub struct CaptureSink {
    events: Mutex<Vec<Vec<u8>>>,
}

impl CaptureSink {
    pub(crate) fn push(&self, bytes: Vec<u8>) {
        if let Ok(mut events) = self.events.lock() {
            events.push(bytes);
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
        crate::context::capture_started();
        Capture {
            sink: Arc::new(CaptureSink::default()),
        }
    }

    /// Runs `f` with contexts opened on this thread captured here.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = THREAD_CAPTURE.with(|c| c.replace(Some(self.sink.clone())));
        struct Restore(Option<Arc<CaptureSink>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = THREAD_CAPTURE.try_with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(previous);
        f()
    }

    /// Wraps a future so contexts it opens (on any executor thread) are captured here.
    pub fn wrap<F: Future>(&self, future: F) -> Captured<F> {
        Captured {
            sink: self.sink.clone(),
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
}

impl Drop for Capture {
    fn drop(&mut self) {
        crate::context::capture_ended();
    }
}

/// A future whose contexts are captured (see [`Capture::wrap`]).
pub struct Captured<F> {
    sink: Arc<CaptureSink>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Captured<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let sink = self.sink.clone();
        let previous = THREAD_CAPTURE.with(|c| c.replace(Some(sink)));
        let result = self.inner.as_mut().poll(cx);
        THREAD_CAPTURE.with(|c| *c.borrow_mut() = previous);
        result
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
