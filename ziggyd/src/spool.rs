//! The disk spool of a forwarding daemon: every valid event is appended here before it is
//! forwarded, and leaves only once the upstream confirmed it.
//!
//! Layout of `--spool-dir` (mode 0700, its files 0600; refused at start if it is not owned by
//! the daemon's user or is writable by group or others; `spool/dir.rs`): segment files
//! `seg-<first seq, 20 digits>.zsp` of records
//! `len: u32 LE | crc32c(seq ‖ payload): u32 LE | seq: u64 LE | payload` (one event per record);
//! `ledger`, the highest confirmed seq; `sender-id`, this spool's identity towards the upstream
//! (which deduplicates by `(sender id, seq)`) with the `base` of its numbering; `lock`, held
//! (`flock`) by the daemon using the spool and holding its pid, so a second daemon is refused.
//!
//! Writing: [`Spool::append`] numbers a record and keeps it in memory; [`Spool::sync`] writes
//! what is pending to the newest segment (starting a new one past `segment_bytes`), fsyncs, and
//! only then counts it as spooled (records are forwarded only once synced). A failed write or
//! fsync (disk full, file size limit) cuts the segment back to its last synced length and keeps
//! the records pending for the next try; the caller stops taking input while more than
//! [`PENDING_BOUND`] bytes are pending, so nothing is dropped.
//!
//! Reading: [`Spool::read_batch`] serves the records synced last from a copy in memory
//! (`spool/recent.rs`, up to 16 MiB, exactly the bytes the sync wrote), so forwarding an upstream
//! that keeps up reads no file; older records (after a reconnection, a restart, a long outage)
//! are read from the segments.
//!
//! Numbering: local seqs number the records in the segments. The upstream numbers each sender
//! id's events from 1, so a record goes out as `seq − base`. A `(sender id, seq)` pair is never reused: when the spool's
//! position cannot be trusted (ledger missing or unparsable, sender id missing or damaged) or
//! the upstream refuses the numbering, [`Spool::new_epoch`] starts a new sender id whose base
//! is just below the first unconfirmed record, and everything unconfirmed is sent again under it.
//!
//! Recovery (`spool/recover.rs`): on start every segment is scanned; damage (a bad checksum, a
//! length past the end, a flipped bit) is cut out up to the next record that checks out, and
//! counted: places, bytes, and the unconfirmed events lost (the gap in seqs). A segment is deleted once
//! every record in it is confirmed. When the spool outgrows `max_bytes`, the oldest segment is
//! dropped and its unconfirmed events are counted as dropped (the newest events are kept).

mod dir;
mod recent;
mod recover;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use recover::Damage;

const HEADER: usize = 16;
/// Largest record payload accepted when scanning (BSON's 16 MiB, with headroom).
const MAX_RECORD: usize = 48 << 20;
/// Past this many bytes of records waiting for a sync, [`Spool::over_bound`] asks the caller to
/// stop taking input (back-pressure) until a sync gets them to disk.
pub const PENDING_BOUND: usize = 64 << 20;

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of segments and ledger.
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Hard bound on the spool's size on disk.
    pub max_bytes: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    last_seq: u64, // first_seq - 1 while empty
    path: PathBuf,
    /// Bytes written and fsynced; the file may be longer after a failed write.
    bytes: u64,
}

/// A new sender id, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// Why the old identity could not go on.
    pub reason: String,
    /// The id given up (`None` when it was lost or unreadable).
    pub old_id: Option<String>,
    /// The id used from now on.
    pub new_id: String,
    /// Unconfirmed events that will be sent (again) under the new id.
    pub resent: u64,
}

/// What opening the spool found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Records kept.
    pub records: u64,
    /// Damaged places cut out of segments.
    pub corrupt: u64,
    /// Bytes cut out at those places.
    pub bytes_cut: u64,
    /// Unconfirmed events missing across those places (from the gaps in seqs).
    pub lost: u64,
    /// Each damaged place.
    pub damage: Vec<Damage>,
    /// A new sender id started because the spool's position could not be trusted.
    pub epoch: Option<Epoch>,
}

