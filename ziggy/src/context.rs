//! Contexts: the per-thread stack of open units of work, and the writes that fill their bodies.
//!
//! Each thread has its own stack of [`Frame`]s. A guard ([`ContextGuard`]) or a future wrapper
//! ([`crate::InContext`]) owns one frame's lifetime; closing a frame encodes its event and hands it to
//! the sink (a test capture, or the transport). Frames are found by serial number, so guards may be
//! dropped in any order and two nested contexts of one channel are two real events.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bson::{Bson, Document};
use serde::Serialize;

use crate::body::{self, WriteOutcome};
use crate::channel::{is_self_or_ancestor, validate_channel_name};
use crate::stats::COUNTERS;
use crate::testing::CaptureSink;

/// Longest user-given id accepted; a longer one is replaced by a fresh id.
pub use ziggy_proto::MAX_ID_LEN;

// True once `configure` ran or while a test capture exists: until then every call is a no-op that
// neither allocates nor locks. One flag, so the fast path is a single relaxed load.
static ENABLED: AtomicBool = AtomicBool::new(false);
static CONFIGURED: AtomicBool = AtomicBool::new(false);
static CAPTURES: AtomicUsize = AtomicUsize::new(0);
static RECOMPUTE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn recompute_enabled() {
    let _serialised = RECOMPUTE.lock().unwrap_or_else(|e| e.into_inner());
    let on = CONFIGURED.load(Ordering::Acquire) || CAPTURES.load(Ordering::Acquire) != 0;
    ENABLED.store(on, Ordering::Release);
}

pub(crate) fn set_configured(on: bool) {
    if on {
        crate::panic_message::install_hook();
    }
    CONFIGURED.store(on, Ordering::Release);
    recompute_enabled();
}

pub(crate) fn capture_started() {
    crate::panic_message::install_hook();
    CAPTURES.fetch_add(1, Ordering::AcqRel);
    recompute_enabled();
}

pub(crate) fn capture_ended() {
    CAPTURES.fetch_sub(1, Ordering::AcqRel);
    recompute_enabled();
}

/// True when events go somewhere (the transport is configured, or a test capture is open).
///
/// ```
/// let capture = ziggy::testing::Capture::new();
/// assert!(ziggy::enabled());
/// # drop(capture);
/// ```
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One open context.
pub(crate) struct Frame {
    serial: u64,
    channel: Cow<'static, str>,
    id: String,
    start: f64,
    body: Document,
    /// False when sampling (or an unsampled ancestor) silenced this context: writes are ignored
    /// and nothing is emitted, but the frame still stands so writes do not leak into its parent.
    active: bool,
    sample_rate: Option<f64>,
    sink: Option<Arc<CaptureSink>>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static NEXT_SERIAL: Cell<u64> = const { Cell::new(1) };
    pub(crate) static THREAD_CAPTURE: RefCell<Option<Arc<CaptureSink>>> = const { RefCell::new(None) };
}

pub(crate) fn now_unix() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Microsecond precision, as docs/PROTOCOL.md §1 says.
    (d.as_micros() as f64) / 1e6
}

