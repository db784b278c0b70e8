//! The viewing pipeline: events in, filtered, then printed, grouped or summarised.
//!
//! A broken frame (a length prefix no event can have, a missing trailing NUL, a truncated end)
//! stops the input with an error: nothing after it can be trusted. A well-framed event that cannot
//! be shown (malformed inside, or nested deeper than [`MAX_DEPTH`](crate::record::MAX_DEPTH)) is
//! reported on stderr with its byte offset and skipped; the events after it are still read.

use std::io::{self, Read, Write};

use ziggy_proto::framing::{DocumentChunks, FrameError, declared_len};

use crate::group::{Group, Grouper, Node};
use crate::json;
use crate::pretty::{Style, write_event};
use crate::record::{DecodeError, Record, raw_channel_bytes};
use crate::safe::{escape, write_json_str};
use crate::source::ChannelPattern;
use crate::timers::TimerStats;

/// What to show and how.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Which channels.
    pub pattern: ChannelPattern,
    /// JSON lines instead of readable blocks.
    pub json: bool,
    /// ANSI colours in readable output.
    pub color: bool,
    /// Only these dotted body keys.
    pub fields: Option<Vec<String>>,
    /// Group by id, with this window in seconds.
    pub group_window: Option<f64>,
    /// Summarise this numeric body key instead of printing events.
    pub stats_key: Option<String>,
    /// Stop after this many matching events.
    pub count: Option<u64>,
}

/// Receives matching events and writes the output.
pub struct Viewer<W: Write> {
    out: W,
    options: ViewOptions,
    grouper: Option<Grouper>,
    stats: Option<TimerStats>,
    scratch: Vec<u8>,
    /// Matching events seen.
    seen: u64,
    problems: u64,
}

/// Bytes read from an input at a time: large enough that reading costs little more than `cat`.
const CHUNK: usize = 4 << 20;

/// Why reading an input stopped before its end, or an event of it was skipped.
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
        /// Its declared length (4, the length's own size, when even that is cut).
        declared: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A frame no event can have: nothing after it can be trusted.
    #[error("{source_name}: corrupt event at byte {offset}: {reason}")]
    Corrupt {
        /// File name, or `<stdin>`.
        source_name: String,
        /// Byte offset of the event's start.
        offset: u64,
        /// What is wrong.
        reason: Corruption,
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
        reason: DecodeError,
    },
    /// The input could not be opened or read.
    #[error("{source_name}: {error}")]
    Io {
        /// File name, or `<stdin>`.
        source_name: String,
        /// The I/O error.
        error: io::Error,
    },
}

/// What is wrong with a corrupt frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// A length below 5 bytes or over the framing limit.
    #[error("length prefix {0} is not a plausible BSON document length")]
    Length(i32),
    /// The last byte of the document is not NUL.
    #[error("document does not end with a NUL byte")]
    NoNul,
}

impl ReadError {
    /// The framing error `broken` of input `name`, `rest` holding the bytes from the broken
    /// event on.
    fn framing(name: &str, broken: FrameError, rest: &[u8]) -> ReadError {
        let source_name = name.to_owned();
        match broken {
            FrameError::Truncated {
                offset,
                declared,
                available,
            } => ReadError::Truncated {
                source_name,
                offset,
                declared: declared.max(4),
                available,
            },
            FrameError::Corrupt { offset, .. } => {
                // A plausible length makes the missing NUL the corruption.
                let prefix = rest.first_chunk::<4>().copied().unwrap_or_default();
                let reason = match declared_len(prefix) {
                    None => Corruption::Length(i32::from_le_bytes(prefix)),
                    Some(_) => Corruption::NoNul,
                };
                ReadError::Corrupt {
                    source_name,
                    offset,
                    reason,
                }
            }
        }
    }
}

/// Why viewing failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// An input was truncated, corrupt or unreadable.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

impl<W: Write> Viewer<W> {
    /// A viewer writing to `out`.
    pub fn new(out: W, options: ViewOptions) -> Self {
        let grouper = options.group_window.map(|w| Grouper::new(w, 1_000_000));
        let stats = options.stats_key.as_deref().map(TimerStats::new);
        Viewer {
            out,
            options,
            grouper,
            stats,
            scratch: Vec::new(),
            seen: 0,
            problems: 0,
        }
    }

    /// Reports a problem that does not stop the run (a skipped event, an unreadable file) on
    /// stderr, escaped; it counts towards [`Viewer::problems`].
    pub fn report(&mut self, problem: &dyn std::fmt::Display) {
        eprintln!("ziggyview: {}", escape(&problem.to_string()));
        self.problems += 1;
    }

    /// Counts `n` problems already reported elsewhere.
    pub fn count_problems(&mut self, n: u64) {
        self.problems += n;
    }

    /// How many problems were reported (the run then exits 1).
    pub fn problems(&self) -> u64 {
        self.problems
    }

    /// The channels shown.
    pub(crate) fn pattern(&self) -> &ChannelPattern {
        &self.options.pattern
    }

    /// Flushes the output (live mode does after every event).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Plain JSON lines: no grouping, statistics or field selection.
    fn plain_json(&self) -> bool {
        self.options.json
            && self.grouper.is_none()
            && self.stats.is_none()
            && self.options.fields.is_none()
    }

    /// True once `--count` events were shown.
    #[inline]
    pub fn done(&self) -> bool {
        self.options.count.is_some_and(|n| self.seen >= n)
    }

    /// Whether raw event bytes are wanted (channel filter), decided without decoding the body.
    #[inline]
    pub(crate) fn wants(&self, bytes: &[u8]) -> bool {
        raw_channel_bytes(bytes).is_some_and(|c| self.options.pattern.matches_bytes(c))
    }

