//! Flushing at process exit: returning from `main` (or `std::process::exit`) runs [`shutdown`],
//! so what is queued is delivered (up to the shutdown timeout) even when the program never calls
//! it. A process killed by a signal still loses its queue.

use std::sync::Once;

static REGISTERED: Once = Once::new();

/// Registers the exit handler, once per process.
pub(super) fn register() {
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only records the function pointer; `flush_at_exit` is an `extern "C"`
        // fn with no arguments that never unwinds.
        unsafe {
            libc::atexit(flush_at_exit);
        }
    });
}

extern "C" fn flush_at_exit() {
    // A panic must not cross the C boundary; a failed flush at exit has nobody left to tell.
    let _ = std::panic::catch_unwind(super::shutdown);
}
