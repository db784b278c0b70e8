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
#[inline]
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

/// A document and its byte offset, or the error where framing broke.
pub type Framed<'a> = Result<(u64, &'a [u8]), FrameError>;

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
    type Item = Framed<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let offset = self.offset;
        match frame(self.rest, offset) {
            Ok(len) => {
                let (doc, rest) = self.rest.split_at(len);
                self.rest = rest;
                self.offset += len as u64;
                Some(Ok((offset, doc)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The length of the whole document at the start of `bytes` (non-empty), which starts at byte
/// `offset`, or why there is none.
#[inline]
fn frame(bytes: &[u8], offset: u64) -> Result<usize, FrameError> {
    let available = bytes.len();
    let Some(prefix) = bytes.first_chunk::<4>() else {
        return Err(FrameError::Truncated {
            offset,
            declared: 0,
            available,
        });
    };
    let Some(len) = declared_len(*prefix) else {
        return Err(FrameError::Corrupt {
            offset,
            reason: "impossible length",
        });
    };
    if len > available {
        return Err(FrameError::Truncated {
            offset,
            declared: len,
            available,
        });
    }
    if bytes[len - 1] != 0 {
        return Err(FrameError::Corrupt {
            offset,
            reason: "no NUL at its end",
        });
    }
    Ok(len)
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

/// Reads documents from a byte stream in large chunks and lends each one as a slice of its chunk:
/// no copy per document (the fast way through a large file). The rule is that of [`documents`];
/// memory is bounded by the chunk size or the largest document. The stream is read only when the
/// chunk holds no whole document, so documents from a pipe come out as soon as they are complete.
///
/// ```
/// use ziggy_proto::framing::{DocumentChunks, FrameError};
/// let one = [5u8, 0, 0, 0, 0];
/// let bytes = [&one[..], &one[..], &[9, 0]].concat();
/// let mut docs = DocumentChunks::new(&bytes[..], 1 << 20);
/// assert_eq!(docs.next_document().unwrap(), Some(Ok((0, &one[..]))));
/// assert_eq!(docs.next_document().unwrap(), Some(Ok((5, &one[..]))));
/// let cut = FrameError::Truncated { offset: 10, declared: 0, available: 2 };
/// assert_eq!(docs.next_document().unwrap(), Some(Err(cut)));
/// assert_eq!(docs.rest(), [9, 0]);
/// ```
#[derive(Debug)]
pub struct DocumentChunks<R> {
    inner: R,
    chunk: Vec<u8>,
    /// `chunk[start..end]` is read but not yet framed.
    start: usize,
    end: usize,
    /// Stream offset of `chunk[0]`.
    base: u64,
    eof: bool,
    failed: bool,
}

impl<R: std::io::Read> DocumentChunks<R> {
    /// Reads from `inner` in chunks of `chunk_size` bytes (grown for a larger document).
    pub fn new(inner: R, chunk_size: usize) -> Self {
        DocumentChunks {
            inner,
            chunk: vec![0; chunk_size.max(4)],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            failed: false,
        }
    }

    /// Bytes framed so far (the offset of the next document).
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The bytes read but not framed. After a framing error they start with the document that
    /// broke it.
    pub fn rest(&self) -> &[u8] {
        &self.chunk[self.start..self.end]
    }

    /// The next document with its offset, `None` at a clean end, or the framing error where the
    /// stream broke (then `None` after). A read error is returned as is; reading may be retried.
    #[inline] // once per document: the refill it rarely needs is not inlined
    pub fn next_document(&mut self) -> std::io::Result<Option<Framed<'_>>> {
        loop {
            if self.failed {
                return Ok(None);
            }
            let offset = self.offset();
            let rest = &self.chunk[self.start..self.end];
            let verdict = (!rest.is_empty()).then(|| frame(rest, offset));
            match verdict {
                Some(Ok(len)) => {
                    let doc = self.start..self.start + len;
                    self.start = doc.end;
                    return Ok(Some(Ok((offset, &self.chunk[doc]))));
                }
                None if self.eof => return Ok(None),
                None => self.refill(4)?,
                Some(Err(FrameError::Truncated { declared, .. })) if !self.eof => {
                    self.refill(declared.max(4))?
                }
                Some(Err(e)) => {
                    self.failed = true;
                    return Ok(Some(Err(e)));
                }
            }
        }
    }

    /// Moves the unframed bytes to the front, makes room for `need` bytes, and reads once.
    fn refill(&mut self, need: usize) -> std::io::Result<()> {
        if self.start > 0 {
            self.chunk.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.chunk.len() {
            self.chunk.resize(need, 0);
        }
        let read = loop {
            match self.inner.read(&mut self.chunk[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        self.end += read;
        self.eof = read == 0;
        Ok(())
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

    /// A stream handing out at most `sizes[i]` bytes on its i-th read (cycling), as a pipe may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        sizes: Vec<usize>,
        reads: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let size = self.sizes[self.reads % self.sizes.len()].max(1);
            self.reads += 1;
            let n = size.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Everything `DocumentChunks` yields, documents copied out.
    fn chunked(
        input: impl std::io::Read,
        chunk_size: usize,
    ) -> Vec<Result<(u64, Vec<u8>), FrameError>> {
        let mut docs = DocumentChunks::new(input, chunk_size);
        let mut out = Vec::new();
        while let Some(item) = docs.next_document().unwrap() {
            out.push(item.map(|(offset, doc)| (offset, doc.to_vec())));
        }
        out
    }

    fn sliced(bytes: &[u8]) -> Vec<Result<(u64, Vec<u8>), FrameError>> {
        documents(bytes)
            .map(|item| item.map(|(offset, doc)| (offset, doc.to_vec())))
            .collect()
    }

    #[test]
    fn chunks_frame_as_slices_do_across_every_cut() {
        let whole = [doc(1), doc(2), vec![20, 0, 0, 0], vec![0; 16], doc(3)].concat();
        let mut broken = whole.clone();
        broken[43] = 1; // the NUL ending the document at 24
        let mut huge = whole.clone();
        huge[12..16].copy_from_slice(&[0, 0, 0, 0x7f]);
        for bytes in [&whole, &broken, &huge] {
            for cut in 0..=bytes.len() {
                let input = &bytes[..cut];
                for (chunk_size, read_size) in [(1, 1), (5, 3), (13, 64), (4 << 20, 7)] {
                    let trickle = Trickle {
                        bytes: input,
                        sizes: vec![read_size],
                        reads: 0,
                    };
                    assert_eq!(chunked(trickle, chunk_size), sliced(input), "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn after_a_framing_error_the_rest_starts_at_the_broken_document() {
        let bytes = [doc(1), vec![4, 0, 0, 0, 0]].concat();
        let mut docs = DocumentChunks::new(&bytes[..], 64);
        assert!(matches!(docs.next_document(), Ok(Some(Ok((0, _))))));
        assert_eq!(
            docs.next_document().unwrap(),
            Some(Err(FrameError::Corrupt {
                offset: 12,
                reason: "impossible length"
            }))
        );
        assert_eq!(docs.rest(), &bytes[12..]);
        assert_eq!(docs.offset(), 12);
        assert_eq!(docs.next_document().unwrap(), None);
    }

    proptest::proptest! {
        #[test]
        fn chunks_agree_with_slices(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            docs in proptest::collection::vec(0u8..20, 0..8),
            cut in proptest::prelude::any::<usize>(),
            sizes in proptest::collection::vec(1usize..40, 1..5),
            chunk_size in 1usize..64,
        ) {
            // Real documents (cut somewhere), or arbitrary bytes.
            let input = if docs.is_empty() {
                bytes
            } else {
                let all: Vec<u8> = docs.iter().flat_map(|&n| doc(n)).collect();
                all[..cut % (all.len() + 1)].to_vec()
            };
            let trickle = Trickle { bytes: &input, sizes, reads: 0 };
            proptest::prop_assert_eq!(chunked(trickle, chunk_size), sliced(&input));
        }
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
