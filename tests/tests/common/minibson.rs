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
    decode_all_of(bytes)
}

/// Decodes the whole documents of a file a daemon may be writing right now: a document cut short
/// at the very end (a write in progress) is left out; damage anywhere else is an error.
pub fn decode_complete(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut end = 0;
    while end + 4 <= bytes.len() {
        let len = i32::from_le_bytes(bytes[end..end + 4].try_into().unwrap());
        if len < 5 {
            return decode_all_of(bytes); // damage, not a write in progress: the error says where
        }
        if end + len as usize > bytes.len() {
            break;
        }
        end += len as usize;
    }
    decode_all_of(&bytes[..end])
}

fn decode_all_of(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let mut docs = Vec::new();
    while r.pos < bytes.len() {
        docs.push(Value::Doc(r.document()?));
    }
    Ok(docs)
}

/// Encodes a document (an independent encoder, for writing test files).
pub fn encode(fields: &[(&str, Value)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        encode_element(&mut body, k, v);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&((body.len() + 5) as i32).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0);
    out
}

fn encode_element(out: &mut Vec<u8>, key: &str, v: &Value) {
    let tag = match v {
        Value::Double(_) => 0x01,
        Value::String(_) => 0x02,
        Value::Doc(_) => 0x03,
        Value::Array(_) => 0x04,
        Value::Binary(..) => 0x05,
        Value::Bool(_) => 0x08,
        Value::DateTime(_) => 0x09,
        Value::Null => 0x0A,
        Value::Int32(_) => 0x10,
        Value::Int64(_) => 0x12,
        Value::Other(_) => panic!("cannot encode Other"),
    };
    out.push(tag);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    match v {
        Value::Double(d) => out.extend_from_slice(&d.to_le_bytes()),
        Value::String(s) => {
            out.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Doc(fields) => {
            let refs: Vec<(&str, Value)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            out.extend(encode(&refs));
        }
        Value::Array(items) => {
            let keys: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            let refs: Vec<(&str, Value)> = keys
                .iter()
                .map(String::as_str)
                .zip(items.iter().cloned())
                .collect();
            out.extend(encode(&refs));
        }
        Value::Binary(sub, bytes) => {
            out.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
            out.push(*sub);
            out.extend_from_slice(bytes);
        }
        Value::Bool(b) => out.push(*b as u8),
        Value::DateTime(ms) => out.extend_from_slice(&ms.to_le_bytes()),
        Value::Null => {}
        Value::Int32(i) => out.extend_from_slice(&i.to_le_bytes()),
        Value::Int64(i) => out.extend_from_slice(&i.to_le_bytes()),
        Value::Other(_) => unreachable!(),
    }
}

/// A ziggy event built with the independent encoder.
pub fn event(id: &str, channel: &str, start: f64, end: f64, body: Vec<(&str, Value)>) -> Vec<u8> {
    let body = Value::Doc(body.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    encode(&[
        ("id", Value::String(id.into())),
        ("type", Value::String(channel.into())),
        ("host", Value::String("web1".into())),
        ("pid", Value::Int32(42)),
        ("start", Value::Double(start)),
        ("end", Value::Double(end)),
        ("body", body),
    ])
}
