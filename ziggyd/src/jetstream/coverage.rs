//! What a writer has written of one partition, by sender and seq, kept on disk beside the files so
//! a repeat (a publisher's resend cut differently, a redelivery after a crash) is not written
//! twice.
//!
//! A message covers its batch's whole seq range for its partition, so a sender's coverage is a
//! few ranges (usually one, more while a window of batches arrives out of order). Bounded: at most
//! [`MAX_RANGES`] ranges per sender (the lowest are forgotten first) and [`MAX_SENDERS`] senders
//! (the least recently seen forgotten first). Forgetting can only let a very old repeat be written
//! again, never skip an event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bson::{Bson, Document, doc};
use ziggy_proto::forward::valid_sender_id;

/// Most ranges kept per sender.
pub const MAX_RANGES: usize = 64;
/// Most senders kept per partition.
pub const MAX_SENDERS: usize = 10_000;

#[derive(Debug, Default, Clone, PartialEq)]
struct Sender {
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    ranges: Vec<(u64, u64)>,
    last_used: u64,
}

impl Sender {
    fn covers(&self, seq: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < seq);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= seq)
    }

    fn cover(&mut self, lo: u64, hi: u64) {
        let mut merged = (lo, hi);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b.saturating_add(1) < merged.0 || merged.1.saturating_add(1) < a {
                kept.push((a, b));
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        let at = kept.partition_point(|&(a, _)| a < merged.0);
        kept.insert(at, merged);
        if kept.len() > MAX_RANGES {
            kept.drain(..kept.len() - MAX_RANGES);
        }
        self.ranges = kept;
    }
}

/// One partition's record: coverage per sender, the highest stream sequence written, and the
/// stream sequences being written when the record was last saved (a crash there may have written
/// them without recording it).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Coverage {
    senders: HashMap<String, Sender>,
    clock: u64,
    /// Highest stream sequence whose events are written and recorded.
    pub stream_seq: u64,
    /// Stream sequences being written at the last save, if that write was not recorded as done.
    pub in_progress: Option<(u64, u64)>,
}

impl Coverage {
    /// Whether `seq` of `sender` is written already.
    pub fn covers(&self, sender: &str, seq: u64) -> bool {
        self.senders.get(sender).is_some_and(|s| s.covers(seq))
    }

    /// Records `lo..=hi` of `sender` as written.
    pub fn cover(&mut self, sender: &str, lo: u64, hi: u64) {
        self.clock += 1;
        let clock = self.clock;
        if !self.senders.contains_key(sender) && self.senders.len() >= MAX_SENDERS {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.senders.remove(&oldest);
            }
        }
        let entry = self.senders.entry(sender.to_owned()).or_default();
        entry.last_used = clock;
        entry.cover(lo, hi);
    }

    /// Whether a redelivered message at `stream_seq` may have been written before a crash.
    pub fn maybe_written(&self, stream_seq: u64) -> bool {
        self.in_progress
            .is_some_and(|(lo, hi)| (lo..=hi).contains(&stream_seq))
    }

    fn to_document(&self) -> Document {
        let senders: Document = self
            .senders
            .iter()
            .map(|(id, s)| {
                let ranges: Vec<Bson> = s
                    .ranges
                    .iter()
                    .map(|&(a, b)| Bson::Array(vec![Bson::Int64(a as i64), Bson::Int64(b as i64)]))
                    .collect();
                (id.clone(), Bson::Array(ranges))
            })
            .collect();
        let in_progress = match self.in_progress {
            Some((a, b)) => Bson::Array(vec![Bson::Int64(a as i64), Bson::Int64(b as i64)]),
            None => Bson::Null,
        };
        doc! {
            "stream_seq": self.stream_seq as i64,
            "in_progress": in_progress,
            "senders": senders,
        }
    }

    fn from_document(doc: &Document) -> Option<Coverage> {
        let pair = |b: &Bson| -> Option<(u64, u64)> {
            let a = b.as_array()?;
            let (lo, hi) = (a.first()?.as_i64()?, a.get(1)?.as_i64()?);
            (lo >= 1 && lo <= hi).then_some((lo as u64, hi as u64))
        };
        let mut coverage = Coverage {
            stream_seq: u64::try_from(doc.get_i64("stream_seq").ok()?).ok()?,
            in_progress: doc.get("in_progress").and_then(pair),
            ..Default::default()
        };
        for (id, ranges) in doc.get_document("senders").ok()? {
            if !valid_sender_id(id.as_bytes()) {
                return None;
            }
            for range in ranges.as_array()? {
                let (lo, hi) = pair(range)?;
                coverage.cover(id, lo, hi);
            }
        }
        Some(coverage)
    }
}

