//! The variables a startup script can use.

use std::collections::{BTreeMap, HashMap};

use crate::secret::Secret;

/// A variable's value as Python sees it: a string, or `None` (rendered as the text `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string.
    Str(&'a str),
    /// Python's `None`: an optional value that is not set.
    None,
}

/// Where a template looks its field names up.
pub trait Variables {
    /// The value of `name`, or `None` (Rust's) when there is no such variable (a `KeyError`).
    fn get(&self, name: &str) -> Option<Value<'_>>;

    /// Whether `name`'s value is a secret, which an error message must not show (Python's
    /// message for a bad format spec quotes the spec, and a spec may be built from variables).
    /// `false` unless an implementation says otherwise.
    fn is_secret(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

impl<S: std::hash::BuildHasher> Variables for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        HashMap::get(self, name).map(|v| Value::Str(v))
    }
}

impl<S: std::hash::BuildHasher> Variables for HashMap<String, Option<String>, S> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        HashMap::get(self, name).map(|v| v.as_deref().map_or(Value::None, Value::Str))
    }
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        BTreeMap::get(self, name).map(|v| Value::Str(v))
    }
}

impl Variables for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Value::Str(v))
    }
}

/// The variables Kasm gives a server pool's startup script, plus user-defined extras.
///
/// Absent optional values render as `None`, as in Kasm. The Active Directory values
/// (`ad_join_credential`, `domain`) are empty strings when no AD record is made. `Debug` hides
/// every secret; a rendered script holds them, so it must never be logged.
#[derive(Debug, Clone, Default)]
pub struct ScriptVariables {
    /// UUID of the server record.
    pub server_id: String,
    /// Generated host name; also the AD computer name.
    pub server_hostname: String,
    /// The zone's API host.
    pub upstream_auth_address: String,
    /// The server's check-in token (valid 4 hours, or its config's `checkin_timeout` when
    /// longer).
    pub checkin_jwt: Secret,
    /// Static session user, if configured.
    pub connection_username: Option<String>,
    /// Static session password, if configured.
    pub connection_password: Option<Secret>,
    /// The AD join, when a computer record was made.
    pub active_directory: Option<AdJoin>,
    /// `aws`, `azure`, …
    pub provider_name: String,
    /// Legacy: agent registration token.
    pub registration_token: Option<Secret>,
    /// Legacy: the server's external FQDN.
    pub server_external_fqdn: Option<String>,
    /// Legacy: manager token.
    pub manager_token: Option<Secret>,
    /// Legacy: TLS certificate for the agent's nginx.
    pub nginx_cert_in: Option<String>,
    /// Legacy: TLS key for the agent's nginx.
    pub nginx_key_in: Option<Secret>,
    /// Legacy: SSH public key.
    pub ssh_key: Option<String>,
    /// User-defined variables (names must not shadow the ones above).
    pub extra: BTreeMap<String, Secret>,
}

/// The Active Directory values of a server whose computer record was created.
#[derive(Debug, Clone, Default)]
pub struct AdJoin {
    /// AD DNS domain, e.g. `example.local`.
    pub domain: String,
    /// One-time join password of the computer record.
    pub ad_join_credential: Secret,
}

/// Every built-in variable name, in Kasm's documentation order, then the legacy ones.
pub const VARIABLE_NAMES: [&str; 15] = [
    "server_id",
    "server_hostname",
    "upstream_auth_address",
    "checkin_jwt",
    "connection_username",
    "connection_password",
    "ad_join_credential",
    "domain",
    "provider_name",
    "registration_token",
    "server_external_fqdn",
    "manager_token",
    "nginx_cert_in",
    "nginx_key_in",
    "ssh_key",
];

