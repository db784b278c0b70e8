//! The receiving side of daemon-to-daemon forwarding, run inside the collector thread.
//!
//! Protocol (documented in the crate docs): a forwarding daemon's DEALER sends
//! `["ZGB1", sender id, first seq (u64 LE), concatenated events]` to this daemon's ROUTER (port
//! announced by `SOCK_FORWARD`). Events of a batch are numbered `first seq`, `first seq + 1`, …
//! This daemon writes the new ones, fsyncs, and answers `["ACK1", seq (u64 LE)]`: everything of
//! that sender up to `seq` is durable here. A per-sender ledger (`<log-path>/.ziggyd-forward-ledger`)
//! keeps, for each sender, `mark` (confirmed) and `intent` (handed to the file writer), fsynced
//! before the files are written; after a crash, resent events up to `mark` are skipped
//! (deduplicated) and those in `(mark, intent]` are written again and counted as possible
//! duplicates.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::ledger;

/// Per-sender sequence state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SenderState {
    /// Everything up to here is durable and confirmed.
    pub mark: u64,
    /// Everything up to here was handed to the writer (durable or not).
    pub intent: u64,
    /// `intent` as found at start: events in `(mark, recovered]` may already be in the files.
    pub recovered: u64,
}

/// The persistent per-sender ledger.
#[derive(Debug)]
pub struct SenderLedger {
    path: PathBuf,
    senders: HashMap<String, SenderState>,
}

impl SenderLedger {
    /// Loads the ledger under `log_path`.
    pub fn open(log_path: &std::path::Path) -> std::io::Result<SenderLedger> {
        let path = log_path.join(".ziggyd-forward-ledger");
        let mut senders = HashMap::new();
        for line in ledger::read(&path)?.unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [id, mark, intent] = parts.as_slice()
                && let (Ok(mark), Ok(intent)) = (mark.parse(), intent.parse())
            {
                senders.insert(
                    id.to_string(),
                    SenderState {
                        mark,
                        intent: mark,
                        recovered: intent,
                    },
                );
            }
        }
        Ok(SenderLedger { path, senders })
    }

    /// The state of one sender.
    pub fn get(&self, sender: &str) -> SenderState {
        self.senders.get(sender).copied().unwrap_or_default()
    }

    /// Updates one sender's state (in memory; [`SenderLedger::persist`] writes it).
    pub fn set(&mut self, sender: &str, state: SenderState) {
        self.senders.insert(sender.to_owned(), state);
    }

    /// Writes the ledger atomically and durably.
    pub fn persist(&self) -> std::io::Result<()> {
        let mut text = String::new();
        for (id, s) in &self.senders {
            text.push_str(&format!("{id} {} {}\n", s.mark, s.intent.max(s.recovered)));
        }
        ledger::write_atomic(&self.path, text.as_bytes())
    }
}

/// Parses a forwarded batch message: `(sender, first seq, payload)`.
pub fn parse_batch(parts: &[Vec<u8>]) -> Option<(String, u64, &[u8])> {
    let [tag, sender, seq, payload] = parts else {
        return None;
    };
    if tag != b"ZGB1" || seq.len() != 8 || sender.is_empty() || sender.len() > 64 {
        return None;
    }
    let sender = std::str::from_utf8(sender).ok()?.to_owned();
    Some((
        sender,
        u64::from_le_bytes(seq[..].try_into().ok()?),
        payload,
    ))
}
