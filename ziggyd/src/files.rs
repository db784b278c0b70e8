//! The file writer: `DIR/YYYYMMDD/<channel>.YYYYMMDD.bson`, bytes as received, appended.
//!
//! Files are flushed at least every `flush_interval` even under constant load, closed when idle,
//! and reopened when logrotate (or anyone) moved or deleted them: each tick compares the inode at
//! the path with the one written to.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::batch::{Batch, ForwardMark};
use crate::ratelog::RateLimitedLog;
use crate::stats::DaemonStats;

/// Batches written together before one fsync of the files they touched (group commit).
const GROUP_BATCHES: usize = 64;

struct OpenFile {
    path: PathBuf,
    writer: BufWriter<File>,
    inode: u64,
    last_write: Instant,
    /// Written since the last fsync.
    dirty: bool,
}

/// Writes batches to per-channel, per-day files under one directory.
pub struct FileWriter {
    dir: PathBuf,
    files: HashMap<String, HashMap<i64, OpenFile>>,
    stats: Arc<DaemonStats>,
    log: RateLimitedLog,
    acks: Option<Sender<ForwardMark>>,
    /// Lengths of the files this writer closed: reopening one of that length skips the scan for
    /// a torn tail (nobody else writes them).
    closed_lengths: HashMap<PathBuf, u64>,
}

