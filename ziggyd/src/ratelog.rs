//! Logging that does not flood: one line per key per interval, with a count of what was held back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rate-limits log lines by key.
#[derive(Debug)]
pub struct RateLimitedLog {
    interval: Duration,
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RateLimitedLog {
    /// At most one line per key per `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            last: HashMap::new(),
        }
    }

    /// Logs `message` under `key` unless one was logged within the interval.
    pub fn log(&mut self, key: &'static str, message: impl FnOnce() -> String) {
        let now = Instant::now();
        match self.last.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < self.interval => *held += 1,
            Some((at, held)) => {
                let more = std::mem::take(held);
                *at = now;
                eprintln!(
                    "ziggyd: {} ({more} more like it since the last report)",
                    message()
                );
            }
            None => {
                self.last.insert(key, (now, 0));
                eprintln!("ziggyd: {}", message());
            }
        }
    }
}
