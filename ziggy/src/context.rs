//! The context builder ([`Context`], docs/PROTOCOL.md §2): resolves a new context's parent, id and
//! sampling decision against the contexts open on this thread, and opens it.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use crate::channel::{is_self_or_ancestor, validate_channel_name};
use crate::counters::COUNTERS;
use crate::id::EventId;
use crate::overrides::SampleOverride;
use crate::sink::{self, SharedSink};
use crate::stack::{self, ContextGuard, Frame, with_stack};
use crate::switch::enabled;

/// Longest user-given id accepted; a longer one is replaced by a fresh id.
pub use ziggy_proto::MAX_ID_LEN;

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
    /// The name was checked when the crate was compiled (`#[ziggy::context]`).
    declared: bool,
    id: Option<String>,
    sample: Option<(Cow<'static, str>, f64)>,
}

/// What the open contexts say about a new one.
struct Surroundings {
    /// False when the parent (or one of its ancestors) was silenced by sampling.
    parent_active: bool,
    parent_id: Option<EventId>,
    /// The sink of the innermost open context, which sub-contexts inherit.
    sink: Option<SharedSink>,
    /// The id of the innermost open context of the sampling target, if it is an ancestor.
    target_id: Option<EventId>,
}

impl Context {
    /// A context for `channel` (e.g. `"request"` or `"request.sql"`). An invalid name
    /// (docs/PROTOCOL.md §1) makes an inert context, counted in [`crate::Stats::invalid`].
    pub fn new(channel: impl Into<Cow<'static, str>>) -> Self {
        Context {
            channel: channel.into(),
            declared: false,
            id: None,
            sample: None,
        }
    }

    /// A context for a channel the macros checked at compile time. Not a public API.
    #[doc(hidden)]
    pub fn __declared(channel: &'static str) -> Self {
        Context {
            channel: Cow::Borrowed(channel),
            declared: true,
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
        match self.into_frame() {
            Some(frame) => stack::push(frame),
            None => ContextGuard::inert(),
        }
    }

    /// Builds the frame this context would push, resolving parent, id and sampling against the
    /// current stack. `None` when ziggy is disabled or the channel name is invalid.
    pub(crate) fn into_frame(mut self) -> Option<Frame> {
        if !enabled() {
            return None;
        }
        if !self.declared && validate_channel_name(&self.channel).is_err() {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let silenced = match crate::overrides::lookup(&self.channel) {
            Some(SampleOverride::Off) => true,
            Some(SampleOverride::Rate(rate)) => {
                // The code's target is kept when it is valid (all or none per request), else the
                // context samples itself.
                let target = match self.sample.take() {
                    Some((t, _)) if is_self_or_ancestor(&t, &self.channel) => t,
                    _ => self.channel.clone(),
                };
                self.sample = Some((target, rate));
                false
            }
            None => false,
        };
        let serial = stack::next_serial();
        let around = self.surroundings();
        let opened = crate::clock::tick();
        let start_micros = crate::clock::unix_micros_at(opened);
        let id = pick_id(self.id.take(), around.parent_id, start_micros);
        let (active, sample_rate) = if around.parent_active && !silenced {
            self.sampling(around.target_id.as_ref().unwrap_or(&id))
        } else {
            (false, None)
        };
        Some(Frame {
            serial,
            channel: self.channel,
            id,
            start_micros,
            opened,
            body: crate::body::take(),
            active,
            sample_rate,
            // The scoped sink is consulted only when no open context carries one.
            sink: around.sink.or_else(sink::scoped),
        })
    }

    /// Looks up this context's parent, inherited sink and sampling target on this thread's stack.
    fn surroundings(&self) -> Surroundings {
        with_stack(|stack| {
            // The parent is the innermost open context of this channel or one of its ancestors.
            let parent = stack
                .iter()
                .rev()
                .find(|f| is_self_or_ancestor(&f.channel, &self.channel));
            let target_id = match &self.sample {
                Some((target, _)) if *target != self.channel => stack
                    .iter()
                    .rev()
                    .find(|f| f.channel == *target)
                    .map(|f| f.id.clone()),
                _ => None,
            };
            Surroundings {
                parent_active: parent.is_none_or(|p| p.active),
                parent_id: parent.map(|p| p.id.clone()),
                sink: stack.last().and_then(|f| f.sink.clone()),
                target_id,
            }
        })
        .unwrap_or(Surroundings {
            parent_active: true,
            parent_id: None,
            sink: None,
            target_id: None,
        })
    }

    /// Whether an event under an active parent is kept, and the rate it carries. `key` is the id
    /// a decision targeting an ancestor hashes: the ancestor's, or this event's own when no
    /// ancestor of that name is open (still deterministic for a given id).
    fn sampling(&self, key: &EventId) -> (bool, Option<f64>) {
        match &self.sample {
            None => (true, None),
            Some((target, _)) if !is_self_or_ancestor(target, &self.channel) => {
                // The macros reject this at compile time; at run time it is counted and the
                // context is kept unsampled rather than silently lost.
                COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
                (true, None)
            }
            Some((target, rate)) => {
                let keep = if *target == self.channel {
                    crate::sampling::keep_random(*rate)
                } else {
                    crate::sampling::keep_for(key.as_str(), &self.channel, *rate)
                };
                (keep, Some(*rate))
            }
        }
    }
}

/// The id given with [`Context::id`] if valid, else the parent's, else a fresh one.
fn pick_id(given: Option<String>, parent_id: Option<EventId>, start_micros: u64) -> EventId {
    match given {
        Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => EventId::from(id),
        Some(_) => {
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            crate::id::new_id_at(start_micros)
        }
        None => parent_id
            .filter(|id| !id.as_bytes().is_empty())
            .unwrap_or_else(|| crate::id::new_id_at(start_micros)),
    }
}
