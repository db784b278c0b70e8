//! Where a closed event goes: a [`Sink`].
//!
//! There are two sinks: the ZeroMQ transport (`transport::TransportSink`, the process-wide default) and
//! a test capture (`testing::CaptureSink`). A capture becomes this thread's *scoped* sink for the
//! length of `Capture::run` or of one poll of a `Captured` future; a context opened meanwhile
//! keeps it, so its event and its sub-contexts' (on any thread) go there. A frame that keeps no
//! sink goes to the default.
//!
//! As `tracing-core` does for its scoped dispatcher, a global count of open scopes lets the hot
//! path skip the thread-local lookup entirely while no scope is open anywhere (production).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Receives closed events, each one encoded BSON document.
pub(crate) trait Sink: Send + Sync {
    /// Takes one event; must not block (it runs on the application's thread).
    fn accept(&self, event: Vec<u8>);
}

/// A sink that frames and spans hold on to.
pub(crate) type SharedSink = Arc<dyn Sink>;

// Scopes open on all threads together.
static SCOPES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SCOPED: RefCell<Option<SharedSink>> = const { RefCell::new(None) };
}

/// This thread's scoped sink, if one is open.
#[inline]
pub(crate) fn scoped() -> Option<SharedSink> {
    // Relaxed is enough: a thread counts its own scope before setting it, so it always sees its
    // own count; other threads' scopes only make this skip less often.
    if SCOPES.load(Ordering::Relaxed) == 0 {
        return None;
    }
    SCOPED.try_with(|s| s.borrow().clone()).ok().flatten()
}

/// Makes `sink` this thread's scoped sink until the guard drops (on unwinding too).
pub(crate) fn scope(sink: SharedSink) -> ScopeGuard {
    SCOPES.fetch_add(1, Ordering::Relaxed);
    let previous = SCOPED.try_with(|s| s.replace(Some(sink))).ok().flatten();
    ScopeGuard {
        previous,
        _not_send: PhantomData,
    }
}

/// Restores the previous scoped sink when dropped.
pub(crate) struct ScopeGuard {
    previous: Option<SharedSink>,
    // It restores this thread's slot: it must be dropped on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let _ = SCOPED.try_with(|s| *s.borrow_mut() = self.previous.take());
        SCOPES.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Vec<u8>>>);
    impl Sink for Collect {
        fn accept(&self, event: Vec<u8>) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn scopes_nest_and_restore() {
        let (a, b): (SharedSink, SharedSink) =
            (Arc::new(Collect::default()), Arc::new(Collect::default()));
        assert!(scoped().is_none());
        {
            let _a = scope(a.clone());
            assert!(Arc::ptr_eq(&scoped().unwrap(), &a));
            {
                let _b = scope(b.clone());
                assert!(Arc::ptr_eq(&scoped().unwrap(), &b));
            }
            assert!(Arc::ptr_eq(&scoped().unwrap(), &a));
        }
        assert!(scoped().is_none());
    }
}
