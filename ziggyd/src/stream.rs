//! The live stream (PUB): every valid event as `[channel, event]`, for `ziggyview` and other
//! subscribers; `SOCK_STREAM` announces its port. Publishing never blocks: a slow subscriber
//! loses messages, collection goes on.

use crate::batch::Batch;
use crate::config::DaemonConfig;
use crate::runtime::Shared;
use crate::sockets::{self, BindError, Bound};

/// Messages queued per subscriber before it loses some.
const SEND_HWM: i32 = 10_000;

/// The live stream's socket.
pub struct LiveStream {
    bound: Bound,
}

impl LiveStream {
    /// Binds the stream at `config.stream`.
    pub fn build(shared: &Shared, config: &DaemonConfig) -> Result<LiveStream, BindError> {
        let bound = sockets::bind(&shared.ctx, zmq::PUB, "stream", &config.stream, |s| {
            s.set_sndhwm(SEND_HWM)
        })?;
        Ok(LiveStream { bound })
    }

    /// Where the stream is bound.
    pub fn endpoint(&self) -> &str {
        &self.bound.endpoint
    }

    /// Publishes one event.
    pub fn publish(&self, channel: &str, event: &[u8]) {
        let socket = &self.bound.socket;
        let _ = socket.send(channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
        let _ = socket.send(event, zmq::DONTWAIT);
    }

    /// Publishes every event of a batch.
    pub fn publish_batch(&self, batch: &Batch) {
        for event in batch.iter() {
            self.publish(event.channel, event.bytes);
        }
    }
}
