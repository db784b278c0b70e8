//! The records synced last, kept in memory as they were written, so that forwarding them (the
//! usual case: the upstream keeps up) reads no file. Older records (after a reconnection, a
//! restart, or a long outage) are read from the segments.

use super::{HEADER, SpooledBatch};

/// Past this many bytes the records already confirmed, then the oldest, are let go (down to
/// half of it, so the buffer is not shifted for every sync).
const KEEP_BYTES: usize = 16 << 20;

/// Synced records in the on-disk format, consecutive seqs `first..=last`.
#[derive(Debug, Default)]
pub(super) struct Recent {
    records: Vec<u8>,
    first: u64,
    last: u64,
    /// Where the last read stopped: (seq, byte offset of its record).
    cursor: Option<(u64, usize)>,
}

impl Recent {
    /// Keeps the records just synced, `bytes` holding whole records, the first numbered `first`
    /// and the last `last`. Records not following on the ones kept (a gap) replace them.
    pub(super) fn push(&mut self, bytes: &[u8], first: u64, last: u64, acked: u64) {
        if bytes.is_empty() {
            return;
        }
        if self.records.is_empty() || first != self.last + 1 {
            self.records.clear();
            self.cursor = None;
            self.first = first;
        }
        // A sync after an outage can carry a whole segment: copy only the records that would be
        // kept.
        let (mut at, mut seq) = (0usize, first);
        while bytes.len() - at > KEEP_BYTES / 2 {
            at += HEADER + record_len(&bytes[at..]);
            seq += 1;
        }
        if at > 0 {
            self.records.clear();
            self.cursor = None;
            self.first = seq;
        }
        self.records.extend_from_slice(&bytes[at..]);
        self.last = last;
        if self.records.len() > KEEP_BYTES {
            self.trim(acked);
        }
        if self.records.capacity() > 2 * KEEP_BYTES {
            // Give back what a burst grew.
            self.records.shrink_to(KEEP_BYTES);
        }
    }

    /// Lets go of confirmed records, and of the oldest until half of [`KEEP_BYTES`] is left.
    fn trim(&mut self, acked: u64) {
        let (mut at, mut seq) = (0usize, self.first);
        while at + HEADER <= self.records.len()
            && (seq <= acked || self.records.len() - at > KEEP_BYTES / 2)
        {
            at += HEADER + record_len(&self.records[at..]);
            seq += 1;
        }
        self.records.drain(..at);
        self.first = seq;
        self.cursor = self
            .cursor
            .filter(|&(s, _)| s >= seq)
            .map(|(s, offset)| (s, offset - at));
        if self.records.is_empty() {
            self.cursor = None;
        }
    }

    /// Bytes held (for tests of the bound).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Up to `max_events` / `max_bytes` records from `from` (at least one), if `from` is in
    /// memory; `None` sends the caller to the segments.
    pub(super) fn read(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Option<SpooledBatch> {
        if self.records.is_empty() || from < self.first || from > self.last {
            return None;
        }
        let mut at = match self.cursor {
            Some((seq, offset)) if seq == from => offset,
            _ => {
                let (mut at, mut seq) = (0usize, self.first);
                while seq < from {
                    at += HEADER + record_len(&self.records[at..]);
                    seq += 1;
                }
                at
            }
        };
        let mut payload = Vec::new();
        let mut seq = from;
        while seq <= self.last {
            let len = record_len(&self.records[at..]);
            if seq > from && (seq - from >= max_events as u64 || payload.len() + len > max_bytes) {
                break;
            }
            payload.extend_from_slice(&self.records[at + HEADER..at + HEADER + len]);
            at += HEADER + len;
            seq += 1;
        }
        self.cursor = Some((seq, at));
        Some(SpooledBatch {
            first: from,
            last: seq - 1,
            payload,
        })
    }
}

fn record_len(record: &[u8]) -> usize {
    u32::from_le_bytes(record[0..4].try_into().expect("a record header")) as usize
}
