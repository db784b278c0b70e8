//! Host name and pid of this process, read once and again after `fork` (not per event).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

/// Who emits: the `host` and `pid` fields of every event.
#[derive(Debug)]
pub(crate) struct Identity {
    /// `host` and `pid` as the two BSON elements every event carries, encoded once.
    pub elements: Vec<u8>,
}

impl Identity {
    /// The identity of `host` and `pid`.
    pub(crate) fn new(host: &str, pid: i32) -> Identity {
        use crate::element::{key, string, tag};
        use ziggy_proto::fields;
        let mut elements = Vec::new();
        string(&mut elements, fields::HOST, host);
        key(&mut elements, tag::INT32, fields::PID);
        elements.extend_from_slice(&pid.to_le_bytes());
        Identity { elements }
    }
}

// Bumped in the child of every fork, so each thread re-reads its cached identity once afterwards.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

thread_local! {
    static CACHED: RefCell<Option<(u64, Arc<Identity>)>> = const { RefCell::new(None) };
}

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn read_identity() -> Identity {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".to_owned()
    };
    Identity::new(&host, std::process::id() as i32)
}

/// This process's identity, cached per thread and refreshed after a fork.
pub(crate) fn current() -> Arc<Identity> {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches an atomic is async-signal-safe.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    CACHED
        .try_with(|cell| {
            let mut cached = cell.borrow_mut();
            match &*cached {
                Some((g, id)) if *g == generation => id.clone(),
                _ => {
                    let id = Arc::new(read_identity());
                    *cached = Some((generation, id.clone()));
                    id
                }
            }
        })
        .unwrap_or_else(|_| Arc::new(read_identity()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_pid_and_host() {
        let id = super::current();
        // The two elements, wrapped into a document of their own.
        let mut doc = ((id.elements.len() + 5) as i32).to_le_bytes().to_vec();
        doc.extend_from_slice(&id.elements);
        doc.push(0);
        let doc = bson::Document::from_reader(&doc[..]).unwrap();
        assert_eq!(doc.get_i32("pid").unwrap(), std::process::id() as i32);
        assert!(!doc.get_str("host").unwrap().is_empty());
        assert!(std::sync::Arc::ptr_eq(&id, &super::current()));
    }
}
