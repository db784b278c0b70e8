//! Reading a channel file from a byte offset, one event at a time, in bounded chunks.

use std::cell::Cell;
use std::io::{Seek, SeekFrom};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use ziggy_proto::framing::{DocumentChunks, FrameError};

use crate::web::files::{LogFile, LogRoot};
use crate::web::params::ApiError;

/// Scans of files run at once; more requests wait their turn. Each holds one [`CHUNK`] (or one
/// larger event), so this bounds the memory of reading.
pub(crate) const MAX_SCANS: usize = 4;

/// Longest a whole-range scan (`/api/request`, `/api/timers`) runs before it is refused.
pub(crate) const SCAN_TIME: Duration = Duration::from_secs(10);

/// What a scan may spend: until a deadline, and only while its client waits (the flag is set
/// when the handler's future is dropped: the client went away, or the server stops).
#[derive(Debug)]
pub(crate) struct Budget {
    deadline: Instant,
    time: Duration,
    stop: Arc<AtomicBool>,
    calls: Cell<u32>,
}

impl Budget {
    /// A budget of `time` from now, given up when `stop` is set.
    pub fn new(time: Duration, stop: Arc<AtomicBool>) -> Budget {
        Budget {
            deadline: Instant::now() + time,
            time,
            stop,
            calls: Cell::new(0),
        }
    }

    /// Whether the scan must stop now (called once an event; reads the clock every 64th).
    pub fn spent(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        let calls = self.calls.get().wrapping_add(1);
        self.calls.set(calls);
        calls & 63 == 0 && Instant::now() >= self.deadline
    }

    /// Why the scan stopped, for the client (if it still listens).
    pub fn error(&self) -> ApiError {
        if self.stop.load(Ordering::Relaxed) {
            ApiError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request was given up (the client went away, or the server stops)",
            )
        } else {
            ApiError::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "this scan took over {} s: narrow the range (from, to), the channel or the \
                     filters",
                    self.time.as_secs_f64()
                ),
            )
        }
    }
}

/// Sets its flag when dropped: held by a handler's future, so a scan it started stops when the
/// future is dropped (the client closed the connection).
pub(crate) struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Bytes read from a file at a time.
const CHUNK: usize = 1 << 20;

/// How a file scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// The file was read to its end.
    Finished,
    /// `each` asked to stop.
    Stopped,
}

/// Reads the events of `file` from byte `offset` (a document boundary, such as a cursor's),
/// handing each one's absolute offset and bytes to `each` until it breaks. Errors (the file
/// cannot be opened or read, or its framing breaks) are said in one line for the page, naming
/// the file by its place under the log path and the byte offset; what came before was handed.
pub(crate) fn scan_file(
    root: &LogRoot,
    file: &LogFile,
    offset: u64,
    mut each: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<ScanEnd, String> {
    let shown = root.shown(&file.path);
    let mut opened = root.open_file(file).map_err(|e| format!("{shown}: {e}"))?;
    if offset > 0 {
        opened
            .seek(SeekFrom::Start(offset))
            .map_err(|e| format!("{shown}: {e}"))?;
    }
    let mut docs = DocumentChunks::new(opened, CHUNK);
    loop {
        match docs.next_document() {
            Err(e) => return Err(format!("{shown}: {e}")),
            Ok(None) => return Ok(ScanEnd::Finished),
            Ok(Some(Ok((at, event)))) => {
                if each(offset + at, event).is_break() {
                    return Ok(ScanEnd::Stopped);
                }
            }
            Ok(Some(Err(broken))) => {
                let at = match broken {
                    FrameError::Truncated { offset: at, .. } => {
                        return Err(format!(
                            "{shown}: the last event, at byte {}, is incomplete (still being \
                             written, or cut)",
                            offset + at
                        ));
                    }
                    FrameError::Corrupt { offset: at, .. } => offset + at,
                };
                return Err(format!(
                    "{shown}: corrupt event at byte {at}; the rest of the file is not read"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_ends_with_its_time_or_its_client() {
        let stop = Arc::new(AtomicBool::new(false));
        let budget = Budget::new(Duration::ZERO, stop.clone());
        assert!((0..64).any(|_| budget.spent()));
        assert_eq!(budget.error().status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(budget.error().message.contains("narrow the range"));
        let budget = Budget::new(Duration::from_secs(3600), stop.clone());
        assert!(!(0..1000).any(|_| budget.spent()));
        drop(StopOnDrop(stop.clone()));
        assert!(budget.spent());
        assert_eq!(budget.error().status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
