//! Remembers the message of a panic on this thread so a context unwound by it can report it.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Chains a panic hook that records the message, then calls the hook that was there before.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_owned());
            let message = match info.location() {
                Some(loc) => format!("panic: {message} (at {}:{})", loc.file(), loc.line()),
                None => format!("panic: {message}"),
            };
            let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(message));
            previous(info);
        }));
    });
}

/// A copy of the message of the panic unwinding this thread. It stays in place: every context the
/// panic unwinds reports it.
pub(crate) fn current() -> String {
    LAST_PANIC
        .try_with(|p| p.borrow().clone())
        .ok()
        .flatten()
        .unwrap_or_else(|| "panic".to_owned())
}
