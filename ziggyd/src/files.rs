//! The file writer: `DIR/YYYYMMDD/<channel>.YYYYMMDD.bson`, bytes as received, appended.
//!
//! Counting is exact: an event counts as written only once all its bytes are in its file. Events
//! wait in a per-file buffer, written with one `write` loop; if that fails part-way (disk full, a
//! file size limit, an I/O error, a directory where the file should be) the file is cut back to
//! the length it had before, so it never ends in part of an event. Then:
//! - the events of a forwarded batch are refused: the collector answers `NAK1` and the sending
//!   daemon keeps them in its spool and resends later; a forwarded batch is confirmed only when
//!   every event of it is written and fsynced;
//! - events an application sent directly (no acknowledgement exists on that hop) are held and
//!   retried every flush interval, up to [`HELD_MAX_BYTES`]; past that they are counted as lost
//!   (`events_lost_write`), never as written.
//!
//! Which paths fail, and why, is in STATUS (`write_failing`) and in a rate-limited log line.
//! Open files are bounded ([`DEFAULT_MAX_OPEN_FILES`], least recently used closed first), flushed
//! at least every flush interval, closed when idle, and reopened when moved or deleted (each tick
//! compares the inode at the path with the one written to) or when SIGHUP asks for it.

mod error;
mod log_file;

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use ziggy_proto::day::{Day, log_file_path};

use crate::batch::{Batch, ForwardMark};
use crate::config::DaemonConfig;
use crate::lock::DirLock;
use crate::ratelog::RateLimitedLog;
use crate::runtime::Shared;
use crate::stats::DaemonStats;

pub use error::{LogPathError, WriteError, describe_io_error};
use log_file::{FileKey, LogFile, Origin, Pending};

/// The file writer's verdict on one forwarded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The batch.
    pub mark: ForwardMark,
    /// `Ok` when every event of it is written and fsynced; otherwise which path failed and why.
    pub result: Result<(), WriteError>,
}

/// Batches written together before one fsync of the files they touched (group commit).
const GROUP_BATCHES: usize = 64;
/// A file's buffer is written out past this size (and at every tick).
const FLUSH_BYTES: usize = 256 << 10;
/// Events of applications held in memory while their files cannot be written.
pub const HELD_MAX_BYTES: usize = 64 << 20;
/// Files kept open at once, unless the writer is given another bound.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// Lengths of closed files remembered (to skip the torn-tail scan on reopening).
const CLOSED_LENGTHS_KEPT: usize = 4096;

/// A file written in this group, with the forwarded batches (their indexes) it holds events of:
/// fsynced before they are confirmed.
struct ToSync {
    key: FileKey,
    batches: Vec<usize>,
}

/// Writes batches to per-channel, per-day files under one directory.
pub struct FileWriter {
    dir: PathBuf,
    files: HashMap<String, HashMap<Day, LogFile>>,
    stats: Arc<DaemonStats>,
    log: RateLimitedLog,
    outcomes: Option<Sender<WriteOutcome>>,
    /// Lengths of the files this writer closed: reopening one of that length skips the scan for
    /// a torn tail (nobody else writes them: the log path is locked).
    closed_lengths: HashMap<PathBuf, u64>,
    max_open: usize,
    open: usize,
    /// Bumped by SIGHUP: every file is closed and reopened at its next write.
    reopen: Option<Arc<AtomicU64>>,
    reopen_seen: u64,
    /// Files are flushed at least this often.
    flush_interval: Duration,
    /// A file with no write for this long is closed.
    idle_close: Duration,
    /// Held while the writer lives: one daemon per log path.
    _lock: Option<DirLock>,
}

impl FileWriter {
    /// The writer of a daemon with `--log-path` `dir`: creates and locks the directory, reports
    /// forwarded batches on `outcomes`, and reopens its files on SIGHUP.
    pub fn build(
        shared: &Shared,
        config: &DaemonConfig,
        dir: &Path,
        outcomes: Sender<WriteOutcome>,
    ) -> Result<FileWriter, LogPathError> {
        FileWriter::build_locked(shared, config, dir, outcomes, DirLock::acquire)
    }

