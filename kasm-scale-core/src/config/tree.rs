//! Reading a JSON or YAML document into a JSON tree:
//! - without losing non-finite numbers: JSON has no NaN or infinity, and `serde_json::Value`
//!   turns them into `null`, which an optional field (`rate_limit_per_second: .inf`) would take
//!   as "not given". Here they become the text `inf`, `-inf` or `NaN`, which a number field
//!   refuses (see [`non_finite_message`]);
//! - refusing a key given twice in one mapping (the parsers would keep the last one silently),
//!   with the position of the second;
//! - applying YAML merge keys (`<<: *base`, or a list of them): the mapping's own keys win, then
//!   the merged mappings in their order.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON tree read from YAML (merge keys applied).
pub(crate) struct Tree(pub Value);

/// A JSON tree read from JSON (`<<` is a key like any other).
pub(crate) struct JsonTree(pub Value);

/// The key that merges mappings into a YAML mapping.
const MERGE: &str = "<<";

/// A number as a JSON value: finite floats as numbers, the others as their text.
pub(crate) fn float(v: f64) -> Value {
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

/// serde's message for a non-finite number (kept as text by [`float`]) given to a number field,
/// rewritten as "must be a finite number, got inf".
pub(crate) fn non_finite_message(message: &str) -> Option<String> {
    let (text, expected) = message
        .strip_prefix("invalid type: string \"")?
        .split_once("\", expected ")?;
    if !["inf", "-inf", "NaN"].contains(&text) {
        return None;
    }
    match expected {
        "f64" | "f32" => Some(format!("must be a finite number, got {text}")),
        "an integer" | "u32" | "u64" | "i64" | "u16" | "u8" => {
            Some(format!("must be a whole number, got {text}"))
        }
        _ => None,
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor { merge: true }).map(Tree)
    }
}

impl<'de> Deserialize<'de> for JsonTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor { merge: false })
            .map(JsonTree)
    }
}

/// Reads one value; `merge`: whether `<<` merges mappings (YAML).
#[derive(Clone, Copy)]
struct TreeVisitor {
    merge: bool,
}

impl<'de> DeserializeSeed<'de> for TreeVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| float(v as f64), Value::from))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v).map_or_else(|_| float(v as f64), Value::from))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut merged = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.merge && key == MERGE && merged.is_empty() {
                let value = map.next_value_seed(self)?;
                match value {
                    Value::Object(m) => merged.push(m),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::Object(m) => merged.push(m),
                                _ => {
                                    return Err(de::Error::custom(
                                        "`<<` (merge key) must name mappings: `<<: *base` or `<<: [*a, *b]`",
                                    ));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(de::Error::custom(
                            "`<<` (merge key) must name a mapping: `<<: *base`",
                        ));
                    }
                }
                continue;
            }
            if out.contains_key(&key) || (self.merge && key == MERGE) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        for m in merged {
            for (key, value) in m {
                out.entry(key).or_insert(value);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keeps_non_finite_numbers_as_text() {
        let Tree(v) = serde_yaml_ng::from_str("a: .inf\nb: -.inf\nc: .nan\nd: [1.5, ~]\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "inf", "b": "-inf", "c": "NaN", "d": [1.5, null]})
        );
        let e = serde_json::from_value::<f64>(v["a"].clone()).unwrap_err();
        assert_eq!(
            non_finite_message(&e.to_string()).as_deref(),
            Some("must be a finite number, got inf")
        );
    }
}
