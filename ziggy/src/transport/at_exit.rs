//! Flushing at process exit: returning from `main` (or `std::process::exit`) runs [`shutdown`],
//! so what is queued is delivered (up to the shutdown timeout) even when the program never calls
//! it. A process killed by a signal, or aborting (`panic = "abort"`), still loses its queue; a
//! forked child's exit leaves the parent's sender alone.

use std::sync::Once;

static REGISTERED: Once = Once::new();

/// Registers the exit handler, once per process.
pub(super) fn register() {
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only records the function pointer; `flush_at_exit` is an `extern "C"`
        // fn with no arguments that never unwinds.
        let refused = unsafe { libc::atexit(flush_at_exit) } != 0;
        if refused {
            eprintln!(
                "ziggy: cannot register the exit handler: call ziggy::shutdown() before exiting"
            );
        }
    });
}

extern "C" fn flush_at_exit() {
    // A panic must not cross the C boundary; a failed flush at exit has nobody left to tell.
    let _ = std::panic::catch_unwind(super::shutdown);
}
