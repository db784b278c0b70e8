//! Torn tails of log files. A crash during a write (kill -9 between two pages of a write, power
//! loss) can leave part of an event at the end of a file, and appending after it would make every
//! later event unreadable. Before a file is appended to for the first time, its complete events
//! are measured by their length fields and trailing NULs, and a partial one at the end is cut.
//! (A forwarded event cut this way was never confirmed, so its sender sends it again.)

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::Path;

/// Bytes of `path` made of whole documents, and the file's length.
pub fn whole_documents(path: &Path) -> std::io::Result<(u64, u64)> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut at = 0u64;
    let mut header = [0u8; 4];
    let mut last = [0u8; 1];
    while at + 4 <= total {
        reader.read_exact(&mut header)?;
        let len = i32::from_le_bytes(header);
        if len < 5 || at + len as u64 > total {
            break;
        }
        reader.seek_relative(i64::from(len) - 5)?;
        reader.read_exact(&mut last)?;
        if last[0] != 0 {
            break;
        }
        at += len as u64;
    }
    Ok((at, total))
}

/// Cuts a partial document off the end of `path`; returns the bytes cut (0 if none).
pub fn cut_torn_tail(path: &Path) -> std::io::Result<u64> {
    let (whole, total) = whole_documents(path)?;
    if whole < total {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(whole)?;
        file.sync_all()?;
    }
    Ok(total - whole)
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
        assert_eq!(cut_torn_tail(&path).unwrap(), one.len() as u64 - 3);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [one.clone(), one.clone()].concat()
        );
        assert_eq!(
            cut_torn_tail(&path).unwrap(),
            0,
            "a whole file is left alone"
        );
    }
}
