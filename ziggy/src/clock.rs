//! The clock of contexts and timers: the CPU's time-stamp counter read through `quanta` (a read
//! costs about half a `clock_gettime` call), or the OS monotonic clock where the counter is not
//! reliable (quanta decides). Contexts and timers read it four times per typical event.
//!
//! Unix times come from a per-thread anchor: a wall-clock reading and the tick it was taken at,
//! renewed once a second, so a context's start is the anchor's wall time plus the ticks since.
//! A context's end is its start plus the ticks it lasted: its duration is exact and never
//! negative, whatever the wall clock does meanwhile (an NTP step moves later contexts, not this
//! one's length). Each thread has its own anchor, so events of two threads may be ordered by
//! their timestamps a few microseconds apart from the order they happened in, and a thread's
//! times may step by as much when its anchor is renewed (the drift of the counter against the
//! wall clock over a second).
//!
//! Calibrating the counter takes about a millisecond (more on a loaded machine); it is done when
//! ziggy is switched on, before any context opens.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::Duration;

/// A point in time of this clock.
pub(crate) type Tick = quanta::Instant;

static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);

/// An anchor older than this is renewed before use.
const ANCHOR_AGE: Duration = Duration::from_secs(1);

thread_local! {
    /// (unix microseconds, the tick they were read at).
    static ANCHOR: Cell<Option<(u64, Tick)>> = const { Cell::new(None) };
}

/// Calibrates the clock now (about a millisecond, once per process) rather than at the first
/// context.
pub(crate) fn calibrate() {
    LazyLock::force(&CLOCK);
}

/// Now.
#[inline]
pub(crate) fn tick() -> Tick {
    CLOCK.now()
}

/// Unix time now in microseconds, from the system clock.
pub(crate) fn system_micros() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
}

/// Unix time in microseconds at `at` (a tick read just now on this thread).
pub(crate) fn unix_micros_at(at: Tick) -> u64 {
    let anchored = ANCHOR.try_with(Cell::get).ok().flatten();
    match anchored {
        Some((micros, tick)) if at >= tick && at - tick < ANCHOR_AGE => {
            micros + (at - tick).as_micros() as u64
        }
        _ => {
            let micros = system_micros();
            // Paired with a tick read after the wall clock: a thread descheduled between `at`
            // and the wall-clock read must not date every context of the next second late.
            let _ = ANCHOR.try_with(|a| a.set(Some((micros, tick()))));
            micros
        }
    }
}

/// Unix seconds, with microsecond precision, of a microsecond count.
#[inline]
pub(crate) fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_follow_the_system_clock_and_durations_the_ticks() {
        let before = system_micros();
        let opened = tick();
        let start = unix_micros_at(opened);
        std::thread::sleep(Duration::from_millis(30));
        let lasted = tick() - opened;
        let after = system_micros();
        assert!(
            (before..=after).contains(&start),
            "{before} {start} {after}"
        );
        assert!(
            (29_000..1_000_000).contains(&lasted.as_micros()),
            "{lasted:?}"
        );
        // A second reading within the anchor's age is derived, and agrees with the system clock
        // to well within a millisecond.
        let derived = unix_micros_at(tick());
        assert!(derived.abs_diff(system_micros()) < 1_000, "{derived}");
    }
}
