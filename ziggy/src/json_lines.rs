//! The development output: events as JSON lines on stderr or in a file, instead of a daemon.
//!
//! Chosen in code with [`configure_json`](crate::configure_json), or for a program that calls
//! [`configure`](crate::configure) by the environment: `ZIGGY_JSON=stderr` (or `-`) or
//! `ZIGGY_JSON=/path/events.jsonl` sends the events there instead of to the daemon, so `cargo run`
//! shows them at once. Each line is one event, header fields first (docs/PROTOCOL.md §1), values
//! in MongoDB's relaxed extended JSON (numbers stay numbers; binary, dates and non-finite doubles
//! become `{"$...": ...}` objects).

use std::io::{self, Write};
use std::path::PathBuf;

/// The environment variable that redirects [`configure`](crate::configure) to JSON lines.
pub(crate) const JSON_ENV_VAR: &str = "ZIGGY_JSON";

/// Where JSON lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonOutput {
    /// The process's standard error.
    Stderr,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

impl JsonOutput {
    /// Reads `ZIGGY_JSON`: `stderr` or `-` for standard error, anything else non-empty a path.
    pub fn from_env() -> Option<JsonOutput> {
        let value = std::env::var_os(JSON_ENV_VAR)?;
        match value.to_str() {
            Some("") => None,
            Some("stderr") | Some("-") => Some(JsonOutput::Stderr),
            _ => Some(JsonOutput::File(PathBuf::from(value))),
        }
    }

    /// Opens the output for the sender thread.
    pub(crate) fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            JsonOutput::Stderr => Box::new(io::stderr()),
            JsonOutput::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        })
    }
}

impl std::fmt::Display for JsonOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonOutput::Stderr => f.write_str("stderr"),
            JsonOutput::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Writes each event of a frame (concatenated BSON) as one JSON line, then flushes. A document that
/// does not decode (none should: the runtime encoded it) becomes a line saying so.
pub(crate) fn write_frame(out: &mut dyn Write, frame: &[u8]) -> io::Result<()> {
    let mut lines = Vec::with_capacity(frame.len() * 2);
    for document in ziggy_proto::framing::documents(frame) {
        let decoded = match document {
            Ok((_, bytes)) => bson::Document::from_reader(bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match decoded {
            Ok(event) => write_document(&mut lines, &event)?,
            Err(why) => {
                lines.extend_from_slice(br#"{"ziggy_error":"#);
                serde_json::to_writer(&mut lines, &why).map_err(io::Error::other)?;
                lines.push(b'}');
            }
        }
        lines.push(b'\n');
    }
    out.write_all(&lines)?;
    out.flush()
}

/// A document as a JSON object in its own field order (serde_json's map would sort the keys
/// unless its `preserve_order` feature were forced on every application).
fn write_document(out: &mut Vec<u8>, doc: &bson::Document) -> io::Result<()> {
    out.push(b'{');
    for (i, (key, value)) in doc.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).map_err(io::Error::other)?;
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &bson::Bson) -> io::Result<()> {
    match value {
        bson::Bson::Document(doc) => write_document(out, doc),
        bson::Bson::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
            Ok(())
        }
        other => serde_json::to_writer(&mut *out, &other.clone().into_relaxed_extjson())
            .map_err(io::Error::other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event_header_first() {
        let a = bson::doc! { "id": "x", "type": "request", "start": 1.5, "body": { "n": 3, "s": "é\n" } };
        let b = bson::doc! { "id": "y", "type": "request.sql", "body": { "z": 1, "a": [{ "y": 2, "b": 3 }] } };
        let mut frame = Vec::new();
        a.to_writer(&mut frame).unwrap();
        b.to_writer(&mut frame).unwrap();
        let mut out = Vec::new();
        write_frame(&mut out, &frame).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"id":"x","type":"request","start":1.5,"body":{"n":3,"s":"é\n"}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"id":"y","type":"request.sql","body":{"z":1,"a":[{"y":2,"b":3}]}}"#
        );
        // A broken document says so on its own line, and what follows it is not lost.
        let mut out = Vec::new();
        write_frame(&mut out, &[5, 0, 0, 0, 7]).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with(r#"{"ziggy_error":"#)
        );
    }
}
