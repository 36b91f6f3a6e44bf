//! [`Secret`]: a string that never shows its value in `Debug`, `Display`, logs or errors.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Text shown instead of a secret's value.
pub const REDACTED: &str = "<redacted>";

/// A secret value: a password, a client secret, a private key, a join credential or a token.
///
/// `Debug` and `Display` print [`REDACTED`], never the value; a type error while loading a
/// secret field names the field but not what was found there. The only ways to reach the value
/// are [`Secret::expose`] and serialization (so that a configuration can be written back out):
/// both are explicit, and neither is used by logging.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::Secret;
///
/// let password = Secret::new("Xy7!q9mT2#vL8@pR4");
/// assert_eq!(format!("{password:?} {password}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(password.expose(), "Xy7!q9mT2#vL8@pR4");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call it only where the value must leave the process (an API call, a
    /// rendered startup script), never to log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Accepts only a string, and on anything else says so without quoting what it found.
struct SecretVisitor;

const NOT_A_STRING: &str = "a secret must be a string (the value found is not shown)";

macro_rules! reject {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<Secret, E> {
            Err(E::custom(NOT_A_STRING))
        })*
    };
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    reject!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
        visit_f64: f64, visit_char: char, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(NOT_A_STRING))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(NOT_A_STRING))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, so that a wrong type reaches the visitor (which does not quote it)
        // instead of the deserializer's own message (which would).
        deserializer.deserialize_any(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-Passw0rd");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), "hunter2-Passw0rd");
    }

    #[test]
    fn wrong_type_error_does_not_quote_the_value() {
        let err = serde_json::from_str::<Secret>("123456789")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("123456789"), "{err}");
        assert!(err.contains("must be a string"), "{err}");
        let err = serde_json::from_str::<Secret>("[\"pw\"]")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn serializes_the_value_for_round_trips() {
        let s = Secret::new("x\"y");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""x\"y""#);
        assert_eq!(serde_json::from_str::<Secret>(&json).unwrap(), s);
    }
}