impl FileWriter {
    /// A writer under `dir` (created if missing).
    pub fn new(dir: &Path, stats: Arc<DaemonStats>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileWriter {
            dir: dir.to_owned(),
            files: HashMap::new(),
            stats,
            log: RateLimitedLog::new(Duration::from_secs(10)),
            acks: None,
            closed_lengths: HashMap::new(),
        })
    }

    fn open(
        dir: &Path,
        channel: &str,
        day: i64,
        closed_lengths: &HashMap<PathBuf, u64>,
        stats: &DaemonStats,
    ) -> std::io::Result<OpenFile> {
        let day_name = ziggy::channel::utc_day(day as f64 * 86_400.0);
        let path = ziggy::channel::log_file_path(dir, channel, &day_name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len > 0 && closed_lengths.get(&path) != Some(&len) {
            let cut = crate::tail::cut_torn_tail(&path)?;
            if cut > 0 {
                stats.torn_tails_cut.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "ziggyd: {}: cut {cut} bytes of a partial event at its end (a crash during a write)",
                    path.display()
                );
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let inode = file.metadata()?.ino();
        Ok(OpenFile {
            path,
            writer: BufWriter::with_capacity(256 << 10, file),
            inode,
            last_write: Instant::now(),
            dirty: false,
        })
    }

    /// Where to report forwarded batches once they are durable.
    pub fn with_acks(mut self, acks: Sender<ForwardMark>) -> Self {
        self.acks = Some(acks);
        self
    }

    /// Flushes and fsyncs every file written since the last sync.
    pub fn sync_dirty(&mut self) -> bool {
        let mut ok = true;
        for by_day in self.files.values_mut() {
            for f in by_day.values_mut().filter(|f| f.dirty) {
                if f.writer
                    .flush()
                    .and_then(|()| f.writer.get_ref().sync_data())
                    .is_err()
                {
                    ok = false;
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    f.dirty = false;
                }
            }
        }
        ok
    }

    /// Appends every event of the batch to its file; a forwarded batch is fsynced, then confirmed.
    pub fn write(&mut self, batch: &Batch) {
        self.write_group(&[batch]);
    }

    /// Appends several batches, then makes the forwarded ones durable with one fsync per file
    /// (group commit) and confirms them.
    pub fn write_group<B: std::ops::Deref<Target = Batch>>(&mut self, batches: &[B]) {
        for batch in batches {
            self.append(batch);
        }
        let mut marks = batches.iter().filter_map(|b| b.durable.as_ref()).peekable();
        // Confirm only what is durable: a failed fsync leaves the batches unconfirmed, so the
        // senders resend them.
        if marks.peek().is_some()
            && self.sync_dirty()
            && let Some(acks) = &self.acks
        {
            for mark in marks {
                let _ = acks.send(mark.clone());
            }
        }
    }

    fn append(&mut self, batch: &Batch) {
        let now = Instant::now();
        for (channel, day, bytes) in batch.iter() {
            let by_day = match self.files.get_mut(channel) {
                Some(m) => m,
                None => self.files.entry(channel.to_owned()).or_default(),
            };
            let file = match by_day.get_mut(&day) {
                Some(f) => f,
                None => {
                    match Self::open(&self.dir, channel, day, &self.closed_lengths, &self.stats) {
                        Ok(f) => {
                            self.stats.files_open.fetch_add(1, Ordering::Relaxed);
                            by_day.entry(day).or_insert(f)
                        }
                        Err(e) => {
                            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                            self.log.log("open", || {
                                format!("cannot open the file for {channel}: {e}")
                            });
                            continue;
                        }
                    }
                }
            };
            match file.writer.write_all(bytes) {
                Ok(()) => {
                    file.last_write = now;
                    file.dirty = true;
                    self.stats.events_written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    let path = file.path.display().to_string();
                    self.log
                        .log("write", || format!("cannot write {path}: {e}"));
                    // Part of the event may have reached the file: close it, so the next write
                    // reopens it and cuts that part first.
                    if by_day.remove(&day).is_some() {
                        self.stats.files_open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Flushes every file, closes idle ones, and reopens files moved or deleted under us.
    pub fn tick(&mut self, idle_close: Duration) {
        let now = Instant::now();
        let mut closed = 0;
        let closed_lengths = &mut self.closed_lengths;
        for by_day in self.files.values_mut() {
            by_day.retain(|_, f| {
                if let Err(e) = f.writer.flush() {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    let path = f.path.display().to_string();
                    self.log
                        .log("flush", || format!("cannot flush {path}: {e}"));
                }
                let moved = std::fs::metadata(&f.path)
                    .map(|m| m.ino() != f.inode)
                    .unwrap_or(true);
                let keep = !moved && now.duration_since(f.last_write) < idle_close;
                if !keep {
                    closed += 1;
                    if let (false, Ok(meta)) = (moved, f.writer.get_ref().metadata()) {
                        closed_lengths.insert(f.path.clone(), meta.len());
                    }
                }
                keep
            });
        }
        self.files.retain(|_, m| !m.is_empty());
        self.stats.files_open.fetch_sub(closed, Ordering::Relaxed);
    }

    /// Flushes and closes everything.
    pub fn close_all(&mut self) {
        self.tick(Duration::ZERO);
    }

    /// Runs until the batch channel closes: write, and tick every `flush_interval`.
    pub fn run(
        mut self,
        batches: Receiver<Arc<Batch>>,
        flush_interval: Duration,
        idle_close: Duration,
    ) {
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
            // Checked after every batch too, so a constant stream cannot postpone the flush.
            if Instant::now() >= next_tick {
                self.tick(idle_close);
                next_tick = Instant::now() + flush_interval;
            }
        }
        self.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_left_by_a_crash_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(DaemonStats::default());
        let event = |n: i32| {
            bson::doc! { "id": "0123456789abcdef0123456789abcdef", "type": "request", "host": "h",
            "pid": 1, "start": 1.7e9, "end": 1.7e9, "body": { "n": n } }
            .to_vec()
            .unwrap()
        };
        let batch = |n: i32| {
            let frame = event(n);
            let day = crate::batch::day_number(1.7e9);
            Batch {
                events: vec![("request".into(), day, 0..frame.len())],
                frame,
                durable: None,
            }
        };
        let mut writer = FileWriter::new(dir.path(), stats.clone()).unwrap();
        writer.write(&batch(1));
        writer.close_all();
        drop(writer);
        // A crash in the middle of writing the second event.
        let path = ziggy::channel::log_file_path(dir.path(), "request", "20231114");
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(&event(2)[..40]);
        std::fs::write(&path, &torn).unwrap();
        // A new process appends the third.
        let mut writer = FileWriter::new(dir.path(), stats.clone()).unwrap();
        writer.write(&batch(3));
        writer.close_all();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, [event(1), event(3)].concat());
        assert_eq!(stats.torn_tails_cut.load(Ordering::Relaxed), 1);
    }
}
