//! Emitting a closed event: encode it, count it, hand it to its sink (the transport by default).

use std::sync::atomic::Ordering;

use crate::body::{Body, Op, Value};
use crate::counters::COUNTERS;
use crate::encode::{self, EventHeader};
use crate::sink::Sink;
use crate::transport::TransportSink;

/// Encodes an event and hands it to `sink`, or to the transport when `None`.
#[inline]
pub(crate) fn emit(header: &EventHeader<'_>, body: &Body, sink: Option<&dyn Sink>) {
    let identity = crate::identity::current();
    let bytes = match encode::event(header, &identity, body) {
        Ok(bytes) => bytes,
        Err(e) => {
            // A key BSON cannot hold (a NUL inside a serde map key): keep the event, say why.
            COUNTERS.invalid.fetch_add(1, Ordering::Relaxed);
            let mut body = Body::new();
            let why = format!("ziggy: body could not be encoded as BSON: {e}");
            body.write("error", Value::Str(&why), Op::Set);
            match encode::event(header, &identity, &body) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    COUNTERS.emitted.add(1);
    match sink {
        Some(sink) => sink.accept(bytes),
        // A direct call: the production path pays no virtual dispatch.
        None => TransportSink.accept(bytes),
    }
}
