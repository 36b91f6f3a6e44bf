//! Reading a YAML document into a JSON tree without losing non-finite numbers: JSON has no
//! NaN or infinity, and `serde_json::Value` turns them into `null`, which an optional field
//! (`rate_limit_per_second: .inf`) would take as "not given". Here they become the text `inf`,
//! `-inf` or `NaN`, which a number field refuses (see [`non_finite_message`]).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON tree read from any self-describing format.
pub(crate) struct Tree(pub Value);

/// A number as a JSON value: finite floats as numbers, the others as their text.
pub(crate) fn float(v: f64) -> Value {
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

/// serde's message for a non-finite number (kept as text by [`float`]) given to a number field,
/// rewritten as "must be a finite number, got inf".
pub(crate) fn non_finite_message(message: &str) -> Option<String> {
    let text = message
        .strip_prefix("invalid type: string \"")?
        .strip_suffix("\", expected f64")?;
    ["inf", "-inf", "NaN"]
        .contains(&text)
        .then(|| format!("must be a finite number, got {text}"))
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

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
        Tree::deserialize(d).map(|t| t.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((key, Tree(value))) = map.next_entry::<String, Tree>()? {
            out.insert(key, value);
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