/// Why a partition's record cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    /// I/O on the record file.
    #[error("{path}: {source}")]
    Io {
        /// The record file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a record this version wrote.
    #[error(
        "{path} is damaged: move it away to start this partition with no record (events written \
         before may then be written again if they are redelivered)"
    )]
    Damaged {
        /// The record file.
        path: PathBuf,
    },
}

/// The record file of `partition` under the log directory.
pub fn record_path(dir: &Path, stream: &str, partition: u32) -> PathBuf {
    dir.join(format!(".ziggyd-jetstream-{stream}-p{partition}"))
}

/// Reads a record; a missing file is an empty record.
pub fn load(path: &Path) -> Result<Coverage, CoverageError> {
    let io = |source| CoverageError::Io {
        path: path.to_owned(),
        source,
    };
    let Some(bytes) = crate::state_file::read_bytes(path).map_err(io)? else {
        return Ok(Coverage::default());
    };
    Document::from_reader(&bytes[..])
        .ok()
        .and_then(|d| Coverage::from_document(&d))
        .ok_or_else(|| CoverageError::Damaged {
            path: path.to_owned(),
        })
}

/// Writes a record atomically (temporary file, fsync, rename).
pub fn save(path: &Path, coverage: &Coverage) -> Result<(), CoverageError> {
    let bytes = coverage.to_document().to_vec().unwrap_or_default();
    crate::state_file::write_atomic(path, &bytes).map_err(|source| CoverageError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer_exactly() {
        let mut c = Coverage::default();
        c.cover("a", 1, 100);
        c.cover("a", 201, 300);
        assert!(c.covers("a", 1) && c.covers("a", 100) && c.covers("a", 250));
        assert!(!c.covers("a", 101) && !c.covers("a", 200) && !c.covers("a", 301));
        assert!(!c.covers("b", 5));
        c.cover("a", 101, 200);
        assert_eq!(c.senders["a"].ranges, [(1, 300)]);
        c.cover("a", 50, 400);
        assert_eq!(c.senders["a"].ranges, [(1, 400)]);
    }

    #[test]
    fn bounded_by_forgetting_the_oldest() {
        let mut c = Coverage::default();
        for i in 0..(MAX_RANGES as u64 + 10) {
            c.cover("a", i * 10 + 1, i * 10 + 5);
        }
        assert_eq!(c.senders["a"].ranges.len(), MAX_RANGES);
        assert!(!c.covers("a", 1), "the lowest ranges go first");
        assert!(c.covers("a", (MAX_RANGES as u64 + 9) * 10 + 3));
        for i in 0..MAX_SENDERS + 5 {
            c.cover(&format!("s{i}"), 1, 1);
        }
        assert_eq!(c.senders.len(), MAX_SENDERS);
        assert!(
            !c.covers("a", 995),
            "the least recently seen sender went first"
        );
    }

    #[test]
    fn records_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(dir.path(), "ZIGGY", 1);
        assert_eq!(load(&path).unwrap(), Coverage::default());
        let mut c = Coverage::default();
        c.cover("ab12", 3, 9);
        c.stream_seq = 42;
        c.in_progress = Some((40, 44));
        save(&path, &c).unwrap();
        let read = load(&path).unwrap();
        assert!(read.covers("ab12", 9) && !read.covers("ab12", 10));
        assert_eq!((read.stream_seq, read.in_progress), (42, Some((40, 44))));
        std::fs::write(&path, b"garbage").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("is damaged"), "{e}");
        let hostile = doc! { "stream_seq": 1_i64, "in_progress": Bson::Null,
        "senders": { "a\nb": [[1_i64, 2_i64]] } };
        assert!(Coverage::from_document(&hostile).is_none());
    }
}
