//! A single-pass structural check of BSON bytes, for the validator's hot path.
//!
//! `bson`'s raw iterator builds a typed value per element and was most of the collector's time in
//! a profile (perf, `bench/e2e.sh`). This walk only checks what a reader needs to decode the
//! bytes: lengths inside their bounds, terminating NULs, UTF-8 keys and strings, known element
//! types, valid booleans, nesting depth. It accepts nothing that `bson::Document::from_reader`
//! rejects (checked by proptest in `tests/fuzz_inputs.rs` and by `cargo fuzz run frame`).

/// Deepest nesting accepted, so a hostile frame cannot exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// Whether `bytes` is exactly one well-formed BSON document.
pub fn is_well_formed(bytes: &[u8]) -> bool {
    document(bytes, 0).is_some()
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A document occupying all of `bytes`.
fn document(bytes: &[u8], depth: usize) -> Option<()> {
    if depth > MAX_DEPTH || bytes.len() < 5 || i32_at(bytes, 0)? as usize != bytes.len() {
        return None;
    }
    if *bytes.last()? != 0 {
        return None;
    }
    let end = bytes.len() - 1;
    let mut at = 4;
    while at < end {
        let kind = bytes[at];
        at = cstring(bytes, at + 1, end)?;
        at = value(bytes, kind, at, end, depth)?;
    }
    (at == end).then_some(())
}

/// A NUL-terminated UTF-8 string starting at `at`, before `end`; returns the offset after it.
fn cstring(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
    let text = bytes.get(at..end)?;
    // Keys are short and almost always ASCII: find the NUL and see ASCII in one pass; only
    // other text pays for a UTF-8 check.
    let mut ascii = true;
    let nul = text.iter().position(|&b| {
        ascii &= b < 0x80;
        b == 0
    })?;
    if !ascii {
        std::str::from_utf8(&text[..nul]).ok()?;
    }
    Some(at + nul + 1)
}

/// A length-prefixed UTF-8 string (`int32 len, bytes, NUL`) at `at`; returns the offset after it.
fn string(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
    let len = usize::try_from(i32_at(bytes, at)?).ok()?;
    let start = at + 4;
    let stop = start.checked_add(len)?;
    if len < 1 || stop > end || bytes[stop - 1] != 0 {
        return None;
    }
    let text = &bytes[start..stop - 1];
    if !text.is_ascii() {
        std::str::from_utf8(text).ok()?;
    }
    Some(stop)
}

/// An embedded document (or array) at `at`; returns the offset after it.
fn embedded(bytes: &[u8], at: usize, end: usize, depth: usize) -> Option<usize> {
    let len = usize::try_from(i32_at(bytes, at)?).ok()?;
    let stop = at.checked_add(len)?;
    if stop > end {
        return None;
    }
    document(&bytes[at..stop], depth + 1)?;
    Some(stop)
}

fn fixed(at: usize, size: usize, end: usize) -> Option<usize> {
    let stop = at + size;
    (stop <= end).then_some(stop)
}

/// The value of an element of type `kind` at `at`; returns the offset after it.
fn value(bytes: &[u8], kind: u8, at: usize, end: usize, depth: usize) -> Option<usize> {
    match kind {
        0x01 | 0x09 | 0x11 | 0x12 => fixed(at, 8, end), // double, datetime, timestamp, int64
        0x10 => fixed(at, 4, end),                      // int32
        0x13 => fixed(at, 16, end),                     // decimal128
        0x07 => fixed(at, 12, end),                     // ObjectId
        0x06 | 0x0A | 0x7F | 0xFF => Some(at),          // undefined, null, max key, min key
        0x08 => match bytes.get(at) {
            Some(0 | 1) if at < end => Some(at + 1),
            _ => None,
        },
        0x02 | 0x0D | 0x0E => string(bytes, at, end), // string, JavaScript code, symbol
        0x03 | 0x04 => embedded(bytes, at, end, depth), // document, array
        0x05 => {
            let len = usize::try_from(i32_at(bytes, at)?).ok()?;
            let subtype = *bytes.get(at + 4)?;
            let stop = (at + 5).checked_add(len)?;
            if stop > end {
                return None;
            }
            if subtype == 0x02 {
                // The old binary subtype repeats the length inside: it must agree.
                let inner = usize::try_from(i32_at(bytes, at + 5)?).ok()?;
                if len < 4 || inner != len - 4 {
                    return None;
                }
            }
            Some(stop)
        }
        0x0B => {
            let after_pattern = cstring(bytes, at, end)?;
            cstring(bytes, after_pattern, end)
        }
        0x0C => fixed(string(bytes, at, end)?, 12, end), // DBPointer: namespace, ObjectId
        0x0F => {
            // Code with scope: total length, code string, scope document.
            let total = usize::try_from(i32_at(bytes, at)?).ok()?;
            let stop = at.checked_add(total)?;
            if total < 14 || stop > end {
                return None;
            }
            let after_code = string(bytes, at + 4, stop)?;
            (embedded(bytes, after_code, stop, depth)? == stop).then_some(stop)
        }
        _ => None,
    }
}

/// One top-level element: its BSON type byte, key and value bytes.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    /// The type byte (0x02 string, 0x03 document, ...).
    pub kind: u8,
    /// The key, without its NUL.
    pub key: &'a [u8],
    /// The value's bytes, as laid out in BSON.
    pub value: &'a [u8],
}

