//! The per-thread stack of open contexts ([`Frame`]s), and the guard that closes one.
//!
//! A guard ([`ContextGuard`]) or a future wrapper ([`crate::InContext`]) owns one frame's
//! lifetime; closing a frame emits its event. Frames are found by serial number, so guards may be
//! dropped in any order and two nested contexts of one channel are two real events.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use crate::body::{Body, Op, Value};
use crate::clock::Tick;
use crate::encode::EventHeader;
use crate::id::EventId;
use crate::sink::SharedSink;

/// One open context.
pub(crate) struct Frame {
    /// Unique on its thread, never 0 (0 marks an inert guard).
    pub serial: u64,
    pub channel: Cow<'static, str>,
    pub id: EventId,
    /// Unix microseconds at the open, and the tick it was taken at: the close adds the ticks
    /// since, so the event's duration is exact.
    pub start_micros: u64,
    pub opened: Tick,
    pub body: Box<Body>,
    /// False when sampling (or an unsampled ancestor) silenced this context: writes are ignored
    /// and nothing is emitted, but the frame still stands so writes do not leak into its parent.
    pub active: bool,
    pub sample_rate: Option<f64>,
    /// Where the event goes; `None` for the transport.
    pub sink: Option<SharedSink>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static NEXT_SERIAL: Cell<u64> = const { Cell::new(1) };
}

/// A serial number for a new frame on this thread.
pub(crate) fn next_serial() -> u64 {
    NEXT_SERIAL
        .try_with(|n| {
            let v = n.get();
            n.set(v + 1);
            v
        })
        // Thread teardown: the frame cannot be pushed anyway; any non-zero serial will do.
        .unwrap_or(u64::MAX)
}

/// Runs `f` on this thread's stack; `None` when the stack is unreachable (thread teardown, or a
/// re-entrant call from inside a value's `Serialize` impl).
#[inline]
pub(crate) fn with_stack<R>(f: impl FnOnce(&mut Vec<Frame>) -> R) -> Option<R> {
    STACK
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

impl Frame {
    /// Closes the context: emits its event, unless it was silenced.
    pub(crate) fn close(mut self, error: Option<String>) {
        if !self.active {
            crate::body::recycle(self.body);
            return;
        }
        if let Some(error) = error {
            self.body.write("error", Value::Str(&error), Op::Set);
        }
        let header = EventHeader {
            id: self.id.as_bytes(),
            channel: &self.channel,
            start: crate::clock::seconds(self.start_micros),
            end: crate::clock::seconds(
                self.start_micros + (crate::clock::tick() - self.opened).as_micros() as u64,
            ),
            sample_rate: self.sample_rate,
        };
        crate::emit::emit(&header, &self.body, self.sink.as_deref());
        crate::body::recycle(self.body);
    }
}

/// Pushes `frame` onto this thread's stack; the guard closes it.
#[inline]
pub(crate) fn push(frame: Frame) -> ContextGuard {
    let serial = frame.serial;
    match with_stack(|s| s.push(frame)) {
        Some(()) => ContextGuard {
            serial,
            _not_send: PhantomData,
        },
        None => ContextGuard::inert(),
    }
}

/// Closes the frame with this serial, wherever it is in this thread's stack.
fn close_serial(serial: u64, error: Option<String>) {
    let frame = with_stack(|stack| {
        let pos = stack.iter().rposition(|f| f.serial == serial)?;
        Some(stack.remove(pos))
    })
    .flatten();
    if let Some(frame) = frame {
        frame.close(error);
    }
}

/// The guard of an open context: dropping it closes the context and emits its event. If the thread
/// is unwinding from a panic, the event carries the panic message in `body.error`.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let ctx = ziggy::Context::new("job").enter();
///     ctx.record_error(&"disk full");
///     drop(ctx); // emits now
///     let _inert = ziggy::ContextGuard::inert(); // does nothing when dropped
/// });
/// assert_eq!(events[0].body.get_str("error").unwrap(), "disk full");
/// ```
#[must_use = "the context closes as soon as its guard is dropped: bind it with `let _ctx = ...`"]
pub struct ContextGuard {
    /// 0 for an inert guard (ziggy disabled, invalid channel).
    serial: u64,
    // The frame lives on this thread's stack: the guard must not move to another thread.
    _not_send: PhantomData<*const ()>,
}

impl ContextGuard {
    /// A guard that does nothing: what `enter` returns while ziggy is disabled.
    #[inline]
    pub fn inert() -> Self {
        ContextGuard {
            serial: 0,
            _not_send: PhantomData,
        }
    }

    /// Sets `body.error` of this context (used by the macros when a function returns `Err`).
    pub fn record_error(&self, error: &dyn std::fmt::Display) {
        if self.serial == 0 {
            return;
        }
        // Formatted only for a context that keeps its event (not one sampled out), and outside
        // the stack's borrow (a `Display` impl may call ziggy).
        let active = with_stack(|stack| {
            stack
                .iter()
                .rev()
                .find(|f| f.serial == self.serial)
                .is_some_and(|f| f.active)
        });
        if active != Some(true) {
            return;
        }
        let message = error.to_string();
        with_stack(|stack| {
            if let Some(f) = stack.iter_mut().rev().find(|f| f.serial == self.serial)
                && f.active
            {
                f.body.write("error", Value::Str(&message), Op::Set);
            }
        });
    }
}

impl Drop for ContextGuard {
    #[inline]
    fn drop(&mut self) {
        if self.serial != 0 {
            let error = std::thread::panicking().then(crate::panic_message::current);
            close_serial(self.serial, error);
        }
    }
}

impl std::fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextGuard")
            .field("serial", &self.serial)
            .finish()
    }
}

/// Pushes a saved segment of frames (a suspended future's contexts) onto this thread's stack and
/// returns the index it starts at.
pub(crate) fn push_segment(segment: &mut Vec<Frame>) -> usize {
    with_stack(|stack| {
        let base = stack.len();
        stack.append(segment);
        base
    })
    .unwrap_or(0)
}

/// Takes back a future's segment: every frame from its own frame (`serial`) up, or from `base`.
pub(crate) fn pop_segment(serial: u64, base: usize) -> Vec<Frame> {
    with_stack(|stack| {
        let from = stack
            .iter()
            .rposition(|f| f.serial == serial)
            .unwrap_or(base.min(stack.len()));
        stack.split_off(from)
    })
    .unwrap_or_default()
}

/// The channel of the innermost open context on this thread (active or not), if any.
#[cfg(feature = "log")]
pub(crate) fn current_channel() -> Option<String> {
    with_stack(|s| s.last().map(|f| f.channel.to_string())).flatten()
}
