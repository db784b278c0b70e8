//! Terminal-safe text. Event fields are written by whoever can reach the daemon, so nothing from an
//! event reaches the terminal raw: control characters (C0, DEL, C1 such as U+0085 and U+009B),
//! bidirectional overrides and isolates, and the Unicode line separators are printed as `\uXXXX`,
//! in readable output ([`escape`]) and in JSON output ([`write_json`]: still valid JSON, the same
//! value once parsed). A backslash is left as it is, so `\u001b` in readable output may also be
//! those six characters in the event.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// Whether `c` must not reach a terminal raw: Unicode category Cc (U+0000-U+001F, U+007F-U+009F),
/// the bidi marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069), and the line and paragraph separators (U+2028, U+2029).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Where the first character that may need escaping starts, found on the bytes without decoding:
/// a C0 byte, DEL, or the lead byte of the UTF-8 ranges holding C1 (0xC2), U+061C (0xD8) and the
/// U+2000 block (0xE2). Continuation bytes (0x80-0xBF) never match.
fn first_suspect(s: &str) -> Option<usize> {
    s.bytes()
        .position(|b| b < 0x20 || matches!(b, 0x7F | 0xC2 | 0xD8 | 0xE2))
}

/// `s` with every character that must not reach a terminal raw (control characters, bidi
/// overrides and isolates, line separators: see `needs_escape`) written as `\uXXXX` (lower-case
/// hex).
pub fn escape(s: &str) -> Cow<'_, str> {
    let Some(from) = first_suspect(s) else {
        return Cow::Borrowed(s);
    };
    if !s[from..].chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..from]);
    for c in s[from..].chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// serde_json's compact formatter, also escaping what [`needs_escape`] names (serde_json escapes
/// only C0, `"` and `\`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json hands over fragments without C0, `"` or `\`: plain ASCII but DEL is safe
        // (both checks run a word at a time).
        if fragment.is_ascii() && !fragment.as_bytes().contains(&0x7F) {
            return writer.write_all(fragment.as_bytes());
        }
        let from = first_suspect(fragment).unwrap_or(fragment.len());
        let mut start = 0;
        for (i, c) in fragment[from..].char_indices() {
            let i = from + i;
            if needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// What a byte needs inside a JSON string: 0 nothing, 1 a JSON escape (C0, `"`, `\`), 2 a look at
/// the character it starts (see [`first_suspect`]).
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = 1;
        b += 1;
    }
    table[b'"' as usize] = 1;
    table[b'\\' as usize] = 1;
    table[0x7F] = 2;
    table[0xC2] = 2;
    table[0xD8] = 2;
    table[0xE2] = 2;
    table
};

/// Writes `s` as a JSON string, byte for byte what [`write_json`] writes, in one pass (the hot
/// path of `--json`).
pub fn write_json_str<W: io::Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    let bytes = s.as_bytes();
    out.write_all(b"\"")?;
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let c = match CLASS[b as usize] {
            0 => {
                i += 1;
                continue;
            }
            1 => char::from(b),
            // A class-2 byte is ASCII or a lead byte: `i` is a character boundary.
            _ => match s[i..].chars().next() {
                Some(c) if needs_escape(c) => c,
                Some(c) => {
                    i += c.len_utf8();
                    continue;
                }
                None => break,
            },
        };
        out.write_all(&bytes[start..i])?;
        match c {
            '"' => out.write_all(b"\\\"")?,
            '\\' => out.write_all(b"\\\\")?,
            '\n' => out.write_all(b"\\n")?,
            '\r' => out.write_all(b"\\r")?,
            '\t' => out.write_all(b"\\t")?,
            '\u{8}' => out.write_all(b"\\b")?,
            '\u{c}' => out.write_all(b"\\f")?,
            c => write!(out, "\\u{:04x}", c as u32)?,
        }
        i += c.len_utf8();
        start = i;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// Writes `value` as compact JSON with [`SafeFormatter`].
pub fn write_json<W: io::Write, T: serde::Serialize + ?Sized>(
    out: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, SafeFormatter);
    value.serialize(&mut ser)
}

/// `value` as compact JSON text with [`SafeFormatter`].
#[cfg(test)]
fn json_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    // Writing into a Vec fails only for values serde_json cannot represent (none of ours).
    let _ = write_json(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\u{1b}]0;t\u{7}\u{1b}[2J\u{7f}\u{85}\u{9b}\u{202e}\u{2066}\u{2028}é";

    #[test]
    fn escapes_every_terminal_control() {
        assert_eq!(
            escape(HOSTILE),
            "a\\u001b]0;t\\u0007\\u001b[2J\\u007f\\u0085\\u009b\\u202e\\u2066\\u2028é"
        );
        assert!(matches!(escape("plain text é"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_valid_and_equal_once_parsed() {
        let value = serde_json::json!({ HOSTILE: [HOSTILE, "x\"\\\n"] });
        let text = json_string(&value);
        assert!(!text.chars().any(needs_escape), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
        // The one-pass string writer writes the same bytes.
        let odd = "x\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}";
        for s in [HOSTILE, odd, "", "é\u{2029}\u{61c}€\u{2030}\u{c3}"] {
            let mut fast = Vec::new();
            write_json_str(&mut fast, s).unwrap();
            assert_eq!(String::from_utf8(fast).unwrap(), json_string(s), "{s:?}");
        }
    }
}
