//! One channel-day log file of the writer: its buffer of events waiting to be written (and where
//! each came from), and opening it for appending after a crash's torn tail is cut or damage is
//! moved aside.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use ziggy_proto::day::Day;

use super::WriteError;
use crate::stats::DaemonStats;

/// Which file: a channel and a UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileKey {
    pub(super) channel: String,
    pub(super) day: Day,
}

/// Where an event in a file's buffer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Sent by an application: held and retried on failure.
    Local,
    /// Part of the forwarded batch at this index of the current group: refused on failure.
    Forwarded(usize),
}

/// One event in a file's buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) len: usize,
    pub(super) origin: Origin,
}

/// Events waiting to be written to one file.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) bytes: Vec<u8>,
    /// Each event, in order.
    pub(super) entries: Vec<Entry>,
}

impl Pending {
    pub(super) fn push(&mut self, event: &[u8], origin: Origin) {
        self.bytes.extend_from_slice(event);
        self.entries.push(Entry {
            len: event.len(),
            origin,
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn has_forwarded(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.origin, Origin::Forwarded(_)))
    }

    /// The forwarded batches (their indexes) with events in the buffer.
    pub(super) fn forwarded(&self) -> Vec<usize> {
        let mut batches = Vec::new();
        for e in &self.entries {
            if let Origin::Forwarded(i) = e.origin
                && !batches.contains(&i)
            {
                batches.push(i);
            }
        }
        batches
    }

    /// Removes the forwarded events (their senders resend them); returns their batch indexes.
    pub(super) fn take_forwarded(&mut self) -> Vec<usize> {
        let batches = self.forwarded();
        let mut kept = Pending::default();
        let mut at = 0;
        for e in &self.entries {
            if e.origin == Origin::Local {
                kept.push(&self.bytes[at..at + e.len], e.origin);
            }
            at += e.len;
        }
        *self = kept;
        batches
    }
}

/// One channel-day file.
pub(super) struct LogFile {
    pub(super) path: PathBuf,
    /// `None` while closed (never opened, evicted, or closed after an error).
    pub(super) file: Option<File>,
    pub(super) inode: u64,
    pub(super) last_use: Instant,
    /// Bytes of whole events in the file.
    pub(super) len: u64,
    pub(super) pending: Pending,
    /// Written since the last fsync.
    pub(super) unsynced: bool,
    /// The last error, while this path cannot be written.
    pub(super) failing: Option<WriteError>,
}

impl LogFile {
    /// A closed file at `path`.
    pub(super) fn new(path: PathBuf) -> LogFile {
        LogFile {
            path,
            file: None,
            inode: 0,
            last_use: Instant::now(),
            len: 0,
            pending: Pending::default(),
            unsynced: false,
            failing: None,
        }
    }

    /// Opens the file for appending: creates its directory, and unless it has `closed_len`
    /// bytes (as this writer left it), cuts a torn tail left by a crash, or moves a damaged
    /// file aside and starts a new one.
    pub(super) fn open(
        &mut self,
        closed_len: Option<u64>,
        stats: &DaemonStats,
    ) -> std::io::Result<()> {
        let path = &self.path;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len > 0 && closed_len != Some(len) {
            match crate::tail::cut_torn_tail(path)? {
                Ok(0) => {}
                Ok(cut) => {
                    stats.torn_tails_cut.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "ziggyd: {}: cut {cut} bytes of a partial event at its end (left by a \
                         crash during a write)",
                        path.display()
                    );
                }
                Err(at) => {
                    // Not a crash's partial event: keep every byte, write on in a new file.
                    let aside = set_aside_path(path);
                    std::fs::rename(path, &aside)?;
                    stats.damaged_files.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "ziggyd: {}: damaged at byte {at} (not a partial event at the end); \
                         moved untouched to {} and a new file started",
                        path.display(),
                        aside.display()
                    );
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
        self.file = Some(file);
        self.inode = meta.ino();
        self.len = meta.len();
        Ok(())
    }
}

/// Where a damaged log file is moved: beside it, named after it and the time.
fn set_aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".damaged-{secs}"));
    path.with_file_name(name)
}
