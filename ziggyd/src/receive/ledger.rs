//! The per-sender ledger of the forward-in protocol (`<log-path>/.ziggyd-forward-ledger`): for
//! each sender id, what is confirmed (`mark`), what was handed to the file writer (`intent`), who
//! owns the id, and when it was last heard from. Written atomically and fsynced before the files
//! are written, so that after a crash resent events are deduplicated or counted as possible
//! duplicates (see [`super`]).

use std::collections::HashMap;
use std::path::PathBuf;

use ziggy_proto::forward::valid_sender_id;

use crate::state_file;

/// Sender ids kept in the ledger; past this, the least recently seen is forgotten.
pub const MAX_SENDERS: usize = 10_000;

/// Per-sender sequence state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SenderState {
    /// Everything up to here is durable and confirmed.
    pub mark: u64,
    /// Everything up to here was handed to the writer (durable or not).
    pub intent: u64,
    /// `intent` as found at start (or before a refused write): events in `(mark, recovered]`
    /// may already be in the files.
    pub recovered: u64,
    /// The first seq of a batch the writer could not write: nothing from there on is confirmed
    /// until it is written (confirmations are cumulative).
    pub hole: Option<u64>,
    /// With CURVE, the public key (Z85) that first used this sender id; only it may use it.
    pub key: Option<String>,
    /// Unix seconds when this sender was last heard from (to forget the oldest first).
    pub last_seen: u64,
}

/// The persistent per-sender ledger.
#[derive(Debug)]
pub struct SenderLedger {
    path: PathBuf,
    senders: HashMap<String, SenderState>,
}

impl SenderLedger {
    /// Loads the ledger under `log_path`. Lines: `id mark intent [key|- [last_seen]]`; a line
    /// that does not parse is skipped (its sender is then new to this daemon).
    pub fn open(log_path: &std::path::Path) -> std::io::Result<SenderLedger> {
        let path = log_path.join(".ziggyd-forward-ledger");
        let mut senders = HashMap::new();
        for line in state_file::read(&path)?.unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (id, mark, intent, rest) = match parts.as_slice() {
                [id, mark, intent, rest @ ..] => (*id, *mark, *intent, rest),
                _ => continue,
            };
            if !valid_sender_id(id.as_bytes()) {
                continue;
            }
            let (Ok(mark), Ok(intent)) = (mark.parse::<u64>(), intent.parse::<u64>()) else {
                continue;
            };
            let key = rest.first().filter(|k| **k != "-").map(|k| (*k).to_owned());
            let last_seen = rest.get(1).and_then(|t| t.parse().ok()).unwrap_or(0);
            senders.insert(
                id.to_owned(),
                SenderState {
                    mark,
                    intent: mark,
                    recovered: intent.max(mark),
                    hole: None,
                    key,
                    last_seen,
                },
            );
        }
        Ok(SenderLedger { path, senders })
    }

    /// Whether this sender id is known.
    pub fn contains(&self, sender: &str) -> bool {
        self.senders.contains_key(sender)
    }

    /// The state of one sender.
    pub fn get(&self, sender: &str) -> SenderState {
        self.senders.get(sender).cloned().unwrap_or_default()
    }

    /// Updates one sender's state (in memory; [`SenderLedger::persist`] writes it). Returns how
    /// many other senders were forgotten to stay within [`MAX_SENDERS`].
    pub fn set(&mut self, sender: &str, state: SenderState) -> u64 {
        let mut evicted = 0;
        if !self.senders.contains_key(sender) {
            while self.senders.len() >= MAX_SENDERS {
                // Never one with something in flight or a refused batch pending: forgetting it
                // could confirm past what was written.
                let oldest = self
                    .senders
                    .iter()
                    .filter(|(_, s)| s.hole.is_none() && s.intent <= s.mark)
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(id, _)| id.clone());
                match oldest {
                    Some(id) => {
                        self.senders.remove(&id);
                        evicted += 1;
                    }
                    None => break,
                }
            }
        }
        self.senders.insert(sender.to_owned(), state);
        evicted
    }

    /// The ledger file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes the ledger atomically and durably.
    pub fn persist(&self) -> std::io::Result<()> {
        use std::fmt::Write;
        let mut text = String::new();
        for (id, s) in &self.senders {
            let _ = writeln!(
                text,
                "{id} {} {} {} {}",
                s.mark,
                s.intent.max(s.recovered),
                s.key.as_deref().unwrap_or("-"),
                s.last_seen
            );
        }
        state_file::write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_round_trips_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = SenderLedger::open(dir.path()).unwrap();
        let state = SenderState {
            mark: 5,
            intent: 9,
            key: Some("K".into()),
            last_seen: 7,
            ..SenderState::default()
        };
        ledger.set("abc", state);
        ledger.persist().unwrap();
        let again = SenderLedger::open(dir.path()).unwrap().get("abc");
        assert_eq!((again.mark, again.intent, again.recovered), (5, 5, 9));
        assert_eq!((again.key.as_deref(), again.last_seen), (Some("K"), 7));
        let mut ledger = SenderLedger::open(dir.path()).unwrap();
        // One sender with events in flight is never forgotten.
        ledger.set(
            "busy",
            SenderState {
                mark: 1,
                intent: 3,
                ..SenderState::default()
            },
        );
        let mut evicted = 0;
        for i in 0..MAX_SENDERS as u64 + 5 {
            let s = SenderState {
                last_seen: 100 + i,
                ..SenderState::default()
            };
            evicted += ledger.set(&format!("s{i}"), s);
        }
        assert_eq!(evicted, 7);
        assert!(
            !ledger.contains("abc"),
            "the least recently seen goes first"
        );
        assert!(ledger.contains("busy"));
    }
}
