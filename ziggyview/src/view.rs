//! The viewing pipeline: events in, filtered, then printed, grouped or summarised.
//!
//! A broken frame (a length prefix no event can have, a missing trailing NUL, a truncated end)
//! stops the input with an error: nothing after it can be trusted. A well-framed event that cannot
//! be shown (malformed inside, or nested deeper than [`MAX_DEPTH`](crate::record::MAX_DEPTH)) is
//! reported on stderr with its byte offset and skipped; the events after it are still read.

use std::io::{self, Read, Write};

use crate::group::{Group, Grouper, Node};
use crate::json::event_json;
use crate::pretty::{Style, write_event};
use crate::reader::{EventReader, ReadError};
use crate::record::{Record, raw_channel_bytes};
use crate::safe::{escape, write_json};
use crate::source::ChannelPattern;
use crate::stats::KeyStats;

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
    stats: Option<KeyStats>,
    scratch: Vec<u8>,
    /// Matching events seen.
    pub seen: u64,
    problems: u64,
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
        let stats = options.stats_key.as_deref().map(KeyStats::new);
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

    /// Flushes the output (live mode does after every event).
    pub fn flush(&mut self) -> io::Result<()> {
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
    pub fn done(&self) -> bool {
        self.options.count.is_some_and(|n| self.seen >= n)
    }

    /// Whether raw event bytes are wanted (channel filter), decided without decoding the body.
    pub fn wants(&self, bytes: &[u8]) -> bool {
        raw_channel_bytes(bytes).is_some_and(|c| self.options.pattern.matches_bytes(c))
    }

    /// Handles one matching event.
    pub fn event(&mut self, mut rec: Record) -> io::Result<()> {
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

    /// Reads a file in large chunks, slicing events in place; only matching ones are decoded.
    /// Same results and errors as [`Viewer::read_input`], without a copy per event.
    pub fn read_file(&mut self, mut file: impl Read, name: &str) -> Result<(), ViewError> {
        const CHUNK: usize = 4 << 20;
        let mut buf = vec![0u8; CHUNK];
        let (mut filled, mut base) = (0usize, 0u64); // bytes in buf; file offset of buf[0]
        let mut eof = false;
        loop {
            // Consume every complete event in the buffer.
            let mut pos = 0;
            while !self.done() {
                let rest = &buf[pos..filled];
                if rest.len() < 4 {
                    break;
                }
                let offset = base + pos as u64;
                let corrupt = |reason: String| ReadError::Corrupt {
                    source_name: name.to_owned(),
                    offset,
                    reason,
                };
                let skipped = |reason: String| ReadError::Skipped {
                    source_name: name.to_owned(),
                    offset,
                    reason,
                };
                let len = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                if len < 5 || len as usize > crate::reader::MAX_DOCUMENT_BYTES {
                    return Err(corrupt(format!(
                        "length prefix {len} is not a plausible BSON document length"
                    ))
                    .into());
                }
                let len = len as usize;
                if len > rest.len() {
                    if len > buf.len() {
                        buf.resize(len, 0); // a document larger than the chunk
                    }
                    break;
                }
                let event = &rest[..len];
                if event[len - 1] != 0 {
                    return Err(corrupt("document does not end with a NUL byte".into()).into());
                }
                if self.wants(event) {
                    if self.plain_json() {
                        // The common `--json` case: straight from bytes to text.
                        // Into a scratch line first: a malformed nested value must not leave half
                        // a line on stdout.
                        let mut line = std::mem::take(&mut self.scratch);
                        line.clear();
                        let written = crate::json::write_raw_event(&mut line, event);
                        match written {
                            Ok(()) => {
                                self.out.write_all(&line)?;
                                self.seen += 1;
                            }
                            Err(e) => self.report(&skipped(e.to_string())),
                        }
                        self.scratch = line;
                    } else {
                        match Record::decode(event) {
                            Ok(rec) => self.event(rec)?,
                            Err(e) => self.report(&skipped(e.to_string())),
                        }
                    }
                }
                pos += len;
            }
            if self.done() {
                return Ok(());
            }
            buf.copy_within(pos..filled, 0);
            filled -= pos;
            base += pos as u64;
            if eof {
                if filled == 0 {
                    return Ok(());
                }
                let declared = if filled >= 4 {
                    i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]).max(0) as usize
                } else {
                    4
                };
                return Err(ReadError::Truncated {
                    source_name: name.to_owned(),
                    offset: base,
                    declared,
                    available: filled,
                }
                .into());
            }
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        return Err(ReadError::Io {
                            source_name: name.to_owned(),
                            error,
                        }
                        .into());
                    }
                }
            }
        }
    }

    /// Reads one input to its end (or `--count`). On a read error, what was complete has been
    /// handled; the caller prints the error after [`Viewer::finish`].
    pub fn read_input(&mut self, input: impl Read, name: &str) -> Result<(), ViewError> {
        let mut reader = EventReader::new(io::BufReader::with_capacity(1 << 20, input), name);
        while !self.done() {
            let Some(bytes) = reader.next_event()? else {
                break;
            };
            if !self.wants(bytes) {
                continue;
            }
            match Record::decode(bytes) {
                Ok(rec) => self.event(rec)?,
                Err(e) => {
                    let problem = reader.skipped_here(e.to_string());
                    self.report(&problem);
                }
            }
        }
        Ok(())
    }
}

fn write_record(out: &mut impl Write, rec: &Record, options: &ViewOptions) -> io::Result<()> {
    if options.json {
        write_json(&mut *out, &event_json(&rec.doc))?;
        writeln!(out)
    } else {
        write_event(out, rec, Style::new(options.color), 0)?;
        writeln!(out)
    }
}

fn write_group(out: &mut impl Write, group: &Group, options: &ViewOptions) -> io::Result<()> {
    let tree = group.tree();
    if options.json {
        fn node_json(group: &Group, node: &Node) -> serde_json::Value {
            let mut obj = event_json(&group.events[node.index].doc);
            if !node.children.is_empty() {
                let children = node.children.iter().map(|c| node_json(group, c)).collect();
                obj.insert("children".into(), serde_json::Value::Array(children));
            }
            serde_json::Value::Object(obj)
        }
        let events: Vec<_> = tree.iter().map(|n| node_json(group, n)).collect();
        let line =
            serde_json::json!({ "id": group.id, "partial": group.partial, "events": events });
        write_json(&mut *out, &line)?;
        writeln!(out)
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
