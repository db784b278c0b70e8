//! Reading a `Serialize` value without building a `Bson`: a serde serializer that accepts only
//! primitives (and `Option`s of them), mapping each as `bson`'s own serializer does, a string
//! into a per-thread buffer lent to the [`Scalar`]. Anything compound refuses at once, and the
//! caller converts it with `bson` instead (a custom `Serialize` may then run twice, up to its first
//! compound call).
//!
//! The value is read before the context stack is borrowed for the write: a `Serialize` impl may
//! itself call ziggy.

use std::cell::Cell;

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::tree::Value;

thread_local! {
    /// The buffer a string value is read into, lent to its [`Scalar`] (taken out of the cell, so
    /// a `Serialize` impl calling ziggy while one is lent gets a buffer of its own).
    static TEXT: Cell<String> = const { Cell::new(String::new()) };
}

/// A primitive read from a value.
#[derive(Debug, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F64(f64),
    /// The text, in this thread's lent buffer: give it back with [`Scalar::give_back`].
    Str(String),
}

impl Scalar {
    /// The value to write, its text (if a string) borrowed from the scalar.
    pub(crate) fn value(&self) -> Value<'_> {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::I32(n) => Value::I32(*n),
            Scalar::I64(n) => Value::I64(*n),
            Scalar::F64(x) => Value::F64(*x),
            Scalar::Str(s) => Value::Str(s),
        }
    }

    /// Returns a string's buffer to the thread for the next one.
    #[inline]
    pub(crate) fn give_back(self) {
        if let Scalar::Str(mut text) = self {
            text.clear();
            let _ = TEXT.try_with(|t| t.set(text));
        }
    }
}

/// Reads `value` if it is a primitive; `Err(NotPrimitive)` otherwise.
#[inline]
pub(crate) fn read_scalar<V: Serialize + ?Sized>(value: &V) -> Result<Scalar, NotPrimitive> {
    value.serialize(Capture)
}

/// The value is not a primitive: convert it with `bson`.
#[derive(Debug)]
pub(crate) struct NotPrimitive;

impl std::fmt::Display for NotPrimitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a primitive value")
    }
}

impl std::error::Error for NotPrimitive {}

impl ser::Error for NotPrimitive {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        NotPrimitive
    }
}

struct Capture;

impl Capture {
    fn put(self, value: Scalar) -> Result<Scalar, NotPrimitive> {
        Ok(value)
    }

    // Only a string takes the thread's buffer: a number costs no thread-local access.
    fn put_str(self, s: &str) -> Result<Scalar, NotPrimitive> {
        let mut text = TEXT.try_with(Cell::take).unwrap_or_default();
        text.push_str(s);
        Ok(Scalar::Str(text))
    }
}

type Refuse = Impossible<Scalar, NotPrimitive>;

impl ser::Serializer for Capture {
    type Ok = Scalar;
    type Error = NotPrimitive;
    type SerializeSeq = Refuse;
    type SerializeTuple = Refuse;
    type SerializeTupleStruct = Refuse;
    type SerializeTupleVariant = Refuse;
    type SerializeMap = Refuse;
    type SerializeStruct = Refuse;
    type SerializeStructVariant = Refuse;

    // Integer widths as `bson::serialize_to_bson` maps them: up to 32-bit signed and 16-bit
    // unsigned are Int32, u32 and i64 are Int64, a u64 above i64::MAX is refused by bson.
    fn serialize_bool(self, v: bool) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I32(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I32(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I32(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I64(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I32(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I32(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::I64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Scalar, NotPrimitive> {
        match i64::try_from(v) {
            Ok(v) => self.put(Scalar::I64(v)),
            Err(_) => Err(NotPrimitive),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::F64(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Scalar, NotPrimitive> {
        let mut buf = [0; 4];
        self.put_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Result<Scalar, NotPrimitive> {
        self.put_str(v)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Scalar, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_none(self) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Scalar, NotPrimitive> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Scalar, NotPrimitive> {
        self.put(Scalar::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Scalar, NotPrimitive> {
        self.put_str(variant)
    }
    // bson gives some newtypes (its own UUID and raw documents) a meaning of their own.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Scalar, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Scalar, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_tuple(self, _: usize) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Refuse, NotPrimitive> {
        Err(NotPrimitive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::tree::{Body, Op};

    /// Every primitive lands as `bson::serialize_to_bson` would have made it.
    #[test]
    fn primitives_match_bsons_own_mapping() {
        fn check<V: Serialize>(v: V) {
            let scalar = read_scalar(&v).expect("a primitive");
            let mut body = Body::new();
            body.write("k", scalar.value(), Op::Set);
            scalar.give_back();
            let want = bson::serialize_to_bson(&v).unwrap();
            assert_eq!(body.to_document().get("k"), Some(&want), "{want:?}");
        }
        #[derive(Serialize)]
        enum E {
            Unit,
        }
        #[derive(Serialize)]
        struct U;
        check(true);
        check(-5i8);
        check(300i16);
        check(-7i32);
        check(1i64 << 40);
        check(200u8);
        check(60000u16);
        check(u32::MAX);
        check(i64::MAX as u64);
        check(1.5f32);
        check(f64::NAN.min(2.5));
        check('é');
        check("text");
        check(String::from("owned"));
        check(None::<i32>);
        check(Some(3));
        check(());
        check(U);
        check(E::Unit);
    }

    #[test]
    fn compound_values_are_left_to_bson() {
        assert!(read_scalar(&vec![1, 2]).is_err());
        assert!(read_scalar(&u64::MAX).is_err());
        assert!(read_scalar(&b"raw"[..]).is_err());
        assert!(
            bson::serialize_to_bson(&u64::MAX).is_err(),
            "bson refuses it too"
        );
    }
}