/// The top-level elements of a document that [`is_well_formed`] accepted, without decoding or
/// checking them again.
pub fn elements(doc: &[u8]) -> impl Iterator<Item = Element<'_>> {
    let end = doc.len().saturating_sub(1);
    let mut at = 4;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let kind = doc[at];
        let key_start = at + 1;
        let nul = key_start + doc.get(key_start..end)?.iter().position(|&b| b == 0)?;
        let value_start = nul + 1;
        let value_end = skip(doc, kind, value_start, end)?;
        at = value_end;
        Some(Element {
            kind,
            key: &doc[key_start..nul],
            value: &doc[value_start..value_end],
        })
    })
}

/// The end of a value of type `kind` at `at`, from its length fields only.
fn skip(bytes: &[u8], kind: u8, at: usize, end: usize) -> Option<usize> {
    let len = |at: usize| usize::try_from(i32_at(bytes, at)?).ok();
    let stop = match kind {
        0x01 | 0x09 | 0x11 | 0x12 => at + 8,
        0x10 => at + 4,
        0x13 => at + 16,
        0x07 => at + 12,
        0x06 | 0x0A | 0x7F | 0xFF => at,
        0x08 => at + 1,
        0x02 | 0x0D | 0x0E => at + 4 + len(at)?,
        0x03 | 0x04 | 0x0F => at + len(at)?,
        0x05 => at + 5 + len(at)?,
        0x0B => {
            let pattern_end = at + bytes.get(at..end)?.iter().position(|&b| b == 0)? + 1;
            pattern_end + bytes.get(pattern_end..end)?.iter().position(|&b| b == 0)? + 1
        }
        0x0C => at + 4 + len(at)? + 12,
        _ => return None,
    };
    (stop <= end).then_some(stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, doc, spec::BinarySubtype};

    #[test]
    fn accepts_what_bson_writes() {
        let d = doc! {
            "f": 1.5, "s": "text", "d": { "a": [1, 2i64, "x", { "deep": null }] }, "t": true,
            "b": Binary { subtype: BinarySubtype::Generic, bytes: b"old".to_vec() },
            "old": Binary { subtype: BinarySubtype::BinaryOld, bytes: b"old".to_vec() },
            "when": bson::DateTime::from_millis(0), "oid": bson::oid::ObjectId::new(),
            "re": bson::Regex { pattern: "a.*".try_into().unwrap(), options: "i".try_into().unwrap() },
            "ts": bson::Timestamp { time: 1, increment: 2 },
            "code": bson::Bson::JavaScriptCode("f()".into()),
            "scoped": bson::JavaScriptCodeWithScope { code: "g()".into(), scope: doc! { "x": 1 } },
            "min": bson::Bson::MinKey, "max": bson::Bson::MaxKey, "u": bson::Bson::Undefined,
        };
        assert!(is_well_formed(&d.to_vec().unwrap()));
    }

    #[test]
    fn elements_are_the_top_level_ones() {
        let d = doc! { "a": 1, "s": "x", "d": { "n": [1, 2] }, "f": 2.5 };
        let bytes = d.to_vec().unwrap();
        let seen: Vec<Element<'_>> = elements(&bytes).collect();
        let shape: Vec<(u8, &[u8])> = seen.iter().map(|e| (e.kind, e.key)).collect();
        assert_eq!(
            shape,
            [(0x10, &b"a"[..]), (0x02, b"s"), (0x03, b"d"), (0x01, b"f")]
        );
        assert_eq!(seen[0].value, 1i32.to_le_bytes());
        assert_eq!(seen[1].value, b"\x02\0\0\0x\0");
        assert!(is_well_formed(seen[2].value));
        assert_eq!(seen[3].value, 2.5f64.to_le_bytes());
    }

    #[test]
    fn refuses_damage() {
        let good = doc! { "s": "text", "n": { "b": true } }.to_vec().unwrap();
        let mut cut = good.clone();
        cut.pop();
        assert!(!is_well_formed(&cut));
        let mut bad_bool = good.clone();
        let at = bad_bool.len() - 3; // the bool's byte inside the nested doc
        bad_bool[at] = 2;
        assert!(!is_well_formed(&bad_bool));
        let mut bad_utf8 = good.clone();
        let at = bad_utf8.windows(4).position(|w| w == b"text").unwrap();
        bad_utf8[at] = 0xff;
        assert!(!is_well_formed(&bad_utf8));
        let mut unknown_type = good;
        unknown_type[4] = 0x20;
        assert!(!is_well_formed(&unknown_type));
        // Nested past the depth limit.
        let mut deep = doc! { "x": 1 };
        for _ in 0..=MAX_DEPTH {
            deep = doc! { "x": deep };
        }
        assert!(!is_well_formed(&deep.to_vec().unwrap()));
    }
}