/// Records read from the spool to be sent as one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBatch {
    /// The seq of its first record.
    pub first: u64,
    /// The seq of its last record (the seqs in between are consecutive).
    pub last: u64,
    /// The records' payloads, concatenated.
    pub payload: Vec<u8>,
}

/// Where a read stopped: the record with `seq`, at byte `offset` of the segment named after
/// its first seq `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    segment: u64,
    offset: u64,
}

/// The spool.
pub struct Spool {
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    /// The newest segment, open for writing; `None` until the first sync (a recovered segment
    /// is never appended to).
    file: Option<File>,
    /// Records appended and not yet synced, in the on-disk format.
    pending: Vec<u8>,
    /// Where each pending record ends in `pending` (seqs follow on from `next_seq - len`): a sync
    /// cuts its chunks and counts what it wrote from these, not by reading record headers back
    /// (megabytes appended since the last sync are no longer in the cache).
    pending_ends: Vec<usize>,
    next_seq: u64,
    synced_seq: u64,
    acked_seq: u64,
    /// Events dropped because the spool was full.
    pub dropped: u64,
    identity: dir::Identity,
    /// Where the last `read_batch` stopped, so reading on is not a rescan of the segment.
    cursor: Option<Cursor>,
    /// The records synced last, read from memory rather than from the segments.
    recent: recent::Recent,
    /// Held for the spool's life: the directory's lock.
    _lock: crate::lock::DirLock,
    /// Syncs still to fail (as a full disk would) after their write, for tests.
    #[cfg(test)]
    fail_writes: u32,
}

/// Records are written in chunks of about this size (whole records), so a write that fails part
/// way keeps the chunks before it.
const SYNC_CHUNK_BYTES: usize = 256 << 10;

