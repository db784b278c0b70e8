//! Torn tails of log files. A crash during a write (kill -9 between two pages of a write, power
//! loss) can leave part of an event at the end of a file, and appending after it would make every
//! later event unreadable. Before a file is appended to for the first time, its documents are
//! framed (`ziggy_proto::framing`, as every reader frames them), and a partial one at the end is
//! cut. (A forwarded event cut this way was never confirmed, so its sender sends it again.)

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::path::Path;

use ziggy_proto::framing::{DocumentReader, FrameError};

/// What the end of a log file looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Whole documents to the end.
    Whole,
    /// Whole documents, then the start of one that runs past the end (`bytes` of it): what a
    /// crash during a write leaves.
    Partial {
        /// Where the whole documents end.
        whole: u64,
        /// Bytes of the partial document.
        bytes: u64,
    },
    /// Something that is not a document before the end (a flipped bit, a foreign write): not a
    /// crash's doing, and nothing to cut.
    Damaged {
        /// Where the damage starts.
        at: u64,
    },
}

/// Largest document a writer appends (BSON's 16 MiB): a partial one is never longer, so a
/// longer length (which readers may still frame) is damage here.
const MAX_DOCUMENT: usize = 16 << 20;

/// Frames `path`'s documents.
pub fn inspect(path: &Path) -> std::io::Result<Tail> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut reader = DocumentReader::new(BufReader::with_capacity(1 << 20, file));
    let mut doc = Vec::new();
    while let Some(framed) = reader.next_into(&mut doc)? {
        match framed {
            Ok(at) if doc.len() > MAX_DOCUMENT => return Ok(Tail::Damaged { at }),
            Ok(_) => {}
            Err(FrameError::Truncated {
                offset, declared, ..
            }) if declared <= MAX_DOCUMENT => {
                return Ok(Tail::Partial {
                    whole: offset,
                    bytes: total - offset,
                });
            }
            Err(FrameError::Truncated { offset, .. } | FrameError::Corrupt { offset, .. }) => {
                return Ok(Tail::Damaged { at: offset });
            }
        }
    }
    Ok(Tail::Whole)
}

/// Cuts a partial document off the end of `path`; returns the bytes cut (0 if none), or the
/// offset of damage that is not a partial last document (nothing is cut then).
pub fn cut_torn_tail(path: &Path) -> std::io::Result<Result<u64, u64>> {
    match inspect(path)? {
        Tail::Whole => Ok(Ok(0)),
        Tail::Partial { whole, bytes } => {
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(whole)?;
            file.sync_all()?;
            Ok(Ok(bytes))
        }
        Tail::Damaged { at } => Ok(Err(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn a_partial_last_document_is_cut_and_whole_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bson");
        let one = doc! { "n": 1, "s": "x" }.to_vec().unwrap();
        let mut bytes = [one.clone(), one.clone()].concat();
        bytes.extend_from_slice(&one[..one.len() - 3]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cut_torn_tail(&path).unwrap(), Ok(one.len() as u64 - 3));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [one.clone(), one.clone()].concat()
        );
        assert_eq!(
            cut_torn_tail(&path).unwrap(),
            Ok(0),
            "a whole file is left alone"
        );
        // One flipped byte in the middle is damage, not a torn tail: nothing is cut.
        let mut bytes = [one.clone(), one.clone(), one.clone()].concat();
        bytes[one.len() - 1] = 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cut_torn_tail(&path).unwrap(), Err(0));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn lengths_a_writer_never_writes_are_damage_even_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bson");
        let one = doc! { "n": 1 }.to_vec().unwrap();
        // Three bytes of a length: a crash's doing.
        std::fs::write(&path, [&one[..], &one[..3]].concat()).unwrap();
        assert_eq!(
            inspect(&path).unwrap(),
            Tail::Partial {
                whole: one.len() as u64,
                bytes: 3
            }
        );
        // A length over 16 MiB, running past the end: damage, though a reader may frame it.
        let big = (20u32 << 20).to_le_bytes();
        std::fs::write(&path, [&one[..], &big[..], &[0; 8]].concat()).unwrap();
        assert_eq!(
            inspect(&path).unwrap(),
            Tail::Damaged {
                at: one.len() as u64
            }
        );
    }
}
