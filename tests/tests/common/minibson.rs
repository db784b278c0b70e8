//! A small BSON decoder written from the spec (bsonspec.org), independent of the `bson` crate, so
//! file-format tests do not check the writer with the writer's own library.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// A decoded value (the types ziggy events use, plus the common rest).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Double(f64),
    String(String),
    Doc(Vec<(String, Value)>),
    Array(Vec<Value>),
    Binary(u8, Vec<u8>),
    Bool(bool),
    DateTime(i64),
    Null,
    Int32(i32),
    Int64(i64),
    Other(u8),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Doc(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int32(v) => Some(*v as i64),
            Value::Int64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn double(&self) -> Option<f64> {
        match self {
            Value::Double(v) => Some(*v),
            _ => None,
        }
    }

    pub fn keys(&self) -> BTreeMap<&str, &Value> {
        match self {
            Value::Doc(f) => f.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// Error with the byte offset where decoding failed.
#[derive(Debug)]
pub struct DecodeError(pub usize, pub &'static str);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.pos + n > self.buf.len() {
            return Err(DecodeError(self.pos, "truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn cstring(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError(self.pos, "unterminated cstring"))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| DecodeError(self.pos, "cstring not utf-8"))?;
        self.pos += end + 1;
        Ok(s.to_owned())
    }
    fn document(&mut self) -> Result<Vec<(String, Value)>, DecodeError> {
        let start = self.pos;
        let len = self.i32()?;
        if len < 5 || start + len as usize > self.buf.len() {
            return Err(DecodeError(start, "bad document length"));
        }
        let end = start + len as usize;
        let mut fields = Vec::new();
        loop {
            let tag = self.take(1)?[0];
            if tag == 0 {
                break;
            }
            let key = self.cstring()?;
            let value = match tag {
                0x01 => Value::Double(f64::from_le_bytes(self.take(8)?.try_into().unwrap())),
                0x02 => {
                    let n = self.i32()?;
                    if n < 1 {
                        return Err(DecodeError(self.pos, "bad string length"));
                    }
                    let bytes = self.take(n as usize)?;
                    if bytes[bytes.len() - 1] != 0 {
                        return Err(DecodeError(self.pos, "string not NUL-terminated"));
                    }
                    Value::String(
                        String::from_utf8(bytes[..bytes.len() - 1].to_vec())
                            .map_err(|_| DecodeError(self.pos, "string not utf-8"))?,
                    )
                }
                0x03 => Value::Doc(self.document()?),
                0x04 => Value::Array(self.document()?.into_iter().map(|(_, v)| v).collect()),
                0x05 => {
                    let n = self.i32()?;
                    let sub = self.take(1)?[0];
                    Value::Binary(sub, self.take(n.max(0) as usize)?.to_vec())
                }
                0x07 => {
                    self.take(12)?;
                    Value::Other(tag)
                }
                0x08 => Value::Bool(self.take(1)?[0] != 0),
                0x09 => Value::DateTime(i64::from_le_bytes(self.take(8)?.try_into().unwrap())),
                0x0A => Value::Null,
                0x10 => Value::Int32(self.i32()?),
                0x11 | 0x12 => Value::Int64(i64::from_le_bytes(self.take(8)?.try_into().unwrap())),
                0x13 => {
                    self.take(16)?;
                    Value::Other(tag)
                }
                _ => return Err(DecodeError(self.pos, "unsupported element type")),
            };
            fields.push((key, value));
        }
        if self.pos != end {
            return Err(DecodeError(self.pos, "document length mismatch"));
        }
        Ok(fields)
    }
}

/// Decodes a file of concatenated documents; every document must decode.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut docs = Vec::new();
    while r.pos < bytes.len() {
        docs.push(Value::Doc(r.document()?));
    }
    Ok(docs)
}
