//! serde helpers shared by the configuration types: whole numbers and ranged integers with plain
//! messages, numbers written briefly for messages, and JSON values that Kasm stores as strings.
//! The named ranges of [`super::bounds`] build on them (this file imports nothing from there).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A number for messages: plain (`0.5`, `604800`) when short, else in exponent form (`1e300`,
/// `1e-300`) rather than Rust's hundreds of digits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_finite() && v != 0.0 && !(1e-4..1e15).contains(&v.abs()) {
            write!(f, "{v:e}")
        } else {
            write!(f, "{v}")
        }
    }
}

/// Reads any whole number: `Ok(n)`, or `Err(v)` for a whole float too large for `i128`
/// (`1e300`), which callers report as out of range. A fraction is an error.
pub(crate) fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Result<i128, f64>, D::Error> {
    struct Int;
    impl Visitor<'_> for Int {
        type Value = Result<i128, f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Ok(v.into()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Ok(v.into()))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            Ok(Ok(v))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            Ok(i128::try_from(v).map_err(|_| v as f64))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v.fract() == 0.0 {
                Ok(if v.abs() < 1e30 {
                    Ok(v as i128)
                } else {
                    Err(v)
                })
            } else {
                Err(E::custom(format!("must be a whole number, got {}", Num(v))))
            }
        }
    }
    d.deserialize_any(Int)
}

/// Reads any integer and checks it against `[min, max]`, so that `-1` or `70000` is reported as
/// "must be between …" instead of a type error.
fn ranged<'de, D: Deserializer<'de>>(d: D, min: i128, max: i128) -> Result<i128, D::Error> {
    let open_ended = max == i128::from(u32::MAX);
    let message = |got: &dyn fmt::Display, above: bool| match (open_ended, above) {
        (true, true) => format!("must be at most {max}, got {got}"),
        (true, false) => format!("must be at least {min}, got {got}"),
        (false, _) => format!("must be between {min} and {max}, got {got}"),
    };
    match whole_number(d)? {
        Ok(v) if v < min || v > max => Err(de::Error::custom(message(&v, v > max))),
        Ok(v) => Ok(v),
        Err(huge) => Err(de::Error::custom(message(&Num(huge), huge > 0.0))),
    }
}

/// A `u32` that is at least 0 (a negative number is reported as such, not as a type error).
pub(crate) fn non_negative_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 0, u32::MAX.into()).map(|v| v as u32)
}

/// A `u32` that is at least 1.
pub(crate) fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 1, u32::MAX.into()).map(|v| v as u32)
}

/// An optional `u32` that is at least 1.
pub(crate) fn opt_positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    positive_u32(d).map(Some)
}

/// An optional TCP port, 1 to 65535.
pub(crate) fn opt_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    ranged(d, 1, 65535).map(|v| Some(v as u16))
}

/// A JSON object, given either inline (a table / mapping) or as a string holding JSON, which is
/// how Kasm stores `connection_info`, `aws_ec2_config_override` and the like.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let value = match value {
            serde_json::Value::String(text) if text.trim().is_empty() => {
                return Ok(Self::default());
            }
            serde_json::Value::String(text) => serde_json::from_str(&text)
                .map_err(|e| de::Error::custom(format!("is not valid JSON: {e}")))?,
            other => other,
        };
        match value {
            serde_json::Value::Object(map) => Ok(Self(map)),
            other => Err(de::Error::custom(format!(
                "must be a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

/// A map of string tags, given inline or as a JSON string (Kasm's storage of custom tags).
/// Values that are numbers or booleans are turned into their text.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Tags(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let JsonObject(map) = JsonObject::deserialize(d)?;
        let mut tags = BTreeMap::new();
        for (key, value) in map {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "tag `{key}` must be a string, got {}",
                        json_kind(&other)
                    )));
                }
            };
            tags.insert(key, text);
        }
        Ok(Self(tags))
    }
}

/// "an array", "a number", … for messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn yes() -> bool {
    true
}

/// Merges `patch` into `base`, the way `*_config_override` fields are applied: objects key by
/// key, recursively, a `null` removing the key (RFC 7396 merge patch); a list of objects whose
/// field name `identity` maps to an identity key (`DeviceName`, `lun`, …) element by element on
/// that key, elements with a new identity appended; every other list and scalar replaced.
pub fn merge_json(
    base: &mut serde_json::Value,
    patch: &serde_json::Value,
    identity: fn(&str) -> Option<&'static str>,
) {
    merge_in(base, patch, None, identity);
}

fn merge_in(
    base: &mut serde_json::Value,
    patch: &serde_json::Value,
    field: Option<&str>,
    identity: fn(&str) -> Option<&'static str>,
) {
    use serde_json::Value;
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (key, value) in p {
                if value.is_null() {
                    b.remove(key);
                } else if let Some(existing) = b.get_mut(key) {
                    merge_in(existing, value, Some(key), identity);
                } else {
                    b.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if field.and_then(identity).is_some() => {
            let id = field.and_then(identity).unwrap_or_default();
            for element in p {
                let key = element.get(id);
                match b.iter_mut().find(|e| key.is_some() && e.get(id) == key) {
                    Some(existing) => merge_in(existing, element, None, identity),
                    None => b.push(element.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Ports {
        #[serde(default, deserialize_with = "opt_port")]
        port: Option<u16>,
        #[serde(default, deserialize_with = "non_negative_u32")]
        min: u32,
    }

    #[test]
    fn ranges_report_plain_reasons() {
        let e = serde_json::from_str::<Ports>(r#"{"port": 70000}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("must be between 1 and 65535, got 70000"),
            "{e}"
        );
        let e = serde_json::from_str::<Ports>(r#"{"port": 0}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("must be between 1 and 65535, got 0"),
            "{e}"
        );
        let e = serde_json::from_str::<Ports>(r#"{"min": -1}"#).unwrap_err();
        assert!(
            e.to_string().starts_with("must be at least 0, got -1"),
            "{e}"
        );
        let ok = serde_json::from_str::<Ports>(r#"{"port": 3389, "min": 2}"#).unwrap();
        assert_eq!((ok.port, ok.min), (Some(3389), 2));
    }

    #[test]
    fn json_object_accepts_inline_or_string() {
        let a: JsonObject = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let b: JsonObject = serde_json::from_str(r#""{\"a\": 1}""#).unwrap();
        assert_eq!(a, b);
        let e = serde_json::from_str::<JsonObject>(r#""[1]""#).unwrap_err();
        assert!(
            e.to_string()
                .contains("must be a JSON object, got an array"),
            "{e}"
        );
        let e = serde_json::from_str::<JsonObject>(r#""{oops""#).unwrap_err();
        assert!(e.to_string().contains("is not valid JSON"), "{e}");
        let t: Tags = serde_json::from_str(r#""{\"team\": \"vdi\", \"n\": 3}""#).unwrap();
        assert_eq!(t.0["n"], "3");
    }
}
