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

/// True when every byte is printable ASCII (the common case, checked without decoding).
fn plain_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// `s` with every character of [`needs_escape`] written as `\uXXXX` (lower-case hex).
pub fn escape(s: &str) -> Cow<'_, str> {
    if plain_ascii(s) || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
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
        // serde_json hands over fragments without C0, `"` or `\`: only DEL and non-ASCII remain.
        if fragment.is_ascii() && !fragment.as_bytes().contains(&0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
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
pub fn json_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
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
    }
}
