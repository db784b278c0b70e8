//! A `tracing_subscriber::Layer` that ships a program instrumented with `tracing` to ziggyd
//! unchanged (feature `tracing`).
//!
//! Each span becomes one ziggy event, emitted when the span closes: its channel is the span's name
//! (lower-cased, other characters as `_`) under its parent span's channel (`handle.query`), so a
//! child shares its root's id like a ziggy sub-context; its fields (at creation and `record`ed
//! later) form the body, dotted field names nesting as with [`crate::set`] (`user.id = 7` makes
//! `{user: {id: 7}}`). Each `tracing` event becomes a `.log` sub-event of its span (`level`,
//! `target`, `message`, its other fields, `location`), or a standalone `log` event outside spans.
//! Spans live in the subscriber's registry, not on ziggy's thread stack, so they follow
//! `tracing`'s own rules across `.await` and threads.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! let subscriber = tracing_subscriber::registry().with(ziggy::tracing_bridge::ZiggyLayer::new());
//! let events = ziggy::testing::capture(|| {
//!     tracing::subscriber::with_default(subscriber, || {
//!         let span = tracing::info_span!("handle", path = "/users");
//!         let _entered = span.enter();
//!         tracing::info!(rows = 3, "query done");
//!     });
//! });
//! let channels: Vec<_> = events.iter().map(|e| e.channel.as_str()).collect();
//! assert_eq!(channels, ["handle.log", "handle"]);
//! assert_eq!(events[1].body.get_str("path").unwrap(), "/users");
//! assert_eq!(events[0].body.get_i64("rows").unwrap(), 3);
//! ```

use crate::body::{Body, Op, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::channel::{MAX_CHANNEL_LEN, validate_channel_name};
use crate::emit::emit;
use crate::encode::{EventHeader, now_unix};
use crate::id::new_id;
use crate::sink::{self, SharedSink};
use crate::switch::enabled;

/// The layer; add it to a `tracing_subscriber::registry()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ZiggyLayer {
    _private: (),
}

impl ZiggyLayer {
    /// A layer emitting to wherever ziggy emits (the configured daemon, or a test capture).
    pub fn new() -> Self {
        ZiggyLayer { _private: () }
    }
}

struct SpanEvent {
    channel: String,
    id: String,
    start: f64,
    body: Body,
    /// Where the event goes; `None` for the transport.
    sink: Option<SharedSink>,
    /// Turned off by a sampling override (`ZIGGY_SAMPLE="handle=off"`), or under a span that is:
    /// the span stands, so its children and events know, but nothing of it is emitted.
    silenced: bool,
}

/// Whether a sampling override turns `channel` (and so this span or event) off.
fn switched_off(channel: &str) -> bool {
    crate::overrides::lookup(channel) == Some(crate::overrides::SampleOverride::Off)
}

/// `Handle Request` → `handle_request`: the channel segment for a span name.
fn segment(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "span".into() } else { s }
}

struct BodyVisitor<'a>(&'a mut Body);

impl BodyVisitor<'_> {
    /// Dotted names nest (`user.id` → `{user: {id: …}}`), by the rule of `ziggy::set`.
    fn put(&mut self, field: &Field, value: Value<'_>) {
        crate::body::write(self.0, field.name(), value, Op::Set);
    }
}

impl Visit for BodyVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(
            field,
            i64::try_from(value).map_or(Value::F64(value as f64), Value::I64),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::Str(&format!("{value:?}")));
    }
}

impl<S> Layer<S> for ZiggyLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let own = segment(attrs.metadata().name());
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanEvent>()
                .map(|d| (d.channel.clone(), d.id.clone(), d.sink.clone(), d.silenced))
        });
        let (channel, event_id, sink, parent_silenced) = match parent {
            Some((pc, pid, sink, off)) if pc.len() + 1 + own.len() <= MAX_CHANNEL_LEN => {
                (format!("{pc}.{own}"), pid, sink, off)
            }
            Some((_, pid, sink, off)) => (own.clone(), pid, sink, off),
            None => (own, new_id(), sink::scoped(), false),
        };
        if validate_channel_name(&channel).is_err() {
            return;
        }
        let silenced = parent_silenced || switched_off(&channel);
        let mut body = Body::new();
        if !silenced {
            attrs.record(&mut BodyVisitor(&mut body));
        }
        span.extensions_mut().insert(SpanEvent {
            channel,
            id: event_id,
            start: now_unix(),
            body,
            sink,
            silenced,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(data) = span.extensions_mut().get_mut::<SpanEvent>()
            && !data.silenced
        {
            values.record(&mut BodyVisitor(&mut data.body));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let parent = ctx.event_span(event).and_then(|span| {
            span.extensions()
                .get::<SpanEvent>()
                .map(|d| (d.channel.clone(), d.id.clone(), d.sink.clone(), d.silenced))
        });
        let (channel, id, sink) = match parent {
            Some((.., true)) => return,
            Some((c, id, sink, _)) if c.len() + 4 <= MAX_CHANNEL_LEN => {
                (format!("{c}.log"), id, sink)
            }
            Some((_, id, sink, _)) => ("log".to_owned(), id, sink),
            None => ("log".to_owned(), new_id(), sink::scoped()),
        };
        if switched_off(&channel) {
            return;
        }
        let meta = event.metadata();
        let mut body = Body::new();
        body.write("level", Value::Str(meta.level().as_str()), Op::Set);
        body.write("target", Value::Str(meta.target()), Op::Set);
        event.record(&mut BodyVisitor(&mut body));
        if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
            let location = format!("{file}:{line}");
            body.write("location", Value::Str(&location), Op::Set);
        }
        let now = now_unix();
        let header = EventHeader {
            id: id.as_bytes(),
            channel: &channel,
            start: now,
            end: now,
            sample_rate: None,
        };
        emit(&header, &body, sink.as_deref());
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanEvent>() else {
            return;
        };
        if data.silenced {
            return;
        }
        let header = EventHeader {
            id: data.id.as_bytes(),
            channel: &data.channel,
            start: data.start,
            end: now_unix(),
            sample_rate: None,
        };
        emit(&header, &data.body, data.sink.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn dotted_field_names_nest_like_set() {
        let subscriber = tracing_subscriber::registry().with(ZiggyLayer::new());
        let events = crate::testing::capture(|| {
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("handle", user.id = 7_i64, user.name = "ann");
                let _entered = span.enter();
                tracing::info!(http.status = 200_i64, "done");
                // Through `set`, for comparison: the same key makes the same shape.
                let _ctx = crate::Context::new("request").enter();
                crate::set("user.id", 7_i64);
            });
        });
        let by = |channel: &str| {
            events
                .iter()
                .find(|e| e.channel == channel)
                .unwrap_or_else(|| panic!("no {channel} event"))
        };
        assert_eq!(
            by("handle").body,
            doc! { "user": { "id": 7_i64, "name": "ann" } }
        );
        assert_eq!(
            by("handle.log").body.get_document("http").unwrap(),
            &doc! { "status": 200_i64 }
        );
        assert_eq!(
            by("request").body.get_document("user").unwrap().get("id"),
            by("handle").body.get_document("user").unwrap().get("id")
        );
    }
}
