//! The spool directory itself: created private (0700), refused when another user could tamper
//! with it, locked against a second daemon, and its two state files (the identity and the
//! ledger) read so that a missing file is told apart from a damaged one.

use std::io::{Error, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::lock::{DirLock, LockError};
use crate::state_file;

/// A state file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found<T> {
    /// Not there.
    Missing,
    /// There but not usable; why.
    Damaged(String),
    /// Read.
    Ok(T),
}

/// This spool's identity towards the upstream: its sender id, and `base`, the local seq that
/// precedes the first one sent under that id (the upstream numbers every sender id's events
/// from 1, so a new id starts its numbering again: wire seq = local seq − base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) id: String,
    pub(super) base: u64,
}

/// Creates `dir` (and missing parents) with mode 0700, checks nobody else can change it, and
/// takes its lock; the lock is held until the returned value is dropped.
pub(super) fn prepare(dir: &Path) -> std::io::Result<DirLock> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    check_private(dir)?;
    let lock = lock(dir)?;
    tighten(dir)?;
    Ok(lock)
}

/// Makes files left by an older ziggyd (created with the umask's mode) private too.
fn tighten(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

fn check_private(dir: &Path) -> std::io::Result<()> {
    // The real path: a symlink must not hide whose directories these are.
    let dir = &std::fs::canonicalize(dir)?;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(Error::new(ErrorKind::InvalidInput, "it is not a directory"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "it is owned by uid {}, not by uid {euid} that this daemon runs as: its owner \
                 could read, change or remove the spooled events; chown it to this user or \
                 choose another --spool-dir",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "it is writable by group or others (mode {mode:04o}), who could change or remove \
                 the spooled events: run `chmod 700 {}` or choose another --spool-dir",
                dir.display()
            ),
        ));
    }
    // Whoever can write a parent can swap the directory for another one: every parent up to `/`
    // must be this user's or root's, and not writable by others unless sticky (/tmp, /var/tmp).
    for parent in dir
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
    {
        let meta = std::fs::metadata(parent)?;
        let mode = meta.mode() & 0o7777;
        if meta.uid() != euid && meta.uid() != 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "its parent {} is owned by uid {}, who could replace the spool directory; \
                     choose a --spool-dir whose parent is yours or root's",
                    parent.display(),
                    meta.uid()
                ),
            ));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "its parent {} is writable by group or others (mode {mode:04o}) without the \
                     sticky bit, so they could replace the spool directory: run `chmod go-w {}` \
                     or choose another --spool-dir",
                    parent.display(),
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Takes the exclusive lock on `dir/lock` (pid inside); two daemons on one spool would number
/// and delete each other's segments.
fn lock(dir: &Path) -> std::io::Result<DirLock> {
    DirLock::acquire(dir, "lock").map_err(|e| match e {
        LockError::Held { path, holder } => Error::new(
            ErrorKind::WouldBlock,
            format!(
                "another ziggyd ({holder}) holds its lock {}: stop that daemon or give this one \
                 its own --spool-dir",
                path.display()
            ),
        ),
        LockError::Io { source, .. } => source,
    })
}

/// Whether `id` can be a sender id: what the upstream accepts.
fn valid_id(id: &str) -> bool {
    ziggy_proto::forward::valid_sender_id(id.as_bytes())
}

/// Reads `sender-id`: the id on its first line, then an optional `base N` line.
pub(super) fn read_identity(path: &Path) -> std::io::Result<Found<Identity>> {
    let Some(bytes) = state_file::read_bytes(path)? else {
        return Ok(Found::Missing);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(Found::Damaged("sender-id is not text".into()));
    };
    let mut lines = text.lines();
    let id = lines.next().unwrap_or("").trim();
    if !valid_id(id) {
        return Ok(Found::Damaged(format!(
            "sender-id holds no valid id ({})",
            snippet(text)
        )));
    }
    let base = match lines.next().map(str::trim) {
        None | Some("") => 0,
        Some(line) => match line.strip_prefix("base ").and_then(|n| n.parse().ok()) {
            Some(base) => base,
            None => {
                return Ok(Found::Damaged(format!(
                    "sender-id is unparsable ({})",
                    snippet(text)
                )));
            }
        },
    };
    if lines.any(|l| !l.trim().is_empty()) {
        return Ok(Found::Damaged(format!(
            "sender-id is unparsable ({})",
            snippet(text)
        )));
    }
    Ok(Found::Ok(Identity {
        id: id.to_owned(),
        base,
    }))
}

/// Writes `sender-id` atomically.
pub(super) fn write_identity(path: &Path, identity: &Identity) -> std::io::Result<()> {
    state_file::write_atomic(
        path,
        format!("{}\nbase {}\n", identity.id, identity.base).as_bytes(),
    )
}

/// Reads `ledger`: `acked N`, the highest local seq the upstream confirmed.
pub(super) fn read_ledger(path: &Path) -> std::io::Result<Found<u64>> {
    let Some(bytes) = state_file::read_bytes(path)? else {
        return Ok(Found::Missing);
    };
    let text = String::from_utf8_lossy(&bytes);
    match text
        .trim_end()
        .strip_prefix("acked ")
        .and_then(|n| n.parse().ok())
    {
        Some(acked) => Ok(Found::Ok(acked)),
        None => Ok(Found::Damaged(format!(
            "the ledger is unparsable ({})",
            snippet(&text)
        ))),
    }
}

/// Writes `ledger` atomically.
pub(super) fn write_ledger(path: &Path, acked: u64) -> std::io::Result<()> {
    state_file::write_atomic(path, format!("acked {acked}\n").as_bytes())
}

/// The start of a damaged file's text, for a log line.
fn snippet(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}
