//! Writing a `Serialize` value without building a `Bson` first: a serde serializer that accepts
//! only primitives (and `Option`s and newtypes of them), mapping each as `bson`'s own serializer
//! does, and writes it into the body at once. Anything compound refuses before writing, and the
//! caller converts it with `bson` instead.

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::WriteOutcome;
use super::tree::{Body, Op, Value};

/// Writes `value` at `key` if it is a primitive; `Err(NotPrimitive)` (nothing written) otherwise.
#[inline]
pub(crate) fn write_serialize<V: Serialize + ?Sized>(
    body: &mut Body,
    key: &str,
    value: &V,
    op: Op,
) -> Result<WriteOutcome, NotPrimitive> {
    value.serialize(Capture { body, key, op })
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

struct Capture<'b, 'k> {
    body: &'b mut Body,
    key: &'k str,
    op: Op,
}

impl Capture<'_, '_> {
    fn put(self, value: Value<'_>) -> Result<WriteOutcome, NotPrimitive> {
        if self.op == Op::Add && !value.is_number() {
            // `add` of a non-number: the caller counts it as invalid, as for any other value.
            return Err(NotPrimitive);
        }
        Ok(self.body.write(self.key, value, self.op))
    }
}

type Refuse = Impossible<WriteOutcome, NotPrimitive>;

impl<'b, 'k> ser::Serializer for Capture<'b, 'k> {
    type Ok = WriteOutcome;
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
    fn serialize_bool(self, v: bool) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I32(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I32(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I32(v))
    }
    fn serialize_i64(self, v: i64) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I64(v))
    }
    fn serialize_u8(self, v: u8) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I32(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I32(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::I64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<WriteOutcome, NotPrimitive> {
        match i64::try_from(v) {
            Ok(v) => self.put(Value::I64(v)),
            Err(_) => Err(NotPrimitive),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::F64(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<WriteOutcome, NotPrimitive> {
        let mut buf = [0; 4];
        self.put(Value::Str(v.encode_utf8(&mut buf)))
    }
    fn serialize_str(self, v: &str) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Str(v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<WriteOutcome, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_none(self) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<WriteOutcome, NotPrimitive> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<WriteOutcome, NotPrimitive> {
        self.put(Value::Str(variant))
    }
    // bson gives some newtypes (its own UUID and raw documents) a meaning of their own.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<WriteOutcome, NotPrimitive> {
        Err(NotPrimitive)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<WriteOutcome, NotPrimitive> {
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

    /// Every primitive lands as `bson::serialize_to_bson` would have made it.
    #[test]
    fn primitives_match_bsons_own_mapping() {
        fn check<V: Serialize>(v: V) {
            let mut body = Body::new();
            write_serialize(&mut body, "k", &v, Op::Set).expect("a primitive");
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
        let mut body = Body::new();
        assert!(write_serialize(&mut body, "k", &vec![1, 2], Op::Set).is_err());
        assert!(write_serialize(&mut body, "k", &u64::MAX, Op::Set).is_err());
        assert!(write_serialize(&mut body, "k", &b"raw"[..], Op::Set).is_err());
        assert!(write_serialize(&mut body, "k", "x", Op::Add).is_err());
        assert!(body.is_empty());
        assert!(
            bson::serialize_to_bson(&u64::MAX).is_err(),
            "bson refuses it too"
        );
    }
}
