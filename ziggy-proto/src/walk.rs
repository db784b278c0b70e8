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
    document(bytes, 0, &mut |_| {}).is_some()
}

/// Whether `bytes` is exactly one well-formed BSON document, handing each top-level element to
/// `each` once its value has been checked: one pass for the check and for reading the fields.
/// When it returns false, `each` may have seen some elements of the malformed document.
pub fn check_elements<'a>(bytes: &'a [u8], mut each: impl FnMut(Element<'a>)) -> bool {
    document(bytes, 0, &mut each).is_some()
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A document occupying all of `bytes`; `each` sees its elements (not nested ones).
fn document<'a>(bytes: &'a [u8], depth: usize, each: &mut impl FnMut(Element<'a>)) -> Option<()> {
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
        let key_end = cstring(bytes, at + 1, end)?;
        let value_end = value(bytes, kind, key_end, end, depth)?;
        each(Element {
            kind,
            key: &bytes[at + 1..key_end - 1],
            value: &bytes[key_end..value_end],
        });
        at = value_end;
    }
    (at == end).then_some(())
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// A NUL-terminated UTF-8 string starting at `at`, before `end`; returns the offset after it.
fn cstring(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
    let text = bytes.get(at..end)?;
    // Keys are short and almost always ASCII: find the NUL and see ASCII eight bytes at a time;
    // only other text pays for a UTF-8 check.
    let mut high = 0u64;
    let mut words = text.chunks_exact(8);
    let mut offset = 0;
    let nul = loop {
        let Some(word) = words.next() else {
            let rest = words.remainder();
            let nul = rest.iter().position(|&b| b == 0)?;
            high |= rest[..nul].iter().fold(0, |h, &b| h | b) as u64 & 0x80;
            break offset + nul;
        };
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // The lowest flagged byte is the first zero byte (flags above it may be false).
        let zeros = w.wrapping_sub(ONES) & !w & HIGHS;
        if zeros != 0 {
            let first = (zeros.trailing_zeros() / 8) as usize;
            let before = (1u64 << (first * 8)) - 1;
            high |= w & before & HIGHS;
            break offset + first;
        }
        high |= w & HIGHS;
        offset += 8;
    };
    if high != 0 {
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
    document(&bytes[at..stop], depth + 1, &mut |_| {})?;
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
        let mut seen: Vec<Element<'_>> = Vec::new();
        assert!(check_elements(&bytes, |e| seen.push(e)));
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

    /// The C-string scan against a byte-at-a-time reading of the same rule.
    fn cstring_by_bytes(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
        let text = bytes.get(at..end)?;
        let nul = text.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&text[..nul]).ok()?;
        Some(at + nul + 1)
    }

    #[test]
    fn cstrings_are_read_as_byte_by_byte_at_every_length_and_position() {
        // Every NUL position in strings of up to 40 bytes, with a non-ASCII byte (valid or not
        // as UTF-8) before, at or after it, and an end before or after the NUL.
        let fillers: [&[u8]; 4] = [b"k", "é".as_bytes(), b"\xff", b"\x80"];
        let mut checked = 0;
        for len in 0..40usize {
            for nul in (0..=len).chain([usize::MAX]) {
                for filler in fillers {
                    for spot in [0, len / 2, len.saturating_sub(1)] {
                        let mut text: Vec<u8> =
                            b"abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].to_vec();
                        if spot + filler.len() <= len {
                            text[spot..spot + filler.len()].copy_from_slice(filler);
                        }
                        if nul < len {
                            text[nul] = 0;
                        }
                        let bytes: Vec<u8> = [&b"xy"[..], &text, b"zz"].concat();
                        for end in [2 + len, bytes.len()] {
                            assert_eq!(
                                cstring(&bytes, 2, end),
                                cstring_by_bytes(&bytes, 2, end),
                                "{bytes:?} up to {end}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000);
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
