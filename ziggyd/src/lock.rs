//! Exclusive use of a directory by one daemon: the directory itself is locked with
//! `File::try_lock` (flock: released by the kernel when the process dies, so a crash never leaves
//! it stale), and a file in it names the holder's pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{path} is locked by another ziggyd ({holder}); two daemons on one directory would lose \
         events: stop that one, or give this one another directory"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as far as the file says.
        holder: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    /// The locked directory or file (the lock lives as long as this handle).
    _dir: File,
}

impl DirLock {
    /// Locks `dir` through the file `dir/name` (created mode 0600), writing this process's pid
    /// into it.
    pub fn acquire(dir: &Path, name: &str) -> Result<DirLock, LockError> {
        let path = dir.join(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // The lock is on the directory itself: deleting or replacing the pid file cannot let a
        // second daemon in.
        let dir_handle = File::open(dir).map_err(io)?;
        let held = match dir_handle.try_lock() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(e)) => return Err(io(e)),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        if held {
            let holder = holder(&mut file);
            return Err(LockError::Held { path, holder });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _dir: dir_handle })
    }

    /// Locks `dir` shared with other holders of a shared lock (writers of different partitions of
    /// a JetStream stream), so a daemon that wants it alone (`acquire`) is refused, and it is
    /// refused while such a daemon holds it. No pid is written: several may hold it.
    #[cfg(feature = "jetstream")]
    pub fn acquire_shared(dir: &Path, name: &str) -> Result<DirLock, LockError> {
        let path = dir.join(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let dir_handle = File::open(dir).map_err(io)?;
        match dir_handle.try_lock_shared() {
            Ok(()) => Ok(DirLock { _dir: dir_handle }),
            Err(TryLockError::WouldBlock) => {
                let holder = File::open(&path)
                    .map(|mut f| holder(&mut f))
                    .unwrap_or_else(|_| "pid unknown".to_owned());
                Err(LockError::Held { path, holder })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Locks the file `dir/name` itself (created mode 0600) and writes this process's pid into
    /// it: one holder per name within a directory several daemons share.
    #[cfg(feature = "jetstream")]
    pub fn acquire_file(dir: &Path, name: &str) -> Result<DirLock, LockError> {
        let path = dir.join(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                return Err(LockError::Held { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _dir: file })
    }
}

/// Who holds a lock, as its pid file says.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "pid unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "lock").unwrap();
        let err = DirLock::acquire(dir.path(), "lock")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DirLock::acquire(dir.path(), "lock").expect("released on drop");
    }
}
