//! Reading a channel file from a byte offset, one event at a time, in bounded chunks.

use std::io::{Seek, SeekFrom};
use std::ops::ControlFlow;

use ziggy_proto::framing::{DocumentChunks, FrameError};

use crate::web::files::{LogFile, LogRoot};

/// Scans of files run at once; more requests wait their turn. Each holds one [`CHUNK`] (or one
/// larger event), so this bounds the memory of reading.
pub(crate) const MAX_SCANS: usize = 4;

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
