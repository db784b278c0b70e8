//! The records synced last, kept in memory as they were written, so that forwarding them (the
//! usual case: the upstream keeps up) reads no file. Older records (after a reconnection, a
//! restart, or a long outage) are read from the segments.
//!
//! Each sync's records stay in the buffer they were gathered in (the spool hands it over instead
//! of copying it), so keeping them costs nothing per event, and letting them go is dropping the
//! oldest buffers.

use std::collections::VecDeque;

use super::{HEADER, SpooledBatch};

/// At most this many bytes are held (the newest whole syncs).
const KEEP_BYTES: usize = 16 << 20;

/// The records of one sync, consecutive seqs `first..=last`, in the on-disk format.
#[derive(Debug)]
struct Chunk {
    records: Vec<u8>,
    first: u64,
    last: u64,
}

/// The chunks kept, oldest first, their seqs following on from one to the next.
#[derive(Debug, Default)]
pub(super) struct Recent {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    /// Where the last read stopped: (seq, the `first` of its chunk, byte offset in the chunk).
    cursor: Option<(u64, u64, usize)>,
    /// A let-go buffer, for the spool's next pending records.
    spare: Option<Vec<u8>>,
}

impl Recent {
    /// Keeps the records just synced: `records` holds whole records numbered `first..=last`.
    /// Records that do not follow on the ones kept (a gap) replace them.
    pub(super) fn push(&mut self, records: Vec<u8>, first: u64, last: u64) {
        // Counted by capacity: that is the memory held.
        if records.is_empty() || records.capacity() > KEEP_BYTES {
            // Nothing, or one sync larger than what is kept (after an outage): from the segments.
            self.clear();
            return;
        }
        if self.chunks.back().is_some_and(|c| c.last + 1 != first) {
            self.clear();
        }
        self.bytes += records.capacity();
        self.chunks.push_back(Chunk {
            records,
            first,
            last,
        });
        while self.bytes > KEEP_BYTES {
            let oldest = self.chunks.pop_front().expect("bytes are in chunks");
            self.bytes -= oldest.records.capacity();
            self.keep_spare(oldest.records);
        }
    }

    fn clear(&mut self) {
        while let Some(chunk) = self.chunks.pop_front() {
            self.keep_spare(chunk.records);
        }
        self.bytes = 0;
        self.cursor = None;
    }

    fn keep_spare(&mut self, mut buffer: Vec<u8>) {
        if self.spare.is_none() && buffer.capacity() <= KEEP_BYTES {
            buffer.clear();
            self.spare = Some(buffer);
        }
    }

    /// Bytes held (for tests of the bound).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.bytes
    }

    /// An empty buffer for the next records to sync: one let go of, if any.
    pub(super) fn take_spare(&mut self) -> Vec<u8> {
        self.spare.take().unwrap_or_default()
    }

    /// Up to `max_events` / `max_bytes` records from `from` (at least one), if `from` is in
    /// memory; `None` sends the caller to the segments.
    pub(super) fn read(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Option<SpooledBatch> {
        let (first, last) = (self.chunks.front()?.first, self.chunks.back()?.last);
        if from < first || from > last {
            return None;
        }
        let mut index = self.chunks.partition_point(|c| c.last < from);
        let mut at = match self.cursor {
            Some((seq, chunk, offset)) if seq == from && chunk == self.chunks[index].first => {
                offset
            }
            _ => {
                let chunk = &self.chunks[index];
                let mut at = 0;
                for _ in chunk.first..from {
                    at += HEADER + record_len(&chunk.records[at..]);
                }
                at
            }
        };
        let mut payload = Vec::new();
        let mut seq = from;
        'chunks: while let Some(chunk) = self.chunks.get(index) {
            while at < chunk.records.len() {
                let len = record_len(&chunk.records[at..]);
                if seq > from
                    && (seq - from >= max_events as u64 || payload.len() + len > max_bytes)
                {
                    break 'chunks;
                }
                payload.extend_from_slice(&chunk.records[at + HEADER..at + HEADER + len]);
                at += HEADER + len;
                seq += 1;
            }
            index += 1;
            at = 0;
        }
        self.cursor = self.chunks.get(index).map(|c| (seq, c.first, at));
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
