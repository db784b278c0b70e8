//! Reading concatenated BSON events from a file or stream, one at a time, into a reused buffer.
//!
//! Documents of any size up to BSON's 16 MiB are read (the 2012 reader broke at 64 KiB). A truncated
//! input or a broken frame yields every complete event first, then one error naming the source and
//! the byte offset where it broke. (What is inside a well-framed event is the decoder's business: the
//! viewer skips an event it cannot decode and reads on, see [`ReadError::Skipped`].)

use std::io::{self, Read};

/// Largest document accepted: BSON's 16 MiB plus headroom for old writers; anything larger is
/// treated as a corrupt length prefix.
pub const MAX_DOCUMENT_BYTES: usize = 48 << 20;

/// Why reading stopped before the end of the input.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input ended inside an event.
    #[error(
        "{source_name}: truncated event at byte {offset}: it declares {declared} bytes, only {available} remain"
    )]
    Truncated {
        /// File name, or `<stdin>`.
        source_name: String,
        /// Byte offset of the event's start.
        offset: u64,
        /// Its declared length.
        declared: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A length prefix no valid event can have, or a document that is not BSON.
    #[error("{source_name}: corrupt event at byte {offset}: {reason}")]
    Corrupt {
        /// File name, or `<stdin>`.
        source_name: String,
        /// Byte offset of the event's start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A well-framed event that could not be shown (malformed inside, or nested too deep); the
    /// events after it are still read.
    #[error("{source_name}: event at byte {offset} skipped: {reason}")]
    Skipped {
        /// File name, or `<stdin>`.
        source_name: String,
        /// Byte offset of the event's start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The input could not be read.
    #[error("{source_name}: {error}")]
    Io {
        /// File name, or `<stdin>`.
        source_name: String,
        /// The I/O error.
        error: io::Error,
    },
}

/// Reads events one by one.
pub struct EventReader<R> {
    input: R,
    name: String,
    offset: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl<R: Read> EventReader<R> {
    /// A reader over `input`, called `name` in errors.
    pub fn new(input: R, name: impl Into<String>) -> Self {
        EventReader {
            input,
            name: name.into(),
            offset: 0,
            buf: Vec::with_capacity(64 << 10),
            failed: false,
        }
    }

    /// Byte offset of the next event.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event's bytes (valid until the next call), `Ok(None)` at a clean end.
    pub fn next_event(&mut self) -> Result<Option<&[u8]>, ReadError> {
        if self.failed {
            return Ok(None);
        }
        let start = self.offset;
        let mut header = [0u8; 4];
        let got = read_full(&mut self.input, &mut header).map_err(|e| self.io(e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            self.failed = true;
            return Err(ReadError::Truncated {
                source_name: self.name.clone(),
                offset: start,
                declared: 4,
                available: got,
            });
        }
        let len = i32::from_le_bytes(header);
        if len < 5 || len as usize > MAX_DOCUMENT_BYTES {
            self.failed = true;
            return Err(ReadError::Corrupt {
                source_name: self.name.clone(),
                offset: start,
                reason: format!("length prefix {len} is not a plausible BSON document length"),
            });
        }
        let len = len as usize;
        self.buf.clear();
        self.buf.extend_from_slice(&header);
        self.buf.resize(len, 0);
        let got = read_full(&mut self.input, &mut self.buf[4..]).map_err(|e| self.io(e))?;
        if got < len - 4 {
            self.failed = true;
            return Err(ReadError::Truncated {
                source_name: self.name.clone(),
                offset: start,
                declared: len,
                available: got + 4,
            });
        }
        if self.buf[len - 1] != 0 {
            self.failed = true;
            return Err(ReadError::Corrupt {
                source_name: self.name.clone(),
                offset: start,
                reason: "document does not end with a NUL byte".into(),
            });
        }
        self.offset += len as u64;
        Ok(Some(&self.buf))
    }

    fn io(&mut self, error: io::Error) -> ReadError {
        self.failed = true;
        ReadError::Io {
            source_name: self.name.clone(),
            error,
        }
    }

    /// A skipped-event report for the event just returned (reading goes on after it).
    pub fn skipped_here(&self, reason: String) -> ReadError {
        ReadError::Skipped {
            source_name: self.name.clone(),
            offset: self.offset - self.buf.len() as u64,
            reason,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