    /// The writer of a JetStream writer daemon (`--consume`): the directory is locked shared, so
    /// writers of other partitions may use it and a daemon that wants it alone may not.
    #[cfg(feature = "jetstream")]
    pub fn build_shared(
        shared: &Shared,
        config: &DaemonConfig,
        dir: &Path,
        outcomes: Sender<WriteOutcome>,
    ) -> Result<FileWriter, LogPathError> {
        FileWriter::build_locked(shared, config, dir, outcomes, DirLock::acquire_shared)
    }

    /// Creates `dir`, locks it with `lock`, and builds the writer holding that lock.
    fn build_locked(
        shared: &Shared,
        config: &DaemonConfig,
        dir: &Path,
        outcomes: Sender<WriteOutcome>,
        lock: fn(&Path, &str) -> Result<DirLock, crate::lock::LockError>,
    ) -> Result<FileWriter, LogPathError> {
        std::fs::create_dir_all(dir).map_err(|e| LogPathError::io(dir, e))?;
        let lock = lock(dir, ".ziggyd-lock")?;
        let mut writer = FileWriter::new(dir, shared.stats.clone())
            .map_err(|e| LogPathError::io(dir, e))?
            .with_outcomes(outcomes)
            .with_reopen(shared.reopen.clone());
        writer.flush_interval = config.flush_interval;
        writer.idle_close = config.idle_close;
        writer._lock = Some(lock);
        Ok(writer)
    }

    /// Closes idle files and reopens after SIGHUP, as [`FileWriter::run`] does between batches,
    /// for a writer driven by another loop.
    #[cfg(feature = "jetstream")]
    pub fn tick_if_due(&mut self, last_tick: &mut Instant) {
        let hup = self
            .reopen
            .as_ref()
            .is_some_and(|g| g.load(Ordering::Acquire) != self.reopen_seen);
        if hup || last_tick.elapsed() >= self.flush_interval {
            self.tick(self.idle_close);
            *last_tick = Instant::now();
        }
    }

