//! The on/off switch: whether ziggy calls do anything at all.
//!
//! Ziggy is on while the transport is configured or a test capture exists. Off, every call is a
//! no-op that neither allocates nor locks, so the check must be as cheap as possible: one relaxed
//! load of one flag, recomputed (rarely) whenever either cause changes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

// The flag the hot path reads, derived from the two causes below.
static ENABLED: AtomicBool = AtomicBool::new(false);
static CONFIGURED: AtomicBool = AtomicBool::new(false);
static CAPTURES: AtomicUsize = AtomicUsize::new(0);
// Serialises recomputations, so a stale result cannot overwrite a newer one.
static RECOMPUTE: Mutex<()> = Mutex::new(());

fn recompute() {
    let _serialised = RECOMPUTE.lock().unwrap_or_else(|e| e.into_inner());
    let on = CONFIGURED.load(Ordering::Acquire) || CAPTURES.load(Ordering::Acquire) != 0;
    if on {
        // Before any context can open: not inside one, and not while another thread may fork.
        crate::clock::calibrate();
    }
    ENABLED.store(on, Ordering::Release);
}

/// The transport started (`true`) or stopped (`false`).
pub(crate) fn set_configured(on: bool) {
    if on {
        crate::panic_message::install_hook();
    }
    CONFIGURED.store(on, Ordering::Release);
    recompute();
}

/// A test capture was opened.
pub(crate) fn capture_started() {
    crate::panic_message::install_hook();
    CAPTURES.fetch_add(1, Ordering::AcqRel);
    recompute();
}

/// A test capture was dropped.
pub(crate) fn capture_ended() {
    CAPTURES.fetch_sub(1, Ordering::AcqRel);
    recompute();
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
