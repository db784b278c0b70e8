//! The disk spool of a forwarding daemon: every valid event is appended here before it is
//! forwarded, and leaves only once the upstream confirmed it.
//!
//! Layout of `--spool-dir`: segment files `seg-<first seq, 20 digits>.zsp` of records
//! `len: u32 LE | crc32c(seq ‖ payload): u32 LE | seq: u64 LE | payload` (one event per record),
//! a `ledger` holding the highest confirmed seq, and `sender-id`, this spool's identity towards the
//! upstream (which deduplicates by `(sender-id, seq)`). A segment is deleted once every record in
//! it is confirmed. On start, every segment is scanned: a record with a bad checksum or a length
//! running past the end (a crash mid-write, or a segment truncated by hand) ends that segment; it
//! is counted as corruption, the segment is cut there, and what follows in later segments is kept.
//! When the spool outgrows `max_bytes`, the oldest segment is dropped and its unconfirmed events
//! are counted as dropped (collection is never refused: the newest events are kept).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::ledger;

const HEADER: usize = 16;
/// Largest record payload accepted when scanning (BSON's 16 MiB, with headroom).
const MAX_RECORD: usize = 48 << 20;

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
    bytes: u64,
}

/// What opening the spool found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Records kept.
    pub records: u64,
    /// Places where a segment was corrupt or truncated (each cut at that point).
    pub corrupt: u64,
    /// Bytes cut off at those places.
    pub bytes_cut: u64,
}

/// The spool.
pub struct Spool {
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    next_seq: u64,
    synced_seq: u64,
    /// Bytes of the newest segment that are in its file (flushed), as of the last sync; what
    /// follows may still sit in the writer's buffer.
    synced_bytes: u64,
    acked_seq: u64,
    /// Events dropped because the spool was full.
    pub dropped: u64,
    sender_id: String,
    /// Where the last `read_batch` stopped: `(next seq, segment's first seq, byte offset)`, so
    /// reading on is not a rescan of the segment.
    cursor: Option<(u64, u64, u64)>,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.zsp"))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// What scanning a segment found.
struct Scan {
    /// Valid records' `(seq, offset)`.
    records: Vec<(u64, u64)>,
    /// Where validity ends.
    valid_end: u64,
    /// The file's length.
    total: u64,
}

/// Scans a segment up to its first invalid record.
fn scan(path: &Path) -> std::io::Result<Scan> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let total = std::fs::metadata(path)?.len();
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    while offset + HEADER as u64 <= total {
        file.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
        let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
        if len > MAX_RECORD || offset + (HEADER + len) as u64 > total {
            break;
        }
        payload.resize(len, 0);
        file.read_exact(&mut payload)?;
        if checksum(seq, &payload) != crc || records.last().is_some_and(|&(s, _)| seq <= s) {
            break;
        }
        records.push((seq, offset));
        offset += (HEADER + len) as u64;
    }
    Ok(Scan {
        records,
        valid_end: offset,
        total,
    })
}