    /// A writer under `dir` (created if missing), neither locked nor reporting.
    pub fn new(dir: &Path, stats: Arc<DaemonStats>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileWriter {
            dir: dir.to_owned(),
            files: HashMap::new(),
            stats,
            log: RateLimitedLog::new(Duration::from_secs(10)),
            outcomes: None,
            closed_lengths: HashMap::new(),
            max_open: DEFAULT_MAX_OPEN_FILES,
            open: 0,
            reopen: None,
            reopen_seen: 0,
            flush_interval: Duration::from_secs(1),
            idle_close: Duration::from_secs(60),
            _lock: None,
        })
    }

    /// Where to report forwarded batches once they are durable (or could not be written).
    pub fn with_outcomes(mut self, outcomes: Sender<WriteOutcome>) -> Self {
        self.outcomes = Some(outcomes);
        self
    }

    /// At most `max_open` files open at once (at least 1).
    #[cfg(test)]
    pub fn with_max_open(mut self, max_open: usize) -> Self {
        self.max_open = max_open.max(1);
        self
    }

    /// Reopens every file when `generation` changes (SIGHUP).
    pub fn with_reopen(mut self, generation: Arc<AtomicU64>) -> Self {
        self.reopen_seen = generation.load(Ordering::Acquire);
        self.reopen = Some(generation);
        self
    }

    /// Appends every event of the batch to its file; a forwarded batch is fsynced, then
    /// reported.
    #[cfg(test)]
    pub fn write(&mut self, batch: &Batch) {
        self.write_group(&[batch]);
    }

    /// Appends several batches, then makes the forwarded ones durable with one fsync per file
    /// (group commit) and reports each: confirmed only if every event of it is on disk.
    pub fn write_group<B: std::ops::Deref<Target = Batch>>(&mut self, batches: &[B]) {
        let now = Instant::now();
        let mut lost = 0u64;
        let mut held = self.held_bytes();
        for (i, batch) in batches.iter().enumerate() {
            let origin = match batch.durable {
                Some(_) => Origin::Forwarded(i),
                None => Origin::Local,
            };
            // Events of one channel-day usually come in runs: one lookup per run.
            let mut events = batch.iter().peekable();
            while let Some(first) = events.next() {
                let file = self.file_entry(first.channel, first.day);
                file.last_use = now;
                let mut event = Some(first);
                while let Some(this) = event {
                    // An application's event held for a file that cannot be written counts
                    // towards the held bound.
                    let held_back = file.failing.is_some() && origin == Origin::Local;
                    if held_back && held + this.bytes.len() > HELD_MAX_BYTES {
                        lost += 1;
                    } else {
                        if held_back {
                            held += this.bytes.len();
                        }
                        file.pending.push(this.bytes, origin);
                    }
                    event =
                        events.next_if(|next| next.channel == this.channel && next.day == this.day);
                }
            }
        }
        if lost > 0 {
            self.stats
                .events_lost_write
                .fetch_add(lost, Ordering::Relaxed);
            self.log.log("lost", || {
                format!(
                    "{lost} event(s) lost: their files cannot be written and {HELD_MAX_BYTES} \
                     bytes are already held for retry"
                )
            });
        }
        // Forwarded events are written now (their senders wait); others once a buffer is full.
        let mut refused: Vec<Option<WriteError>> = vec![None; batches.len()];
        let mut to_sync: Vec<ToSync> = Vec::new();
        let keys = self.keys(|f| f.pending.has_forwarded() || f.pending.bytes.len() >= FLUSH_BYTES);
        for key in keys {
            match self.flush(&key.channel, key.day) {
                Ok(batches) if !batches.is_empty() => to_sync.push(ToSync { key, batches }),
                Ok(_) => {}
                Err(reason) => {
                    let file = self.file_entry(&key.channel, key.day);
                    for i in file.pending.take_forwarded() {
                        refused[i].get_or_insert_with(|| reason.clone());
                    }
                }
            }
        }
        for ToSync { key, batches } in to_sync {
            if let Err(reason) = self.sync(&key.channel, key.day) {
                for i in batches {
                    refused[i].get_or_insert_with(|| reason.clone());
                }
            }
        }
        self.publish_failing();
        let Some(outcomes) = &self.outcomes else {
            return;
        };
        for (batch, refused) in batches.iter().zip(refused) {
            if let Some(mark) = &batch.durable {
                let _ = outcomes.send(WriteOutcome {
                    mark: mark.clone(),
                    result: refused.map_or(Ok(()), Err),
                });
            }
        }
    }

    /// The entry of one channel-day, created (closed) if missing.
    fn file_entry(&mut self, channel: &str, day: Day) -> &mut LogFile {
        if !self.files.contains_key(channel) {
            self.files.insert(channel.to_owned(), HashMap::new());
        }
        let by_day = self.files.get_mut(channel).expect("inserted above");
        by_day
            .entry(day)
            .or_insert_with(|| LogFile::new(log_file_path(&self.dir, channel, day)))
    }

    /// The files that `select` picks.
    fn keys(&self, select: impl Fn(&LogFile) -> bool) -> Vec<FileKey> {
        self.files
            .iter()
            .flat_map(|(channel, days)| {
                days.iter()
                    .filter(|(_, f)| select(f))
                    .map(move |(day, _)| FileKey {
                        channel: channel.clone(),
                        day: *day,
                    })
            })
            .collect()
    }

    fn entry_mut(&mut self, channel: &str, day: Day) -> Option<&mut LogFile> {
        self.files.get_mut(channel)?.get_mut(&day)
    }

    /// Bytes of application events waiting on files that cannot be written.
    fn held_bytes(&self) -> usize {
        self.files
            .values()
            .flat_map(|d| d.values())
            .filter(|f| f.failing.is_some())
            .map(|f| f.pending.bytes.len())
            .sum()
    }

    /// Opens a closed file: creates its directory, cuts a torn tail left by a crash, and keeps
    /// the number of open files within the bound.
    fn ensure_open(&mut self, channel: &str, day: Day) -> Result<(), WriteError> {
        if self
            .entry_mut(channel, day)
            .is_some_and(|f| f.file.is_some())
        {
            return Ok(());
        }
        if self.open >= self.max_open {
            self.close_least_recently_used(channel, day);
        }
        let stats = self.stats.clone();
        let path = self.file_entry(channel, day).path.clone();
        let closed_len = self.closed_lengths.get(&path).copied();
        self.file_entry(channel, day)
            .open(closed_len, &stats)
            .map_err(|e| WriteError::Open {
                path,
                cause: e.into(),
            })?;
        self.open += 1;
        stats.files_open.store(self.open as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Makes room for one more open file: writes out and closes the least recently used one.
    fn close_least_recently_used(&mut self, except_channel: &str, except_day: Day) {
        let oldest = self
            .files
            .iter()
            .flat_map(|(c, d)| d.iter().map(move |(day, f)| (c, *day, f)))
            .filter(|(c, d, f)| {
                f.file.is_some() && !(c.as_str() == except_channel && *d == except_day)
            })
            .min_by_key(|(_, _, f)| f.last_use)
            .map(|(c, d, _)| (c.clone(), d));
        if let Some((channel, day)) = oldest {
            let _ = self.flush(&channel, day);
            self.close(&channel, day);
        }
    }

    /// Closes one file (its unwritten events stay in its buffer) and forgets it if nothing is
    /// pending.
    fn close(&mut self, channel: &str, day: Day) {
        let Some(by_day) = self.files.get_mut(channel) else {
            return;
        };
        let Some(f) = by_day.get_mut(&day) else {
            return;
        };
        if let Some(file) = f.file.take() {
            if f.unsynced {
                let _ = file.sync_data();
            }
            self.open -= 1;
            if f.failing.is_none() {
                if self.closed_lengths.len() >= CLOSED_LENGTHS_KEPT {
                    self.closed_lengths.clear();
                }
                self.closed_lengths.insert(f.path.clone(), f.len);
            }
        }
        f.unsynced = false;
        if f.pending.is_empty() {
            by_day.remove(&day);
            if by_day.is_empty() {
                self.files.remove(channel);
            }
        }
        self.stats
            .files_open
            .store(self.open as u64, Ordering::Relaxed);
    }

    /// Writes one file's buffer, all of it or none of it; returns the forwarded batches whose
    /// events it wrote (to fsync before confirming).
    fn flush(&mut self, channel: &str, day: Day) -> Result<Vec<usize>, WriteError> {
        if self
            .entry_mut(channel, day)
            .is_none_or(|f| f.pending.is_empty())
        {
            return Ok(Vec::new());
        }
        if let Err(reason) = self.ensure_open(channel, day) {
            self.failed(channel, day, reason.clone());
            return Err(reason);
        }
        let f = self.entry_mut(channel, day).expect("opened above");
        let file = f.file.as_mut().expect("opened above");
        let mut written = 0;
        let mut error = None;
        while written < f.pending.bytes.len() {
            match file.write(&f.pending.bytes[written..]) {
                Ok(0) => {
                    error = Some(std::io::Error::from(ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            let reason = WriteError::Write {
                path: f.path.clone(),
                cause: e.into(),
            };
            // Cut what part of the buffer reached the file: it must end on a whole event. If
            // even that fails, close it: reopening cuts the torn tail.
            if written > 0 && file.set_len(f.len).is_err() {
                f.file = None;
                self.open -= 1;
                self.stats
                    .files_open
                    .store(self.open as u64, Ordering::Relaxed);
            }
            self.failed(channel, day, reason.clone());
            return Err(reason);
        }
        f.len += written as u64;
        f.unsynced = true;
        let events = f.pending.entries.len() as u64;
        let forwarded = f.pending.forwarded();
        f.pending = Pending::default();
        if let Some(was) = f.failing.take() {
            let path = f.path.display().to_string();
            eprintln!("ziggyd: writing {path} again (it failed: {was})");
        }
        self.stats
            .events_written
            .fetch_add(events, Ordering::Relaxed);
        Ok(forwarded)
    }

    /// Fsyncs one file.
    fn sync(&mut self, channel: &str, day: Day) -> Result<(), WriteError> {
        let Some(f) = self.entry_mut(channel, day) else {
            return Ok(());
        };
        let Some(file) = &f.file else {
            return Err(WriteError::ClosedBeforeFsync {
                path: f.path.clone(),
            });
        };
        match file.sync_data() {
            Ok(()) => {
                f.unsynced = false;
                Ok(())
            }
            Err(e) => {
                let reason = WriteError::Fsync {
                    path: f.path.clone(),
                    cause: e.into(),
                };
                self.failed(channel, day, reason.clone());
                Err(reason)
            }
        }
    }

    fn failed(&mut self, channel: &str, day: Day, reason: WriteError) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.entry_mut(channel, day) {
            f.failing = Some(reason.clone());
        }
        self.log.log("write", || {
            format!("{reason}; events are held and retried (forwarded ones stay with their sender)")
        });
    }

    /// Puts the failing paths and the held events in STATUS.
    fn publish_failing(&self) {
        let mut failing = Vec::new();
        let mut held = 0u64;
        for f in self.files.values().flat_map(|d| d.values()) {
            if let Some(reason) = &f.failing {
                failing.push(crate::stats::WriteFailing {
                    path: f.path.display().to_string(),
                    reason: reason.to_string(),
                });
                held += f.pending.entries.len() as u64;
            }
        }
        self.stats.events_held.store(held, Ordering::Relaxed);
        self.stats.set_write_failing(failing);
    }

    /// Flushes every file (retrying the failing ones), closes idle ones, and reopens files moved
    /// or deleted under us, or every file after SIGHUP.
    pub fn tick(&mut self, idle_close: Duration) {
        let reopen_all = match &self.reopen {
            Some(generation) => {
                let now = generation.load(Ordering::Acquire);
                let changed = now != self.reopen_seen;
                self.reopen_seen = now;
                changed
            }
            None => false,
        };
        let now = Instant::now();
        let mut reopened = 0;
        for FileKey { channel, day } in self.keys(|_| true) {
            let _ = self.flush(&channel, day);
            let Some(f) = self.entry_mut(&channel, day) else {
                continue;
            };
            let moved = f.file.is_some()
                && std::fs::metadata(&f.path)
                    .map(|m| m.ino() != f.inode)
                    .unwrap_or(true);
            let idle = now.duration_since(f.last_use) >= idle_close;
            // A file that cannot be opened is kept (and named in STATUS) until it is idle or a
            // write succeeds: forgotten at the next tick, it would vanish from STATUS between
            // the resends of a failure that lasts.
            let forgettable = f.file.is_none() && f.failing.is_none();
            if moved || idle || reopen_all || forgettable {
                if reopen_all && f.file.is_some() {
                    reopened += 1;
                }
                self.close(&channel, day);
            }
        }
        if reopen_all {
            // Files may have been replaced by ones of the same length: scan every tail again.
            self.closed_lengths.clear();
            eprintln!(
                "ziggyd: SIGHUP: closed {reopened} log file(s); each is reopened at its next write"
            );
        }
        self.publish_failing();
    }

    /// Writes out and closes everything; what cannot be written is counted as lost.
    pub fn close_all(&mut self) {
        self.tick(Duration::ZERO);
        let unwritten: u64 = self
            .files
            .values()
            .flat_map(|d| d.values())
            .map(|f| f.pending.entries.len() as u64)
            .sum();
        if unwritten > 0 {
            self.stats
                .events_lost_write
                .fetch_add(unwritten, Ordering::Relaxed);
            eprintln!(
                "ziggyd: stopping with {unwritten} event(s) that could not be written; counted as lost"
            );
        }
    }

    /// Runs until the batch channel closes: write, and tick every flush interval.
    pub fn run(mut self, batches: Receiver<Arc<Batch>>) {
        let (flush_interval, idle_close) = (self.flush_interval, self.idle_close);
        let mut next_tick = Instant::now() + flush_interval;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match batches.recv_timeout(wait) {
                Ok(batch) => {
                    // What else is already queued joins this write and its fsync.
                    let mut group = vec![batch];
                    group.extend(batches.try_iter().take(GROUP_BATCHES - 1));
                    self.write_group(&group);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let hup = self
                .reopen
                .as_ref()
                .is_some_and(|g| g.load(Ordering::Acquire) != self.reopen_seen);
            // Checked after every batch too, so a constant stream cannot postpone the flush.
            if hup || Instant::now() >= next_tick {
                self.tick(idle_close);
                next_tick = Instant::now() + flush_interval;
            }
        }
        self.close_all();
    }
}

#[cfg(test)]
mod tests;
