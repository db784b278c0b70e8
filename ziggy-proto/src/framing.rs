//! Framing of concatenated BSON documents (docs/PROTOCOL.md §3.1, §6): a frame, a log file and a
//! spool payload are documents back to back, each starting with its own length (int32 LE, the 4
//! bytes included) and ending with a NUL. One rule for every reader.

/// Largest document a reader accepts: BSON's 16 MiB plus headroom for old writers; a larger
/// length prefix is taken for corruption.
pub const MAX_DOCUMENT_BYTES: usize = 48 << 20;

/// Why framing stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside a document (or inside its 4-byte length).
    #[error(
        "truncated document at byte {offset}: it declares {declared} bytes, only {available} remain"
    )]
    Truncated {
        /// Where the document starts.
        offset: u64,
        /// Its declared length (0 when even the length is cut).
        declared: usize,
        /// Bytes left.
        available: usize,
    },
    /// A length no document can have (below 5, or over [`MAX_DOCUMENT_BYTES`]), or a document
    /// that does not end with a NUL.
    #[error("corrupt document at byte {offset}: {reason}")]
    Corrupt {
        /// Where the document starts.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The declared length of the document whose first 4 bytes are `prefix`, if a document can have
/// it.
pub fn declared_len(prefix: [u8; 4]) -> Option<usize> {
    let len = i32::from_le_bytes(prefix);
    usize::try_from(len)
        .ok()
        .filter(|&n| (5..=MAX_DOCUMENT_BYTES).contains(&n))
}

/// Iterates over the documents of `bytes`, each with its byte offset; ends with one error if
/// the bytes do not end on a document boundary.
///
/// ```
/// let one = [5u8, 0, 0, 0, 0];
/// let bytes = [one, one].concat();
/// let docs: Vec<_> = ziggy_proto::framing::documents(&bytes).collect();
/// assert_eq!(docs, [Ok((0, &one[..])), Ok((5, &one[..]))]);
/// ```
pub fn documents(bytes: &[u8]) -> Documents<'_> {
    Documents {
        rest: bytes,
        offset: 0,
        failed: false,
    }
}

/// The iterator of [`documents`].
#[derive(Debug, Clone)]
pub struct Documents<'a> {
    rest: &'a [u8],
    offset: u64,
    failed: bool,
}

impl<'a> Documents<'a> {
    /// The bytes not yet framed.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Documents<'a> {
    type Item = Result<(u64, &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let offset = self.offset;
        let fail = |this: &mut Self, e| {
            this.failed = true;
            Some(Err(e))
        };
        let Some(prefix) = self.rest.first_chunk::<4>() else {
            let available = self.rest.len();
            return fail(
                self,
                FrameError::Truncated {
                    offset,
                    declared: 0,
                    available,
                },
            );
        };
        let Some(len) = declared_len(*prefix) else {
            return fail(
                self,
                FrameError::Corrupt {
                    offset,
                    reason: "impossible length",
                },
            );
        };
        if len > self.rest.len() {
            let available = self.rest.len();
            return fail(
                self,
                FrameError::Truncated {
                    offset,
                    declared: len,
                    available,
                },
            );
        }
        let (doc, rest) = self.rest.split_at(len);
        if doc[len - 1] != 0 {
            return fail(
                self,
                FrameError::Corrupt {
                    offset,
                    reason: "no NUL at its end",
                },
            );
        }
        self.rest = rest;
        self.offset += len as u64;
        Some(Ok((offset, doc)))
    }
}

/// Reads documents one at a time from a byte stream into a reused buffer (a file of any size in
/// bounded memory).
#[derive(Debug)]
pub struct DocumentReader<R> {
    inner: R,
    offset: u64,
    done: bool,
}

impl<R: std::io::Read> DocumentReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        DocumentReader {
            inner,
            offset: 0,
            done: false,
        }
    }

    /// Bytes consumed so far (the offset of the next document).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next document into `buf` (replacing its contents); returns its offset, `None`
    /// at a clean end, or the framing error where the stream broke (then `None` after).
    pub fn next_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<Result<u64, FrameError>>> {
        if self.done {
            return Ok(None);
        }
        let offset = self.offset;
        let mut prefix = [0u8; 4];
        let got = read_full(&mut self.inner, &mut prefix)?;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        self.done = true; // until this document is whole
        if got < 4 {
            return Ok(Some(Err(FrameError::Truncated {
                offset,
                declared: 0,
                available: got,
            })));
        }
        let Some(len) = declared_len(prefix) else {
            return Ok(Some(Err(FrameError::Corrupt {
                offset,
                reason: "impossible length",
            })));
        };
        buf.clear();
        buf.extend_from_slice(&prefix);
        buf.resize(len, 0);
        let body = read_full(&mut self.inner, &mut buf[4..])?;
        if body < len - 4 {
            return Ok(Some(Err(FrameError::Truncated {
                offset,
                declared: len,
                available: 4 + body,
            })));
        }
        if buf[len - 1] != 0 {
            return Ok(Some(Err(FrameError::Corrupt {
                offset,
                reason: "no NUL at its end",
            })));
        }
        self.done = false;
        self.offset += len as u64;
        Ok(Some(Ok(offset)))
    }
}

/// Fills `buf` as far as the stream goes; returns the bytes read.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The smallest document: its 4-byte length and its terminating NUL.
pub const MIN_DOCUMENT_BYTES: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u8) -> Vec<u8> {
        // {"n": int32}
        vec![12, 0, 0, 0, 0x10, b'n', 0, n, 0, 0, 0, 0]
    }

    #[test]
    fn slices_and_streams_frame_alike() {
        let mut bytes = [doc(1), doc(2), doc(3)].concat();
        bytes.extend_from_slice(&doc(4)[..7]);
        let from_slice: Vec<_> = documents(&bytes).collect();
        let mut reader = DocumentReader::new(&bytes[..]);
        let mut buf = Vec::new();
        let mut from_stream = Vec::new();
        while let Some(item) = reader.next_into(&mut buf).unwrap() {
            from_stream.push(item.map(|off| (off, buf.clone())));
        }
        assert_eq!(from_slice.len(), 4);
        assert_eq!(from_stream.len(), 4);
        for (a, b) in from_slice.iter().zip(&from_stream) {
            match (a, b) {
                (Ok((o1, d1)), Ok((o2, d2))) => assert_eq!((*o1, d1.to_vec()), (*o2, d2.clone())),
                (Err(e1), Err(e2)) => assert_eq!(e1, e2),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            from_slice[3],
            Err(FrameError::Truncated {
                offset: 36,
                declared: 12,
                available: 7
            })
        );
    }

    #[test]
    fn impossible_lengths_are_corruption() {
        for bad in [[4u8, 0, 0, 0], [0xff, 0xff, 0xff, 0xff], [0, 0, 0, 0x10]] {
            let bytes = [&bad[..], &[0; 8]].concat();
            assert!(matches!(
                documents(&bytes).next(),
                Some(Err(FrameError::Corrupt { .. }))
            ));
        }
    }
}
