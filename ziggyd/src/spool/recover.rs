//! Opening a spool's segments after a crash or damage. Every segment is scanned; a record that
//! does not check out (length, checksum, sequence order) starts a damaged span, which ends at the
//! next offset holding a plausible record (length within the limit and the file, its payload
//! one BSON document of that length as `ziggy_proto::framing` frames one, seq above the last
//! good one) whose checksum holds. Damaged spans are cut out of the segment (rewritten through a temp file, or
//! truncated when the damage is its tail) and counted, with the unconfirmed events lost read
//! off the gap in sequence numbers across each span.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ziggy_proto::framing::{self, MIN_DOCUMENT_BYTES};

use super::{HEADER, MAX_RECORD, Recovery, Segment, checksum};

/// Bytes read at a time while scanning.
const WINDOW: usize = 1 << 20;

/// One damaged place cut out of the spool when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// First byte cut.
    pub start: u64,
    /// End of the bytes cut (exclusive).
    pub end: u64,
    /// Unconfirmed events missing across the span, from the sequence gap (0 when unknown: the
    /// damage ends the newest segment, so nothing after it tells how many records it held).
    pub lost: u64,
}

/// A stretch of a segment, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Good records `first..=last` (`count` of them) in bytes `start..end`.
    Run {
        first: u64,
        last: u64,
        count: u64,
        start: u64,
        end: u64,
    },
    /// Bytes `start..end` hold no record that checks out.
    Damage { start: u64, end: u64 },
}

/// Reads a segment through a window, so both the record-by-record walk and the byte-by-byte
/// search for the next good record cost one system call per window.
struct Reader {
    file: File,
    total: u64,
    buf: Vec<u8>,
    at: u64,
}

impl Reader {
    /// Bytes `offset..offset + len`, which the caller checked are within the file.
    fn bytes(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        if offset < self.at || offset + len as u64 > self.at + self.buf.len() as u64 {
            let want = (len.max(WINDOW) as u64).min(self.total - offset) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, offset)?;
            self.at = offset;
        }
        let start = (offset - self.at) as usize;
        Ok(&self.buf[start..start + len])
    }

    /// One byte, read without moving the window (a candidate's last byte is far from where the
    /// search is).
    fn byte(&mut self, offset: u64) -> std::io::Result<u8> {
        if offset >= self.at && offset < self.at + self.buf.len() as u64 {
            return Ok(self.buf[(offset - self.at) as usize]);
        }
        let mut b = [0u8];
        self.file.read_exact_at(&mut b, offset)?;
        Ok(b[0])
    }

    /// The record at `offset` if it checks out, as `(seq, payload length)`; `after` is the last
    /// good seq before it. `strict` adds the BSON plausibility checks used when resynchronising,
    /// before the checksum is computed.
    fn record(
        &mut self,
        offset: u64,
        after: Option<u64>,
        strict: bool,
    ) -> std::io::Result<Option<(u64, usize)>> {
        if offset + HEADER as u64 > self.total {
            return Ok(None);
        }
        let h = self.bytes(offset, HEADER)?;
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if len > MAX_RECORD || offset + (HEADER + len) as u64 > self.total {
            return Ok(None);
        }
        // Seqs start at 1, and u64::MAX has no successor to number the next event with.
        if seq == 0 || seq == u64::MAX || after.is_some_and(|a| seq <= a) {
            return Ok(None);
        }
        if strict {
            // The payload is one document: its length prefix is the record's, and it ends with
            // a NUL (read alone, so the search's window stays where it is).
            if len < MIN_DOCUMENT_BYTES {
                return Ok(None);
            }
            let prefix = self.bytes(offset + HEADER as u64, 4)?;
            let declared = framing::declared_len(prefix.try_into().expect("4 bytes"));
            if declared != Some(len) || self.byte(offset + (HEADER + len) as u64 - 1)? != 0 {
                return Ok(None);
            }
        }
        let payload = self.bytes(offset + HEADER as u64, len)?;
        if checksum(seq, payload) != crc {
            return Ok(None);
        }
        Ok(Some((seq, len)))
    }
}

/// The first offset from `from` holding a plausible record that checks out, after `last`.
fn resync(reader: &mut Reader, from: u64, last: Option<u64>) -> std::io::Result<Option<u64>> {
    // Header and the payload's BSON length: what the cheap filter looks at.
    const PEEK: usize = HEADER + 4;
    let total = reader.total;
    let mut next = from;
    while next + (HEADER + MIN_DOCUMENT_BYTES) as u64 <= total {
        // A window at a time: most offsets fail on the length field alone, which is checked on
        // the window's bytes; the rest go through the full check.
        let avail = (WINDOW as u64).min(total - next) as usize;
        let window = reader.bytes(next, avail)?;
        let candidates: Vec<usize> = window
            .windows(PEEK)
            .enumerate()
            .filter(|(_, w)| {
                let len = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
                let prefix = [w[HEADER], w[HEADER + 1], w[HEADER + 2], w[HEADER + 3]];
                len <= MAX_RECORD && framing::declared_len(prefix) == Some(len)
            })
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            if reader.record(next + i as u64, last, true)?.is_some() {
                return Ok(Some(next + i as u64));
            }
        }
        // Offsets too close to the window's end to peek at are examined with the next window.
        let examined = avail.saturating_sub(PEEK - 1).max(1) as u64;
        if avail < WINDOW {
            break; // the file's end: nothing after it to resume at
        }
        next += examined;
    }
    Ok(None)
}

