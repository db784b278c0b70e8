//! BSON elements written by hand: by the event encoder, the body's encoder, and the identity's
//! pre-encoded `host` and `pid`.

/// BSON element types.
pub(crate) mod tag {
    pub const DOUBLE: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const DOCUMENT: u8 = 0x03;
    pub const BOOLEAN: u8 = 0x08;
    pub const NULL: u8 = 0x0A;
    pub const INT32: u8 = 0x10;
    pub const INT64: u8 = 0x12;
}

/// An element's type and name (the name must hold no NUL).
#[inline]
pub(crate) fn key(out: &mut Vec<u8>, tag: u8, name: &str) {
    out.push(tag);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
}

/// A string element.
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, name: &str, value: &str) {
    utf8_string(out, name, value.as_bytes());
}

/// A string element from bytes the caller knows are UTF-8.
#[inline]
pub(crate) fn utf8_string(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    key(out, tag::STRING, name);
    out.extend_from_slice(&(value.len() as i32 + 1).to_le_bytes());
    out.extend_from_slice(value);
    out.push(0);
}

/// A double element.
#[inline]
pub(crate) fn double(out: &mut Vec<u8>, name: &str, value: f64) {
    key(out, tag::DOUBLE, name);
    out.extend_from_slice(&value.to_le_bytes());
}