    /// Handles one matching event.
    pub(crate) fn event(&mut self, mut rec: Record) -> io::Result<()> {
        if self.done() {
            return Ok(());
        }
        self.seen += 1;
        if let Some(stats) = &mut self.stats {
            stats.push(&rec);
            return Ok(());
        }
        if let Some(fields) = &self.options.fields {
            rec.restrict_body(fields);
        }
        match &mut self.grouper {
            Some(grouper) => {
                for group in grouper.push(rec) {
                    write_group(&mut self.out, &group, &self.options)?;
                }
                Ok(())
            }
            None => write_record(&mut self.out, &rec, &self.options),
        }
    }

    /// Prints what is still held (open groups, statistics) and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(grouper) = &mut self.grouper {
            for group in grouper.drain() {
                write_group(&mut self.out, &group, &self.options)?;
            }
        }
        if let Some(stats) = &mut self.stats {
            stats.write(&mut self.out, self.options.json)?;
        }
        self.out.flush()
    }

    /// Handles one event's bytes: filtered on the channel, then printed, or held for grouping
    /// and timers. Returns why a matching event could not be shown (nothing of it is written).
    #[inline] // the filter runs for every event of a file; most do not match
    pub(crate) fn take(&mut self, bytes: &[u8]) -> io::Result<Option<DecodeError>> {
        if self.done() || !self.wants(bytes) {
            return Ok(None);
        }
        self.show(bytes)
    }

    /// [`Viewer::take`] for a matching event.
    fn show(&mut self, bytes: &[u8]) -> io::Result<Option<DecodeError>> {
        if !self.plain_json() {
            return match Record::decode(bytes) {
                Ok(rec) => self.event(rec).map(|()| None),
                Err(e) => Ok(Some(e)),
            };
        }
        // The common `--json` case: straight from bytes to text, into a scratch line first, so
        // a malformed nested value leaves no half line on stdout.
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        let skipped = match json::write_line(&mut line, bytes) {
            Ok(()) => {
                self.out.write_all(&line)?;
                self.seen += 1;
                None
            }
            Err(e) => Some(e),
        };
        self.scratch = line;
        Ok(skipped)
    }

    /// Reads one input to its end (or `--count`) in large chunks, slicing events in place: only
    /// matching ones are decoded. An event that cannot be shown is reported with its offset and
    /// skipped. On a broken frame or a read error, what was complete has been handled; the
    /// caller reports the error after [`Viewer::finish`].
    pub fn read_file(&mut self, input: impl Read, name: &str) -> Result<(), ViewError> {
        let mut docs = DocumentChunks::new(input, CHUNK);
        while !self.done() {
            let next = docs.next_document().map_err(|error| ReadError::Io {
                source_name: name.to_owned(),
                error,
            })?;
            match next {
                None => break,
                Some(Ok((offset, event))) => {
                    if let Some(reason) = self.take(event)? {
                        self.report(&ReadError::Skipped {
                            source_name: name.to_owned(),
                            offset,
                            reason,
                        });
                    }
                }
                Some(Err(broken)) => {
                    return Err(ReadError::framing(name, broken, docs.rest()).into());
                }
            }
        }
        Ok(())
    }
}

fn write_record(out: &mut impl Write, rec: &Record, options: &ViewOptions) -> io::Result<()> {
    if options.json {
        let mut line = Vec::new();
        json::write_document(&mut line, &rec.doc, None).map_err(json::reencoding)?;
        line.push(b'\n');
        out.write_all(&line)
    } else {
        write_event(out, rec, Style::new(options.color), 0)?;
        writeln!(out)
    }
}

fn write_group(out: &mut impl Write, group: &Group, options: &ViewOptions) -> io::Result<()> {
    let tree = group.tree();
    if options.json {
        fn node_json(line: &mut Vec<u8>, group: &Group, node: &Node) -> Result<(), DecodeError> {
            let mut children = |line: &mut Vec<u8>| {
                line.push(b'[');
                for (i, child) in node.children.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    node_json(line, group, child)?;
                }
                line.push(b']');
                Ok(())
            };
            let extra = (!node.children.is_empty()).then_some(json::Extra {
                key: "children",
                value: &mut children,
            });
            json::write_document(line, &group.events[node.index].doc, extra)
        }
        let mut line = br#"{"id":"#.to_vec();
        write_json_str(&mut line, &group.id)?;
        let partial: &[u8] = if group.partial { b"true" } else { b"false" };
        line.extend_from_slice(br#","partial":"#);
        line.extend_from_slice(partial);
        line.extend_from_slice(br#","events":["#);
        for (i, node) in tree.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            node_json(&mut line, group, node).map_err(json::reencoding)?;
        }
        line.extend_from_slice(b"]}\n");
        out.write_all(&line)
    } else {
        let style = Style::new(options.color);
        let partial = if group.partial {
            " (partial: its parent event is missing)"
        } else {
            ""
        };
        writeln!(
            out,
            "group {} ({} events){partial}",
            escape(&group.id),
            group.events.len()
        )?;
        fn walk(
            out: &mut impl Write,
            group: &Group,
            node: &Node,
            depth: usize,
            style: Style,
        ) -> io::Result<()> {
            write_event(out, &group.events[node.index], style, 2 + depth * 4)?;
            for child in &node.children {
                walk(out, group, child, depth + 1, style)?;
            }
            Ok(())
        }
        for node in &tree {
            walk(out, group, node, 0, style)?;
        }
        writeln!(out)
    }
}