/// Runs `f` on this thread's stack; `None` when the stack is unreachable (thread teardown, or a
/// re-entrant call from inside a value's `Serialize` impl).
pub(crate) fn with_stack<R>(f: impl FnOnce(&mut Vec<Frame>) -> R) -> Option<R> {
    STACK
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// A context to open: the builder of docs/PROTOCOL.md §2.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _request = ziggy::Context::new("request").enter();
///     ziggy::set("response.status", 200);
///     {
///         let _sql = ziggy::Context::new("request.sql").enter();
///         ziggy::set("query", "SELECT 1");
///     }
/// });
/// assert_eq!(events.len(), 2);
/// assert_eq!(events[0].channel, "request.sql");
/// assert_eq!(events[0].id, events[1].id); // a sub-context shares its parent's id
/// ```
#[derive(Debug, Clone)]
#[must_use = "a context does nothing until `.enter()` is called"]
pub struct Context {
    channel: Cow<'static, str>,
    id: Option<String>,
    sample: Option<(Cow<'static, str>, f64)>,
}

impl Context {
    /// A context for `channel` (e.g. `"request"` or `"request.sql"`). An invalid name (docs/PROTOCOL.md §1) makes
    /// an inert context, counted in [`crate::Stats::invalid`].
    pub fn new(channel: impl Into<Cow<'static, str>>) -> Self {
        Context {
            channel: channel.into(),
            id: None,
            sample: None,
        }
    }

    /// Gives the event this id instead of the parent's or a fresh one (non-empty, at most 256 bytes).
    ///
    /// ```
    /// let events = ziggy::testing::capture(|| {
    ///     let _ctx = ziggy::Context::new("request").id("req-42").enter();
    /// });
    /// assert_eq!(events[0].id, "req-42");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Samples this context: `target` is its own channel or an ancestor's, `rate` in `0.0..=1.0`.
    ///
    /// ```
    /// let events = ziggy::testing::capture(|| {
    ///     for _ in 0..100 {
    ///         let _r = ziggy::Context::new("request").enter();
    ///         // All or none of one request's cache events are kept.
    ///         for _ in 0..3 {
    ///             let _c = ziggy::Context::new("request.cache").sample("request", 0.5).enter();
    ///         }
    ///     }
    /// });
    /// let cache: Vec<_> = events.iter().filter(|e| e.channel == "request.cache").collect();
    /// assert_eq!(cache.len() % 3, 0);
    /// assert!(cache.iter().all(|e| e.sample_rate == Some(0.5)));
    /// ```
    pub fn sample(mut self, target: impl Into<Cow<'static, str>>, rate: f64) -> Self {
        self.sample = Some((target.into(), rate));
        self
    }

    /// Opens the context on this thread; dropping the guard closes it and emits its event.
    pub fn enter(self) -> ContextGuard {
        if !enabled() {
            return ContextGuard::inert();
        }
        match self.into_frame() {
            Some(frame) => {
                let serial = frame.serial;
                with_stack(|s| s.push(frame));
                ContextGuard {
                    serial,
                    _not_send: PhantomData,
                }
            }
            None => ContextGuard::inert(),
        }
    }

    /// Builds the frame this context would push, resolving parent, id and sampling against the
    /// current stack. `None` when ziggy is disabled or the channel name is invalid.
    pub(crate) fn into_frame(self) -> Option<Frame> {
        if !enabled() {
            return None;
        }
        if validate_channel_name(&self.channel).is_err() {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let serial = NEXT_SERIAL.with(|n| {
            let v = n.get();
            n.set(v + 1);
            v
        });
        let thread_sink = THREAD_CAPTURE
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten();
        let resolved = with_stack(|stack| {
            // The parent is the innermost open context of this channel or one of its ancestors.
            let parent = stack
                .iter()
                .rev()
                .find(|f| is_self_or_ancestor(&f.channel, &self.channel));
            let parent_active = parent.is_none_or(|p| p.active);
            let parent_id = parent.map(|p| p.id.clone());
            let sink = stack.last().and_then(|f| f.sink.clone());
            let target_id = match &self.sample {
                Some((target, _)) if *target != self.channel => stack
                    .iter()
                    .rev()
                    .find(|f| f.channel == *target)
                    .map(|f| f.id.clone()),
                _ => None,
            };
            (parent_active, parent_id, sink, target_id)
        });
        let (parent_active, parent_id, sink, target_id) =
            resolved.unwrap_or((true, None, None, None));
        let id = match self.id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => id,
            Some(_) => {
                COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
                crate::id::new_id()
            }
            None => parent_id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(crate::id::new_id),
        };
        let (active, sample_rate) = if !parent_active {
            (false, None)
        } else {
            match &self.sample {
                None => (true, None),
                Some((target, rate)) if !is_self_or_ancestor(target, &self.channel) => {
                    // The macros reject this at compile time; at run time it is counted and the
                    // context is kept unsampled rather than silently lost.
                    COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
                    let _ = rate;
                    (true, None)
                }
                Some((target, rate)) => {
                    let keep = if *target == self.channel {
                        crate::sampling::keep_random(*rate)
                    } else {
                        // No open ancestor of that name: decide on this event's own id, which is
                        // still deterministic for a given id.
                        let key = target_id.as_deref().unwrap_or(&id);
                        crate::sampling::keep_for(key, &self.channel, *rate)
                    };
                    (keep, Some(*rate))
                }
            }
        };
        Some(Frame {
            serial,
            channel: self.channel,
            id,
            start: now_unix(),
            body: Document::new(),
            active,
            sample_rate,
            sink: sink.or(thread_sink),
        })
    }
}

impl Frame {
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// Closes the context: encodes its event and hands it to the capture or the transport.
    pub(crate) fn close(mut self, error: Option<String>) {
        if !self.active {
            return;
        }
        if let Some(error) = error {
            self.body.insert("error", error);
        }
        let header = EventHeader {
            id: &self.id,
            channel: &self.channel,
            start: self.start,
            end: now_unix(),
            sample_rate: self.sample_rate,
        };
        emit(&header, &self.body, self.sink.as_ref());
    }
}

/// The header fields of an event.
pub(crate) struct EventHeader<'a> {
    pub id: &'a str,
    pub channel: &'a str,
    pub start: f64,
    pub end: f64,
    pub sample_rate: Option<f64>,
}

/// Encodes an event and hands it to `sink` (a test capture) or the transport.
pub(crate) fn emit(header: &EventHeader<'_>, body: &Document, sink: Option<&Arc<CaptureSink>>) {
    let identity = crate::identity::current();
    let bytes = match encode_event(header, &identity, body) {
        Ok(bytes) => bytes,
        Err(e) => {
            // A key bson cannot encode (a NUL inside a serde map key): keep the event, say why.
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            let mut body = Document::new();
            body.insert(
                "error",
                format!("ziggy: body could not be encoded as BSON: {e}"),
            );
            match encode_event(header, &identity, &body) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    COUNTERS.emitted.fetch_add(1, Ordering::Relaxed);
    match sink {
        Some(sink) => sink.push(bytes),
        None => crate::transport::submit(bytes),
    }
}

/// Encodes an event of Ziggy's own (a drop report) with this process's identity and a new id.
pub(crate) fn encode_own_event(
    channel: &str,
    start: f64,
    end: f64,
    body: &Document,
) -> Option<Vec<u8>> {
    let id = crate::id::new_id();
    let header = EventHeader {
        id: &id,
        channel,
        start,
        end,
        sample_rate: None,
    };
    encode_event(&header, &crate::identity::current(), body).ok()
}

/// Encodes an event straight into BSON bytes (docs/PROTOCOL.md §1 field order), without building an outer
/// `Document`: the header is written by hand, the body by `bson`.
fn encode_event(
    frame: &EventHeader<'_>,
    identity: &crate::identity::Identity,
    body: &Document,
) -> Result<Vec<u8>, bson::error::Error> {
    fn key(out: &mut Vec<u8>, tag: u8, name: &str) {
        out.push(tag);
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    fn string(out: &mut Vec<u8>, name: &str, value: &str) {
        key(out, 0x02, name);
        out.extend_from_slice(&(value.len() as i32 + 1).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    fn double(out: &mut Vec<u8>, name: &str, value: f64) {
        key(out, 0x01, name);
        out.extend_from_slice(&value.to_le_bytes());
    }
    let mut out = crate::transport::event_buffer();
    out.extend_from_slice(&[0; 4]);
    string(&mut out, "id", frame.id);
    string(&mut out, "type", frame.channel);
    string(&mut out, "host", &identity.host);
    key(&mut out, 0x10, "pid");
    out.extend_from_slice(&identity.pid.to_le_bytes());
    double(&mut out, "start", frame.start);
    double(&mut out, "end", frame.end);
    if let Some(rate) = frame.sample_rate {
        double(&mut out, "sample_rate", rate);
    }
    key(&mut out, 0x03, "body");
    body.to_writer(&mut out)?;
    out.push(0);
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(out)
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
        let message = error.to_string();
        with_stack(|stack| {
            if let Some(f) = stack.iter_mut().rev().find(|f| f.serial == self.serial)
                && f.active
            {
                f.body.insert("error", message);
            }
        });
    }
}

impl Drop for ContextGuard {
    #[inline]
    fn drop(&mut self) {
        if self.serial != 0 {
            let error = std::thread::panicking().then(crate::panic_message::take);
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

/// Writes into the innermost open context of this thread, if it is active.
fn write_innermost(key: &str, value: Bson, op: fn(&mut Document, &str, Bson) -> WriteOutcome) {
    if key.is_empty() || key.contains('\0') {
        COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let outcome = with_stack(|stack| match stack.last_mut() {
        Some(f) if f.active => Some(op(&mut f.body, key, value)),
        _ => None,
    })
    .flatten();
    if outcome == Some(WriteOutcome::Replaced) {
        COUNTERS.conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Converts a value for the body; `None` (counted) when serde or bson refuses it.
fn to_bson<V: Serialize>(value: &V) -> Option<Bson> {
    match bson::serialize_to_bson(value) {
        Ok(v) => Some(v),
        Err(_) => {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn has_open_context() -> bool {
    with_stack(|s| s.last().is_some_and(|f| f.active)).unwrap_or(false)
}

/// Sets `key` (dotted keys nest) in the innermost open context. Outside a context: nothing.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::set("response.status", 200);
///     ziggy::set("user.agent", "curl/8");
/// });
/// assert_eq!(events[0].body.get_document("response").unwrap().get_i32("status").ok(), Some(200));
/// ```
#[inline]
pub fn set<V: Serialize>(key: &str, value: V) {
    if enabled() {
        set_slow(key, &value);
    }
}

#[inline(never)]
fn set_slow<V: Serialize>(key: &str, value: &V) {
    if !has_open_context() {
        return;
    }
    if let Some(v) = to_bson(value) {
        write_innermost(key, v, body::set);
    }
}

/// Appends `value` to the array at `key`, creating it.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::append("tags", "a");
///     ziggy::append("tags", "b");
/// });
/// assert_eq!(events[0].body.get_array("tags").unwrap().len(), 2);
/// ```
#[inline]
pub fn append<V: Serialize>(key: &str, value: V) {
    if enabled() {
        append_slow(key, &value);
    }
}

#[inline(never)]
fn append_slow<V: Serialize>(key: &str, value: &V) {
    if !has_open_context() {
        return;
    }
    if let Some(v) = to_bson(value) {
        write_innermost(key, v, body::append);
    }
}

/// Adds a number to the counter at `key` (missing counts as zero; ints stay ints, floats floats).
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     ziggy::add("cache.hits", 1);
///     ziggy::add("cache.hits", 2);
/// });
/// assert_eq!(events[0].body.get_document("cache").unwrap().get_i32("hits").ok(), Some(3));
/// ```
#[inline]
pub fn add<N: Serialize>(key: &str, number: N) {
    if enabled() {
        add_slow(key, &number);
    }
}

#[inline(never)]
fn add_slow<N: Serialize>(key: &str, number: &N) {
    if !has_open_context() {
        return;
    }
    match to_bson(number) {
        Some(v) if body::is_number(&v) => write_innermost(key, v, body::add),
        Some(_) => {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
        }
        None => {}
    }
}

/// The id of the innermost open context on this thread, if any.
///
/// ```
/// ziggy::testing::capture(|| {
///     assert_eq!(ziggy::current_id(), None);
///     let _ctx = ziggy::Context::new("request").id("abc").enter();
///     assert_eq!(ziggy::current_id().as_deref(), Some("abc"));
/// });
/// ```
pub fn current_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    with_stack(|s| s.last().filter(|f| f.active).map(|f| f.id.clone())).flatten()
}

#[cfg(feature = "log")]
/// The channel of the innermost open context on this thread (active or not), if any.
pub(crate) fn current_channel() -> Option<String> {
    with_stack(|s| s.last().map(|f| f.channel.to_string())).flatten()
}

/// Serial of the innermost active frame (the target of a timer started now).
pub(crate) fn innermost_active_serial() -> Option<u64> {
    with_stack(|s| s.last().filter(|f| f.active).map(|f| f.serial)).flatten()
}

/// Sets `key` on the frame with `serial`, if it is still open on this thread.
pub(crate) fn set_on(serial: u64, key: &str, value: Bson) {
    let outcome = with_stack(|stack| {
        stack
            .iter_mut()
            .rev()
            .find(|f| f.serial == serial)
            .map(|f| body::set(&mut f.body, key, value))
    })
    .flatten();
    if outcome == Some(WriteOutcome::Replaced) {
        COUNTERS.conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sets `body.error` on the innermost active context (the macros' `Err` path in async fns).
pub(crate) fn record_error_innermost(message: String) {
    with_stack(|stack| {
        if let Some(f) = stack.last_mut().filter(|f| f.active) {
            f.body.insert("error", message);
        }
    });
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
