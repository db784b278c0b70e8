//! The readable default output: one block per event, body keys flattened to dotted paths. Every
//! text taken from an event goes through [`crate::safe::escape`] (values through its JSON writer).

use std::io::{self, Write};
use ziggy_proto::fields;

use bson::{Bson, Document};

use crate::json::{reencoding, value_text};
use crate::record::{DecodeError, Record};
use crate::safe::escape;

/// ANSI styles, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Colours on or off.
    pub fn new(on: bool) -> Self {
        Style { on }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `2024-02-29 12:00:01.123456` (UTC) of Unix seconds.
pub fn format_time(unix_secs: f64) -> String {
    let (y, m, d) = ziggy_proto::day::Day::from_unix(unix_secs).civil();
    let micros_total = (unix_secs * 1e6).round() as i64;
    let micros_of_day = micros_total.rem_euclid(86_400_000_000);
    let (h, rest) = (micros_of_day / 3_600_000_000, micros_of_day % 3_600_000_000);
    let (min, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (s, us) = (rest / 1_000_000, rest % 1_000_000);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{us:06}")
}

/// Writes one event block, indented by `indent` spaces.
pub fn write_event(
    out: &mut impl Write,
    rec: &Record,
    style: Style,
    indent: usize,
) -> io::Result<()> {
    let pad = " ".repeat(indent);
    let duration_ms = (rec.end - rec.start) * 1e3;
    write!(
        out,
        "{pad}{} {} {} id={} host={} pid={}",
        style.paint("2", &format_time(rec.start)),
        style.paint("1;36", &escape(&rec.channel)),
        style.paint("33", &format!("{duration_ms:.3}ms")),
        escape(&rec.id),
        escape(&rec.host),
        rec.pid
    )?;
    if let Some(rate) = crate::record::number(rec.doc.get(fields::SAMPLE_RATE)) {
        write!(out, " sample_rate={rate}")?;
    }
    writeln!(out)?;
    let body = rec.body();
    let mut lines = Vec::new();
    flatten("", &body, 2, &mut lines).map_err(reencoding)?;
    for line in lines {
        let key = style.paint("32", &escape(&line.key));
        writeln!(out, "{pad}  {key} = {}", line.value)?;
    }
    Ok(())
}

/// One line of a flattened body.
struct BodyLine {
    /// The dotted key.
    key: String,
    /// The value as JSON.
    value: String,
}

/// The values of `doc`, at level `depth`, under their dotted keys.
fn flatten(
    prefix: &str,
    doc: &Document,
    depth: usize,
    out: &mut Vec<BodyLine>,
) -> Result<(), DecodeError> {
    for (k, v) in doc {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Bson::Document(d) if !d.is_empty() => flatten(&key, d, depth + 1, out)?,
            other => {
                let value = value_text(other, depth)?;
                out.push(BodyLine { key, value });
            }
        }
    }
    Ok(())
}