/// A sample value for every name of [`VARIABLE_NAMES`], in the same order, to read a script as
/// a server would receive it (`kasm-scale render --example-vars`). The legacy agent variables
/// are `None`: Kasm gives server pools no value for them.
pub const EXAMPLE_VARIABLES: [(&str, Option<&str>); 15] = [
    ("server_id", Some("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")),
    ("server_hostname", Some("KASM-0F1E2D3C")),
    ("upstream_auth_address", Some("kasm.example.com")),
    (
        "checkin_jwt",
        Some(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJzdWIiOiIwZjFlMmQzYyJ9.ZXhhbXBsZS1zaWduYXR1cmU",
        ),
    ),
    ("connection_username", Some("kasm-user")),
    ("connection_password", Some("Example-Passw0rd")),
    ("ad_join_credential", Some("Example-One-Time-Join-Password")),
    ("domain", Some("example.local")),
    ("provider_name", Some("aws")),
    ("registration_token", None),
    ("server_external_fqdn", None),
    ("manager_token", None),
    ("nginx_cert_in", None),
    ("nginx_key_in", None),
    ("ssh_key", None),
];

/// The variables that are empty unless an AD computer record is made.
pub const AD_VARIABLES: [&str; 2] = ["ad_join_credential", "domain"];

fn opt(v: &Option<String>) -> Value<'_> {
    v.as_deref().map_or(Value::None, Value::Str)
}

fn opt_secret(v: &Option<Secret>) -> Value<'_> {
    v.as_ref().map_or(Value::None, |s| Value::Str(s.expose()))
}

impl Variables for ScriptVariables {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        let ad = self.active_directory.as_ref();
        Some(match name {
            "server_id" => Value::Str(&self.server_id),
            "server_hostname" => Value::Str(&self.server_hostname),
            "upstream_auth_address" => Value::Str(&self.upstream_auth_address),
            "checkin_jwt" => Value::Str(self.checkin_jwt.expose()),
            "connection_username" => opt(&self.connection_username),
            "connection_password" => opt_secret(&self.connection_password),
            "ad_join_credential" => Value::Str(ad.map_or("", |a| a.ad_join_credential.expose())),
            "domain" => Value::Str(ad.map_or("", |a| a.domain.as_str())),
            "provider_name" => Value::Str(&self.provider_name),
            "registration_token" => opt_secret(&self.registration_token),
            "server_external_fqdn" => opt(&self.server_external_fqdn),
            "manager_token" => opt_secret(&self.manager_token),
            "nginx_cert_in" => opt(&self.nginx_cert_in),
            "nginx_key_in" => opt_secret(&self.nginx_key_in),
            "ssh_key" => opt(&self.ssh_key),
            other => return self.extra.get(other).map(|s| Value::Str(s.expose())),
        })
    }

    /// The tokens, passwords and keys, and every user-defined variable (configured as secrets).
    fn is_secret(&self, name: &str) -> bool {
        matches!(
            name,
            "checkin_jwt"
                | "connection_password"
                | "ad_join_credential"
                | "registration_token"
                | "manager_token"
                | "nginx_key_in"
        ) || self.extra.contains_key(name)
    }
}

/// The longest one-time AD join password kasm-scale generates; the size check of startup
/// scripts assumes it.
pub const AD_JOIN_PASSWORD_MAX_LEN: usize = 32;

/// The length of a check-in token for a server of config `config_name` in zone `zone_name`:
/// an EdDSA JWT whose header names its key (`kid`, the longest key id: `ed25519:` and 16 hex
/// digits) and whose claims are `iss`, `aud`, `sub` (server id), `cfg`, `zone`, `purpose`,
/// `iat`, `exp` and `jti` (a UUID), with the longest values those can take. The size check of
/// startup scripts renders with a token of this length; the token issuer must stay within it.
pub fn checkin_jwt_max_len(config_name: &str, zone_name: &str) -> usize {
    const UUID: &str = "00000000-0000-0000-0000-000000000000";
    let header = r#"{"typ":"JWT","alg":"EdDSA","kid":"ed25519:0000000000000000"}"#;
    let claims = serde_json::json!({
        "iss": "kasm-scale", "aud": "kasm-scale-checkin", "sub": UUID, "cfg": config_name,
        "zone": zone_name, "purpose": "checkin", "iat": 99_999_999_999_i64,
        "exp": 99_999_999_999_i64, "jti": UUID,
    })
    .to_string();
    let base64 = |n: usize| (n * 4).div_ceil(3);
    base64(header.len()) + 1 + base64(claims.len()) + 1 + base64(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_has_an_example_in_the_same_order() {
        let names: Vec<&str> = EXAMPLE_VARIABLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, VARIABLE_NAMES);
    }
}
