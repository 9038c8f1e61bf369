//! `AutoOr<T>`: a field that is either the string `auto` or a value (an int-or-string in
//! the CRD schema, so it stays structural).

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `auto` (the default: chosen from the data) or an explicit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOr<T> {
    #[default]
    Auto,
    Value(T),
}

impl<T: Copy> AutoOr<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Self::Auto => None,
            Self::Value(v) => Some(v),
        }
    }
}

impl Serialize for AutoOr<u32> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Value(v) => s.serialize_u32(*v),
        }
    }
}

impl<'de> Deserialize<'de> for AutoOr<u32> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AutoOr<u32>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer or \"auto\"")
            }
            // Only the string `auto`, as the CRD's CEL rule on the field (image.rs) allows:
            // a manifest `aperture run` accepts must also pass `kubectl apply`.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "auto" {
                    Ok(AutoOr::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(AutoOr::Value)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(AutoOr::Value)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for AutoOr<u32> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrAuto".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "description": "a positive integer, or \"auto\" to choose from the data"
        })
    }
}