/// Splits a segment into runs of good records and damaged spans.
fn scan(path: &Path) -> std::io::Result<Vec<Piece>> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut reader = Reader {
        file,
        total,
        buf: Vec::new(),
        at: 0,
    };
    let mut pieces = Vec::new();
    // The open run: (first, last, count, start).
    let mut run: Option<(u64, u64, u64, u64)> = None;
    let mut offset = 0u64;
    let mut last = None;
    while offset < total {
        if let Some((seq, len)) = reader.record(offset, last, false)? {
            run = Some(match run {
                Some((first, _, count, start)) => (first, seq, count + 1, start),
                None => (seq, seq, 1, offset),
            });
            last = Some(seq);
            offset += (HEADER + len) as u64;
            continue;
        }
        if let Some((first, last, count, start)) = run.take() {
            pieces.push(Piece::Run {
                first,
                last,
                count,
                start,
                end: offset,
            });
        }
        let resumed = resync(&mut reader, offset + 1, last)?;
        pieces.push(Piece::Damage {
            start: offset,
            end: resumed.unwrap_or(total),
        });
        match resumed {
            Some(at) => offset = at,
            None => break,
        }
    }
    if let Some((first, last, count, start)) = run {
        pieces.push(Piece::Run {
            first,
            last,
            count,
            start,
            end: offset,
        });
    }
    Ok(pieces)
}

/// The first seq a segment was named after (`seg-<first seq>.zsp`).
fn named_first(path: &Path) -> Option<u64> {
    path.file_stem()?
        .to_str()?
        .strip_prefix("seg-")?
        .parse()
        .ok()
}

/// Scans every segment of `dir`, cuts damage out of those still needed, deletes those fully
/// confirmed (up to `acked`) or empty, and returns the rest, oldest first.
pub(super) fn recover(
    dir: &Path,
    acked: u64,
    recovery: &mut Recovery,
) -> std::io::Result<VecDeque<Segment>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("zsp") => names.push(path),
            // A crash mid-rewrite or mid-state-write: the originals are whole.
            Some("tmp") => std::fs::remove_file(&path)?,
            _ => {}
        }
    }
    names.sort();
    let mut segments = VecDeque::new();
    // The seq that follows the last good record (or starts the current segment).
    let mut expect = 1u64;
    // A damage entry whose events lost are read off the next good record.
    let mut open_damage: Option<usize> = None;
    for path in names {
        recovery.segments += 1;
        if open_damage.is_none() {
            expect = named_first(&path).unwrap_or(expect);
        }
        let pieces = scan(&path)?;
        let (mut first, mut last, mut records, mut bytes, mut damaged) = (None, 0, 0, 0, false);
        for piece in &pieces {
            match *piece {
                Piece::Damage { start, end } => {
                    damaged = true;
                    recovery.corrupt += 1;
                    recovery.bytes_cut += end - start;
                    recovery.damage.push(Damage {
                        segment: path.clone(),
                        start,
                        end,
                        lost: 0,
                    });
                    open_damage = Some(recovery.damage.len() - 1);
                }
                Piece::Run {
                    first: f,
                    last: l,
                    count,
                    start,
                    end,
                } => {
                    if let Some(i) = open_damage.take() {
                        let lost = f.saturating_sub(expect.max(acked.saturating_add(1)));
                        recovery.damage[i].lost = lost;
                        recovery.lost += lost;
                    }
                    expect = l + 1;
                    first.get_or_insert(f);
                    last = l;
                    records += count;
                    bytes += end - start;
                }
            }
        }
        let Some(first) = first.filter(|_| last > acked) else {
            std::fs::remove_file(&path)?;
            continue;
        };
        if damaged {
            cut(&path, &pieces)?;
        }
        recovery.records += records;
        segments.push_back(Segment {
            first_seq: first,
            last_seq: last,
            path,
            bytes,
        });
    }
    Ok(segments)
}

/// Leaves only the runs of good records in the segment: a damaged tail is truncated; damage
/// before good records is cut out by writing the runs to a temp file, fsynced, renamed over the
/// segment.
fn cut(path: &Path, pieces: &[Piece]) -> std::io::Result<()> {
    let runs: Vec<(u64, u64)> = pieces
        .iter()
        .filter_map(|p| match *p {
            Piece::Run { start, end, .. } => Some((start, end)),
            Piece::Damage { .. } => None,
        })
        .collect();
    let only_tail = match pieces {
        [rest @ .., Piece::Damage { .. }] => rest.iter().all(|p| matches!(p, Piece::Run { .. })),
        _ => false,
    };
    if only_tail {
        let end = runs.last().map_or(0, |&(_, end)| end);
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(end)?;
        return file.sync_all();
    }
    let tmp = path.with_extension("tmp");
    {
        let mut src = File::open(path)?;
        let mut dst = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        for (start, end) in runs {
            src.seek(SeekFrom::Start(start))?;
            std::io::copy(&mut (&mut src).take(end - start), &mut dst)?;
        }
        dst.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
