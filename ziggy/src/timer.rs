//! `timeit`: elapsed wall-clock seconds into the context that was innermost when the timer started.

use std::marker::PhantomData;

use crate::clock::{Tick, tick};

/// Times until dropped, then sets the elapsed seconds (a double) at its key.
#[must_use = "the timer stops as soon as it is dropped: bind it with `let _t = ...`"]
pub struct TimerGuard {
    started: Option<(u64, Tick)>,
    key: &'static str,
    _not_send: PhantomData<*const ()>,
}

/// Starts a timer recording into the innermost open context; outside a context it does nothing.
///
/// The guard form, timing until it is dropped; `#[ziggy::timeit]` (same name, the attribute
/// namespace) times a whole function.
///
/// ```
/// let events = ziggy::testing::capture(|| {
///     let _ctx = ziggy::Context::new("request").enter();
///     let _t = ziggy::timeit("request_time");
/// });
/// assert!(events[0].body.get_f64("request_time").unwrap() >= 0.0);
/// ```
#[inline]
pub fn timeit(key: &'static str) -> TimerGuard {
    let started = if crate::switch::enabled() {
        start()
    } else {
        None
    };
    TimerGuard {
        started,
        key,
        _not_send: PhantomData,
    }
}

// Cold: while ziggy is off the caller keeps only the flag test in its hot path.
#[cold]
#[inline(never)]
fn start() -> Option<(u64, Tick)> {
    // A bad key is refused (and counted) by the write when the timer stops.
    let serial = crate::write::innermost_active_serial()?;
    Some((serial, tick()))
}

impl Drop for TimerGuard {
    // Inlined into the caller's crate, so an idle timer (ziggy off) costs a test, not a call.
    #[inline]
    fn drop(&mut self) {
        if let Some((serial, at)) = self.started {
            record(serial, self.key, at);
        }
    }
}

#[inline(never)]
fn record(serial: u64, key: &'static str, started: Tick) {
    let secs = (tick() - started).as_secs_f64();
    crate::write::set_on(serial, key, crate::body::Value::F64(secs));
}

/// A timer that may cross `.await` points and threads: it records into the innermost context at
/// the moment it stops (used by `#[ziggy::timeit]` on `async fn`).
pub(crate) struct Stopwatch(Tick);

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Stopwatch(tick())
    }

    pub(crate) fn record(self, key: &str) {
        crate::write::set(key, (tick() - self.0).as_secs_f64());
    }
}