impl Spool {
    /// Opens (or creates) the spool, recovering from a crash.
    pub fn open(config: SpoolConfig) -> std::io::Result<(Spool, Recovery)> {
        std::fs::create_dir_all(&config.dir)?;
        let sender_path = config.dir.join("sender-id");
        let sender_id = match ledger::read(&sender_path)? {
            Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = ziggy::new_id();
                ledger::write_atomic(&sender_path, id.as_bytes())?;
                id
            }
        };
        let acked_seq = ledger::read(&config.dir.join("ledger"))?
            .and_then(|s| s.trim().strip_prefix("acked ").and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&config.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "zsp"))
            .collect();
        names.sort();
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        let mut last_seen = acked_seq;
        for path in names {
            let Scan {
                records,
                valid_end,
                total,
            } = scan(&path)?;
            recovery.segments += 1;
            if valid_end < total {
                recovery.corrupt += 1;
                recovery.bytes_cut += total - valid_end;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(valid_end)?;
            }
            let (Some(&(first, _)), Some(&(last, _))) = (records.first(), records.last()) else {
                std::fs::remove_file(&path)?;
                continue;
            };
            if last <= acked_seq {
                std::fs::remove_file(&path)?;
                continue;
            }
            recovery.records += records.len() as u64;
            last_seen = last_seen.max(last);
            segments.push_back(Segment {
                first_seq: first,
                last_seq: last,
                path,
                bytes: valid_end,
            });
        }
        let next_seq = last_seen + 1;
        let synced_bytes = segments.back().map_or(0, |s| s.bytes);
        let spool = Spool {
            config,
            segments,
            writer: None,
            next_seq,
            synced_seq: next_seq - 1,
            synced_bytes,
            acked_seq,
            dropped: 0,
            sender_id,
            cursor: None,
        };
        Ok((spool, recovery))
    }

    /// This spool's identity towards the upstream.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }

    /// Appends one event; returns its sequence number.
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
        let need_new = match self.segments.back() {
            _ if self.writer.is_none() => true,
            Some(seg) => seg.bytes >= self.config.segment_bytes,
            None => true,
        };
        if need_new {
            self.start_segment()?;
        }
        let seq = self.next_seq;
        let writer = self.writer.as_mut().expect("a segment is open");
        writer.write_all(&(payload.len() as u32).to_le_bytes())?;
        writer.write_all(&checksum(seq, payload).to_le_bytes())?;
        writer.write_all(&seq.to_le_bytes())?;
        writer.write_all(payload)?;
        let seg = self.segments.back_mut().expect("a segment is open");
        seg.last_seq = seq;
        seg.bytes += (HEADER + payload.len()) as u64;
        self.next_seq += 1;
        self.enforce_max()?;
        Ok(seq)
    }

    fn start_segment(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        let path = segment_path(&self.config.dir, self.next_seq);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let bytes = file.metadata()?.len();
        self.synced_bytes = bytes;
        self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            last_seq: self.next_seq - 1,
            path,
            bytes,
        });
        Ok(())
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

    /// Flushes and fsyncs what was appended; records up to the returned seq may be forwarded.
    pub fn sync(&mut self) -> std::io::Result<u64> {
        if let Some(w) = &mut self.writer {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        self.synced_seq = self.next_seq - 1;
        self.synced_bytes = self.segments.back().map_or(0, |s| s.bytes);
        Ok(self.synced_seq)
    }

    /// Highest seq on disk for sure.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// Highest seq confirmed by the upstream.
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }

    /// Records the upstream's confirmation of everything up to `seq`; deletes finished segments
    /// and persists the ledger.
    pub fn ack(&mut self, seq: u64) -> std::io::Result<()> {
        if seq <= self.acked_seq {
            return Ok(());
        }
        self.acked_seq = seq.min(self.synced_seq);
        ledger::write_atomic(
            &self.config.dir.join("ledger"),
            format!("acked {}\n", self.acked_seq).as_bytes(),
        )?;
        while self.segments.len() > 1 && self.segments[0].last_seq <= self.acked_seq {
            let seg = self.segments.pop_front().expect("checked");
            std::fs::remove_file(&seg.path)?;
        }
        Ok(())
    }

    /// Unconfirmed events.
    pub fn depth(&self) -> u64 {
        (self.next_seq - 1).saturating_sub(self.acked_seq)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Reads up to `max_events` / `max_bytes` synced records starting at `from`, as
    /// `(first seq, last seq, concatenated payloads)`; `None` when there is nothing to read.
    pub fn read_batch(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> std::io::Result<Option<(u64, u64, Vec<u8>)>> {
        let from = from.max(self.acked_seq + 1);
        if from > self.synced_seq {
            return Ok(None);
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
        let resume = self.cursor.filter(|&(seq, _, _)| seq == from);
        let mut stopped_at = None;
        let newest = self.segments.len() - 1;
        'segments: for (i, seg) in self.segments.iter().enumerate().skip(index) {
            // Older segments were flushed when the next one started.
            let end = if i == newest {
                self.synced_bytes
            } else {
                seg.bytes
            };
            let mut file = BufReader::with_capacity(256 << 10, File::open(&seg.path)?);
            let mut header = [0u8; HEADER];
            let mut offset = 0u64;
            // The seq of the record at `offset`.
            let mut next_here = seg.first_seq;
            if let Some((seq, seg_first, at)) = resume {
                if seg_first == seg.first_seq {
                    file.seek(SeekFrom::Start(at))?;
                    offset = at;
                    next_here = seq;
                }
            }
            while offset + HEADER as u64 <= end {
                let record_start = offset;
                file.read_exact(&mut header)?;
                let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
                let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
                offset += (HEADER + len) as u64;
                next_here = seq + 1;
                if seq > self.synced_seq {
                    stopped_at = Some((seq, seg.first_seq, record_start));
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
                    stopped_at = Some((seq, seg.first_seq, record_start));
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
                stopped_at = Some((next_here, seg.first_seq, offset));
            }
        }
        self.cursor = stopped_at;
        Ok((count > 0).then_some((first, last, out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_owned(),
            segment_bytes: 1000,
            max_bytes: 1 << 30,
        }
    }

    #[test]
    fn records_still_in_the_write_buffer_end_a_read_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.segment_bytes = 1 << 20;
        let (mut spool, _) = Spool::open(config).unwrap();
        for i in 0..5u8 {
            spool.append(&[i; 40]).unwrap();
        }
        spool.sync().unwrap();
        // Appended after the sync: in the BufWriter, not yet in the file.
        for i in 5..10u8 {
            spool.append(&[i; 40]).unwrap();
        }
        let (first, last, bytes) = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last, bytes.len()), (1, 5, 200));
        spool.sync().unwrap();
        let (first, last, _) = spool.read_batch(6, 100, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last), (6, 10));
    }

    #[test]
    fn append_sync_read_ack_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..100u32 {
            spool.append(&[i as u8; 50]).unwrap();
        }
        assert_eq!(
            spool.read_batch(1, 10, 1 << 20).unwrap(),
            None,
            "unsynced records are not forwarded"
        );
        assert_eq!(spool.sync().unwrap(), 100);
        let (first, last, bytes) = spool.read_batch(1, 10, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last, bytes.len()), (1, 10, 500));
        spool.ack(60).unwrap();
        assert_eq!(spool.depth(), 40);
        let (first, _, bytes) = spool.read_batch(1, 1000, 1 << 20).unwrap().unwrap();
        assert_eq!((first, bytes[0]), (61, 60));
        let id = spool.sender_id().to_owned();
        drop(spool);
        let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.sender_id(), id);
        assert_eq!(spool.acked_seq(), 60);
        assert_eq!(rec.corrupt, 0);
        assert_eq!(spool.read_batch(1, 1000, 1 << 20).unwrap().unwrap().0, 61);
    }

    #[test]
    fn truncated_segment_is_cut_and_later_segments_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(config(dir.path())).unwrap();
        for i in 0..100u32 {
            spool.append(&[i as u8; 50]).unwrap();
        }
        spool.sync().unwrap();
        drop(spool);
        let mut segs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "zsp"))
            .collect();
        segs.sort();
        assert!(segs.len() > 3);
        let len = std::fs::metadata(&segs[1]).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segs[1])
            .unwrap()
            .set_len(len - 30)
            .unwrap();
        let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
        assert_eq!(rec.corrupt, 1);
        assert_eq!(rec.records, 99);
        // The cut record leaves a gap; batches stop at it and the next one resumes after it.
        let (mut from, mut records, mut batches) = (1, 0, Vec::new());
        while let Some((first, last, bytes)) = spool.read_batch(from, 1000, 1 << 20).unwrap() {
            assert_eq!(bytes.len() as u64, (last - first + 1) * 50);
            records += last - first + 1;
            batches.push((first, last));
            from = last + 1;
        }
        assert_eq!(records, 99);
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[1].1, 100);
    }

    #[test]
    fn record_over_the_size_limit_is_refused_and_treated_as_damage_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(SpoolConfig {
            segment_bytes: 1 << 30,
            ..config(dir.path())
        })
        .unwrap();
        assert!(spool.append(&vec![0; MAX_RECORD + 1]).is_err());
        for i in 0..3u8 {
            spool.append(&[i; 50]).unwrap();
        }
        spool.sync().unwrap();
        drop(spool);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "zsp"))
            .unwrap();
        // A header claiming a record over the limit, with that many bytes after it (sparse).
        let mut file = OpenOptions::new().append(true).open(&seg).unwrap();
        let mut header = Vec::new();
        header.extend_from_slice(&((MAX_RECORD + 1) as u32).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&4u64.to_le_bytes());
        file.write_all(&header).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len + MAX_RECORD as u64 + 2).unwrap();
        drop(file);
        let (mut spool, rec) = Spool::open(config(dir.path())).unwrap();
        assert_eq!((rec.corrupt, rec.records), (1, 3));
        let (first, last, _) = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last), (1, 3));
        assert!(std::fs::metadata(&seg).unwrap().len() < 1000, "damage cut");
    }

    #[test]
    fn a_gap_in_seqs_ends_a_batch() {
        // Found by `cargo fuzz run spool`: a record cut out of the middle of a segment.
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for seq in [1u64, 2, 4] {
            let payload = [seq as u8; 20];
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&checksum(seq, &payload).to_le_bytes());
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        std::fs::write(segment_path(dir.path(), 1), bytes).unwrap();
        let (mut spool, recovery) = Spool::open(config(dir.path())).unwrap();
        assert_eq!(recovery.records, 3);
        let (first, last, bytes) = spool.read_batch(1, 100, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last, bytes.len()), (1, 2, 40));
        let (first, last, bytes) = spool.read_batch(3, 100, 1 << 20).unwrap().unwrap();
        assert_eq!((first, last, bytes.len()), (4, 4, 20));
    }

    #[test]
    fn full_spool_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(SpoolConfig {
            max_bytes: 3000,
            ..config(dir.path())
        })
        .unwrap();
        for i in 0..200u32 {
            spool.append(&[i as u8; 50]).unwrap();
        }
        assert!(spool.bytes() <= 3000 + 1100);
        assert!(spool.dropped > 100);
        assert_eq!(spool.depth() + spool.dropped, 200);
    }
}