fn write_chunk(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    file.write_all_at(bytes, at)
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.zsp"))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or creates) the spool: checks and locks the directory, recovers from a crash or
    /// damage, and starts a new sender id if the spool's position cannot be trusted.
    pub fn open(config: SpoolConfig) -> std::io::Result<(Spool, Recovery)> {
        let lock = dir::prepare(&config.dir)?;
        let identity = dir::read_identity(&config.dir.join("sender-id"))?;
        let ledger = match dir::read_ledger(&config.dir.join("ledger"))? {
            // No seq can follow it: a hand-made value, not one this spool wrote.
            dir::Found::Ok(u64::MAX) => dir::Found::Damaged("the ledger is out of range".into()),
            found => found,
        };
        let acked_seq = match ledger {
            dir::Found::Ok(acked) => acked,
            _ => 0,
        };
        let mut recovery = Recovery::default();
        let segments = recover::recover(&config.dir, acked_seq, &mut recovery)?;
        let last_seen = segments
            .back()
            .map_or(acked_seq, |s| s.last_seq.max(acked_seq));
        let fresh = identity == dir::Found::Missing
            && ledger == dir::Found::Missing
            && recovery.segments == 0;
        let mut reasons = Vec::new();
        let old = match identity {
            dir::Found::Ok(identity) => identity,
            dir::Found::Missing => {
                reasons.push("sender-id is missing".to_owned());
                dir::Identity {
                    id: String::new(),
                    base: 0,
                }
            }
            dir::Found::Damaged(why) => {
                reasons.push(why);
                dir::Identity {
                    id: String::new(),
                    base: 0,
                }
            }
        };
        match ledger {
            dir::Found::Ok(_) => {}
            dir::Found::Missing => reasons.push(
                "the ledger is missing, so what the upstream confirmed is unknown".to_owned(),
            ),
            dir::Found::Damaged(why) => reasons.push(why),
        }
        let mut spool = Spool {
            config,
            segments,
            file: None,
            pending: Vec::new(),
            pending_ends: Vec::new(),
            next_seq: last_seen + 1,
            synced_seq: last_seen,
            acked_seq,
            dropped: 0,
            identity: old,
            cursor: None,
            recent: recent::Recent::default(),
            _lock: lock,
            #[cfg(test)]
            fail_writes: 0,
        };
        if fresh || !reasons.is_empty() {
            let epoch = spool.new_epoch(&reasons.join("; "))?;
            recovery.epoch = (!fresh).then_some(epoch);
        }
        Ok((spool, recovery))
    }

    /// Starts a new sender id, numbered from just below the first unconfirmed record, and
    /// persists it (atomically) with the ledger; everything unconfirmed is to be sent again
    /// under it. Used when the old id's numbering cannot be trusted, or the upstream refuses it.
    pub fn new_epoch(&mut self, reason: &str) -> std::io::Result<Epoch> {
        let first_unconfirmed = self
            .segments
            .iter()
            .find(|s| s.last_seq > self.acked_seq)
            .map_or(self.synced_seq + 1, |s| s.first_seq.max(self.acked_seq + 1));
        let mut id = ziggy::new_id();
        while id == self.identity.id {
            id = ziggy::new_id();
        }
        let identity = dir::Identity {
            id,
            base: first_unconfirmed - 1,
        };
        // The identity first: a crash before the ledger is written finds the ledger behind the
        // base, which only means nothing to skip.
        dir::write_identity(&self.config.dir.join("sender-id"), &identity)?;
        let old = std::mem::replace(&mut self.identity, identity);
        self.acked_seq = self.acked_seq.max(self.identity.base);
        dir::write_ledger(&self.config.dir.join("ledger"), self.acked_seq)?;
        Ok(Epoch {
            reason: reason.to_owned(),
            old_id: (!old.id.is_empty()).then_some(old.id),
            new_id: self.identity.id.clone(),
            resent: self.depth(),
        })
    }

    /// This spool's identity towards the upstream.
    pub fn sender_id(&self) -> &str {
        &self.identity.id
    }

    /// The seq the upstream knows the record `local` by, under the current sender id.
    pub fn wire_seq(&self, local: u64) -> u64 {
        local.saturating_sub(self.identity.base)
    }

    /// The local seq of the upstream's `wire` seq; `None` if it is beyond any seq.
    pub fn local_seq(&self, wire: u64) -> Option<u64> {
        self.identity.base.checked_add(wire)
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Appends one event (in memory until the next [`Spool::sync`]); returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> std::io::Result<u64> {
        if payload.len() > MAX_RECORD {
            // Recovery would take such a record for damage; events are far smaller (16 MiB max).
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "record of {} bytes is over the spool's {MAX_RECORD}-byte limit",
                    payload.len()
                ),
            ));
        }
        let seq = self.next_seq;
        self.pending
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.pending
            .extend_from_slice(&checksum(seq, payload).to_le_bytes());
        self.pending.extend_from_slice(&seq.to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.pending_ends.push(self.pending.len());
        self.next_seq += 1;
        Ok(seq)
    }

    /// Events appended and not yet on disk.
    pub fn pending_events(&self) -> u64 {
        self.pending_ends.len() as u64
    }

    /// Bytes appended and not yet on disk.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Whether so much waits for a sync that the caller should stop taking input.
    pub fn over_bound(&self) -> bool {
        self.pending.len() > PENDING_BOUND
    }

    /// Writes what is pending to disk and fsyncs it; records up to the returned seq may be
    /// forwarded. On an error (disk full, ...) the segment is cut back to what was synced before
    /// and the records stay pending: calling again retries.
    pub fn sync(&mut self) -> std::io::Result<u64> {
        while !self.pending.is_empty() {
            let full = self
                .segments
                .back()
                .is_none_or(|s| s.bytes >= self.config.segment_bytes);
            if self.file.is_none() || full {
                self.start_segment()?;
            }
            let seg = self.segments.back_mut().expect("a segment is open");
            let file = self.file.as_ref().expect("a segment is open");
            // Whole records up to the segment's size (at least one), written in chunks of whole
            // records: on a nearly full disk what fits is kept, not all or nothing.
            let mut error = None;
            // The records gathered so far, and where the chunk being gathered starts (record
            // index, byte offset); after the loop, the end of what reached the file whole.
            let (mut records, mut len) = (0usize, 0usize);
            let (mut chunk_records, mut chunk_start) = (0usize, 0usize);
            while records < self.pending_ends.len()
                && (len == 0 || seg.bytes + (len as u64) < self.config.segment_bytes)
            {
                let next = self.pending_ends[records];
                if next - chunk_start > SYNC_CHUNK_BYTES && len > chunk_start {
                    if let Err(e) = write_chunk(
                        file,
                        &self.pending[chunk_start..len],
                        seg.bytes + chunk_start as u64,
                    ) {
                        error = Some(e);
                        break;
                    }
                    (chunk_records, chunk_start) = (records, len);
                }
                len = next;
                records += 1;
            }
            if error.is_none() && len > chunk_start {
                match write_chunk(
                    file,
                    &self.pending[chunk_start..len],
                    seg.bytes + chunk_start as u64,
                ) {
                    Ok(()) => (chunk_records, chunk_start) = (records, len),
                    Err(e) => error = Some(e),
                }
            }
            let (good, events) = (chunk_start, chunk_records);
            // Pending seqs follow on from the newest segment's last.
            debug_assert_eq!(
                seg.last_seq + 1,
                self.next_seq - self.pending_ends.len() as u64
            );
            let last = seg.last_seq + events as u64;
            #[allow(unused_mut)] // the test hook below may turn it into an error
            let mut synced = if good > 0 { file.sync_data() } else { Ok(()) };
            #[cfg(test)]
            {
                synced = synced.and_then(|()| match self.fail_writes {
                    0 => Ok(()),
                    _ => {
                        self.fail_writes -= 1;
                        Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
                    }
                });
            }
            if let Err(e) = synced {
                // Not durable: none of it counts; cut it and retry later.
                let _ = file.set_len(seg.bytes);
                return Err(e);
            }
            if good > 0 {
                // Usually all that was pending: its buffer is handed over, not copied.
                let synced = if good == self.pending.len() {
                    self.pending_ends.clear();
                    std::mem::replace(&mut self.pending, self.recent.take_spare())
                } else {
                    let synced = self.pending[..good].to_vec();
                    self.pending.drain(..good);
                    self.pending_ends.drain(..events);
                    self.pending_ends.iter_mut().for_each(|end| *end -= good);
                    synced
                };
                self.recent.push(synced, seg.last_seq + 1, last);
                seg.bytes += good as u64;
                seg.last_seq = last;
                self.synced_seq = last;
            }
            if let Some(e) = error {
                // A partial record may follow what was kept: cut it, retry the rest later.
                let _ = file.set_len(seg.bytes);
                self.enforce_max()?;
                return Err(e);
            }
            self.enforce_max()?;
        }
        if self.pending.capacity() > 8 << 20 {
            // A long outage grew the buffer; give the memory back once it is drained.
            self.pending.shrink_to(1 << 20);
            self.pending_ends.shrink_to(4096);
        }
        Ok(self.synced_seq)
    }

    fn start_segment(&mut self) -> std::io::Result<()> {
        let first_seq = self.synced_seq + 1;
        let path = segment_path(&self.config.dir, first_seq);
        // A file of that name holds no record numbered from here (recovery found none): reuse.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        self.file = Some(file);
        self.segments.push_back(Segment {
            first_seq,
            last_seq: first_seq - 1,
            path,
            bytes: 0,
        });
        // The new name must survive a crash along with the records fsynced into it.
        sync_dir(&self.config.dir)
    }

    fn enforce_max(&mut self) -> std::io::Result<()> {
        while self.bytes() > self.config.max_bytes && self.segments.len() > 1 {
            let oldest = self.segments.pop_front().expect("more than one segment");
            let unconfirmed_from = oldest.first_seq.max(self.acked_seq + 1);
            if oldest.last_seq >= unconfirmed_from {
                self.dropped += oldest.last_seq - unconfirmed_from + 1;
            }
            self.acked_seq = self.acked_seq.max(oldest.last_seq);
            std::fs::remove_file(&oldest.path)?;
        }
        Ok(())
    }

    /// Highest seq on disk for sure.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// Highest seq confirmed by the upstream.
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }

    /// Records the upstream's confirmation of everything up to local `seq` (never beyond what is
    /// synced); deletes finished segments (the newest too: the next sync starts a new one, so a
    /// spool disk smaller than one segment never fills with confirmed records) and persists the
    /// ledger.
    pub fn ack(&mut self, seq: u64) -> std::io::Result<()> {
        let seq = seq.min(self.synced_seq);
        if seq <= self.acked_seq {
            return Ok(());
        }
        self.acked_seq = seq;
        dir::write_ledger(&self.config.dir.join("ledger"), self.acked_seq)?;
        while self.segments.len() > 1 && self.segments[0].last_seq <= self.acked_seq {
            let seg = self.segments.pop_front().expect("checked");
            std::fs::remove_file(&seg.path)?;
        }
        if self.segments.len() == 1
            && self.segments[0].last_seq <= self.acked_seq
            && self.segments[0].last_seq >= self.segments[0].first_seq
        {
            let seg = self.segments.pop_front().expect("checked");
            self.file = None;
            self.cursor = None;
            std::fs::remove_file(&seg.path)?;
        }
        Ok(())
    }

    /// Unconfirmed events, pending ones included.
    pub fn depth(&self) -> u64 {
        (self.next_seq - 1).saturating_sub(self.acked_seq)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Reads up to `max_events` / `max_bytes` synced records starting at `from`, consecutive
    /// seqs; `None` when there is nothing to read.
    pub fn read_batch(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> std::io::Result<Option<SpooledBatch>> {
        let from = from.max(self.acked_seq + 1);
        if from > self.synced_seq {
            return Ok(None);
        }
        if let Some(batch) = self.recent.read(from, max_events, max_bytes) {
            return Ok(Some(batch));
        }
        let Some(index) = self.segments.iter().rposition(|s| s.first_seq <= from).or(
            if self.segments.is_empty() {
                None
            } else {
                Some(0)
            },
        ) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let (mut first, mut last) = (0u64, 0u64);
        let mut count = 0;
        let resume = self.cursor.filter(|c| c.seq == from);
        let mut stopped_at = None;
        let newest = self.segments.len() - 1;
        'segments: for (i, seg) in self.segments.iter().enumerate().skip(index) {
            // Only synced bytes: past them a failed write may have left a partial record.
            let end = seg.bytes;
            let mut file = BufReader::with_capacity(256 << 10, File::open(&seg.path)?);
            let mut header = [0u8; HEADER];
            let mut offset = 0u64;
            // The seq of the record at `offset`.
            let mut next_here = seg.first_seq;
            if let Some(c) = resume
                && c.segment == seg.first_seq
            {
                file.seek(SeekFrom::Start(c.offset))?;
                offset = c.offset;
                next_here = c.seq;
            }
            while offset + HEADER as u64 <= end {
                let record_start = offset;
                file.read_exact(&mut header)?;
                let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
                let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
                offset += (HEADER + len) as u64;
                next_here = seq + 1;
                if seq > self.synced_seq {
                    stopped_at = Some(Cursor {
                        seq,
                        segment: seg.first_seq,
                        offset: record_start,
                    });
                    break 'segments;
                }
                if seq < from {
                    file.seek_relative(len as i64)?;
                    continue;
                }
                // A batch is a run of consecutive seqs (the upstream numbers its events from the
                // first): a gap, left by damage cut from the middle, starts the next batch.
                if count > 0
                    && (count >= max_events || out.len() + len > max_bytes || seq != last + 1)
                {
                    stopped_at = Some(Cursor {
                        seq,
                        segment: seg.first_seq,
                        offset: record_start,
                    });
                    break 'segments;
                }
                let start = out.len();
                out.resize(start + len, 0);
                file.read_exact(&mut out[start..])?;
                if count == 0 {
                    first = seq;
                }
                last = seq;
                count += 1;
            }
            if i == newest {
                // Read to the end of what is synced: the next call resumes here instead of
                // scanning the segment's headers from its start again (quadratic in its size).
                stopped_at = Some(Cursor {
                    seq: next_here,
                    segment: seg.first_seq,
                    offset,
                });
            }
        }
        self.cursor = stopped_at;
        Ok((count > 0).then_some(SpooledBatch {
            first,
            last,
            payload: out,
        }))
    }
}
