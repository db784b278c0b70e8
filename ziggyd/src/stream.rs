//! The live stream (PUB): every valid event as `[channel, event]`, for `ziggyview` and other
//! subscribers; `SOCK_STREAM` announces its port. Publishing never blocks: a slow subscriber
//! loses messages, collection goes on.
//!
//! The socket is an XPUB, which reports the subscribers' topics: an event no subscriber asked for
//! (every event, while nobody watches) is not copied into a message at all. Subscribers see the
//! same as from a PUB: a topic is a prefix of the channel.

use std::cell::RefCell;

use crate::batch::Batch;
use crate::config::DaemonConfig;
use crate::runtime::Shared;
use crate::sockets::{self, BindError, Bound};

/// Messages queued per subscriber before it loses some.
const SEND_HWM: i32 = 10_000;

/// The live stream's socket.
pub struct LiveStream {
    bound: Bound,
    /// The topics subscribed to (XPUB reports a topic's first subscription and its last
    /// unsubscription, so this is a set).
    topics: RefCell<Vec<Vec<u8>>>,
}

impl LiveStream {
    /// Binds the stream at `config.stream`.
    pub fn build(shared: &Shared, config: &DaemonConfig) -> Result<LiveStream, BindError> {
        let bound = sockets::bind(&shared.ctx, zmq::XPUB, "stream", &config.stream, |s| {
            s.set_sndhwm(SEND_HWM)
        })?;
        Ok(LiveStream {
            bound,
            topics: RefCell::new(Vec::new()),
        })
    }

    /// Takes in the subscriptions and unsubscriptions that arrived (without blocking).
    pub fn refresh(&self) {
        let mut topics = self.topics.borrow_mut();
        while let Ok(message) = self.bound.socket.recv_bytes(zmq::DONTWAIT) {
            match message.split_first() {
                Some((1, topic)) if !topics.iter().any(|t| t == topic) => {
                    topics.push(topic.to_vec());
                }
                Some((0, topic)) => topics.retain(|t| t != topic),
                _ => {}
            }
        }
    }

    /// True when some subscriber wants `channel`'s events.
    fn wanted(&self, channel: &str) -> bool {
        let topics = self.topics.borrow();
        topics.iter().any(|t| channel.as_bytes().starts_with(t))
    }

    /// Where the stream is bound.
    pub fn endpoint(&self) -> &str {
        &self.bound.endpoint
    }

    /// Publishes one event, if a subscriber wants it (as of the last [`LiveStream::refresh`]).
    pub fn publish(&self, channel: &str, event: &[u8]) {
        if !self.wanted(channel) {
            return;
        }
        let socket = &self.bound.socket;
        let _ = socket.send(channel.as_bytes(), zmq::SNDMORE | zmq::DONTWAIT);
        let _ = socket.send(event, zmq::DONTWAIT);
    }

    /// Publishes every event of a batch that a subscriber wants.
    pub fn publish_batch(&self, batch: &Batch) {
        self.refresh();
        if self.topics.borrow().is_empty() {
            return;
        }
        for event in batch.iter() {
            self.publish(event.channel, event.bytes);
        }
    }
}
