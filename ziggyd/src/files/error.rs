//! Why the file writer cannot start ([`LogPathError`]) or cannot make events durable
//! ([`WriteError`]), in words an operator can act on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lock::LockError;

/// Why events could not be made durable in a log file: what the collector answers a forwarded
/// batch with (`NAK1 write_failed: …`) and STATUS shows in `write_failing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The file could not be opened (or its directory created, or its tail repaired).
    #[error("cannot open {}: {cause}", path.display())]
    Open {
        /// The log file.
        path: PathBuf,
        /// Why.
        cause: IoCause,
    },
    /// Its events could not be written (the file is cut back to whole events).
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        /// The log file.
        path: PathBuf,
        /// Why.
        cause: IoCause,
    },
    /// Its fsync failed.
    #[error("cannot fsync {}: {cause}", path.display())]
    Fsync {
        /// The log file.
        path: PathBuf,
        /// Why.
        cause: IoCause,
    },
    /// It was closed between its write and its fsync.
    #[error("{} was closed before its fsync", path.display())]
    ClosedBeforeFsync {
        /// The log file.
        path: PathBuf,
    },
}

/// An I/O error, shown in the words of [`describe_io_error`]; shared, so that the failure of one
/// file can be told to every batch it refuses.
#[derive(Debug, Clone)]
pub struct IoCause(Arc<std::io::Error>);

impl From<std::io::Error> for IoCause {
    fn from(e: std::io::Error) -> IoCause {
        IoCause(Arc::new(e))
    }
}

impl std::fmt::Display for IoCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_io_error(&self.0))
    }
}

impl PartialEq for IoCause {
    fn eq(&self, other: &IoCause) -> bool {
        self.0.kind() == other.0.kind() && self.0.raw_os_error() == other.0.raw_os_error()
    }
}

impl Eq for IoCause {}

/// Words for an I/O error an operator can act on.
pub fn describe_io_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "disk full (no space left on device)".into(),
        Some(libc::EDQUOT) => "disk quota exceeded".into(),
        Some(libc::EFBIG) => "file size limit reached (EFBIG)".into(),
        Some(libc::EISDIR) => "a directory is in the way (EISDIR)".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => format!("permission denied ({e})"),
        _ => e.to_string(),
    }
}

/// Why the file writer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LogPathError {
    /// The log directory cannot be created or read.
    #[error("cannot use log path {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another daemon uses the same directory.
    #[error(transparent)]
    Locked(#[from] LockError),
}

impl LogPathError {
    /// An I/O error on the log directory `dir`.
    pub fn io(dir: &Path, source: std::io::Error) -> LogPathError {
        LogPathError::Io {
            path: dir.display().to_string(),
            source,
        }
    }
}
