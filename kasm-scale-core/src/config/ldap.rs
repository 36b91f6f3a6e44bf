//! LDAP connection settings ([`LdapConfig`]) and distinguished names ([`Dn`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::{is_false, yes};
use super::{api, bounds};
use crate::secret::Secret;

/// An LDAP / Active Directory connection (Kasm's LDAP configuration), used to create and remove
/// computer records. It may be the one that authenticates users or a separate, disabled one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Unique name, referenced by `ldap_id` of auto-scale configs.
    pub name: String,
    /// Whether Kasm would use it to authenticate users (ignored for computer records). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `ldaps://host:636` or `ldap://host:389` (the latter needs `start_tls` or
    /// `danger_allow_plaintext`).
    pub url: String,
    /// Search base, e.g. `DC=example,DC=local`; its DC parts give the AD DNS `domain`.
    pub search_base: String,
    /// Service account that may create and remove computers, e.g. `svc-kasm@example.local`.
    pub service_account_dn: String,
    /// Password of the service account.
    pub service_account_password: Secret,
    /// Upgrade an `ldap://` connection with StartTLS. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub start_tls: bool,
    /// (ours) PEM file of the CA that signed the server certificate; default: system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_file: Option<String>,
    /// (ours) Seconds to wait for a connection or an answer, 1 to 3600. Default 10.
    #[serde(default = "default_timeout", deserialize_with = "bounds::call_timeout")]
    pub connection_timeout: u32,
    /// (ours) Accept any server certificate. Only for tests: anyone on the path can read the
    /// join passwords.
    #[serde(default, skip_serializing_if = "is_false")]
    pub danger_skip_tls_verify: bool,
    /// (ours) Allow `ldap://` without StartTLS. Only for tests: AD refuses to set passwords over it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub danger_allow_plaintext: bool,
    /// (ours) Calls to this directory the controller has in flight at once, 1 to 1024. Default 8.
    #[serde(
        default = "api::default_concurrency",
        skip_serializing_if = "api::is_default_concurrency",
        deserialize_with = "bounds::api_concurrency"
    )]
    pub api_concurrency: u32,
    /// (ours) At most this many calls to this directory a second, 0.001 to 100000. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limit_per_second: Option<f64>,
    /// (ours) Seconds one call to this directory may take before it fails as transient, 1 to 3600.
    /// Default 30.
    #[serde(
        default = "api::default_call_timeout",
        skip_serializing_if = "api::is_default_call_timeout",
        deserialize_with = "bounds::call_timeout"
    )]
    pub api_call_timeout: u32,
}

fn default_timeout() -> u32 {
    10
}

impl LdapConfig {
    /// The AD DNS domain from the search base's DC parts (`DC=example,DC=local` → `example.local`),
    /// or `None` when the base has no DC part or is not a valid DN.
    pub fn domain(&self) -> Option<String> {
        Dn::parse(&self.search_base).ok()?.domain()
    }
}

/// A parsed distinguished name (RFC 4514): its RDNs, first (most specific) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<(String, String)>,
}

impl Dn {
    /// Parses `CN=x,OU=Computers,DC=example,DC=local`. Multi-valued RDNs (`+`) are not accepted:
    /// AD containers never need them.
    pub fn parse(text: &str) -> Result<Dn, String> {
        if text.trim().is_empty() {
            return Err(
                "is empty; expected a DN such as `OU=Computers,DC=example,DC=local`".into(),
            );
        }
        let mut rdns = Vec::new();
        let mut chars = text.char_indices().peekable();
        loop {
            let mut attr = String::new();
            let mut has_equals = false;
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    has_equals = true;
                    break;
                }
                attr.push(c);
            }
            let attr = attr.trim().to_owned();
            let valid_attr = has_equals
                && !attr.is_empty()
                && (attr.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    || attr.chars().all(|c| c.is_ascii_digit() || c == '.'));
            if !valid_attr {
                return Err(format!(
                    "`{text}` is not a valid DN: RDN {} has no valid `attribute=` part",
                    rdns.len() + 1
                ));
            }
            let mut value: Vec<u8> = Vec::new();
            let mut ended_by_comma = false;
            let bad_escape =
                |i: usize| format!("`{text}` is not a valid DN: bad escape at byte {i}");
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) if ",+\"\\<>;=# ".contains(e) => value.push(e as u8),
                        Some((_, h1)) if h1.is_ascii_hexdigit() => match chars.next() {
                            Some((_, h2)) if h2.is_ascii_hexdigit() => {
                                let hex = [h1 as u8, h2 as u8];
                                let hex = std::str::from_utf8(&hex).map_err(|_| bad_escape(i))?;
                                value.push(u8::from_str_radix(hex, 16).map_err(|_| bad_escape(i))?);
                            }
                            _ => return Err(bad_escape(i)),
                        },
                        _ => return Err(bad_escape(i)),
                    },
                    ',' => {
                        ended_by_comma = true;
                        break;
                    }
                    '+' | '"' | ';' | '<' | '>' | '=' => {
                        return Err(format!(
                            "`{text}` is not a valid DN: `{c}` at byte {i} must be escaped"
                        ));
                    }
                    _ => value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            let value = String::from_utf8(value)
                .map_err(|_| format!("`{text}` is not a valid DN: escaped bytes are not UTF-8"))?;
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(format!(
                    "`{text}` is not a valid DN: `{attr}=` has an empty value"
                ));
            }
            rdns.push((attr, value));
            if !ended_by_comma {
                break;
            }
        }
        Ok(Dn { rdns })
    }

    /// The RDNs as (attribute, unescaped value), most specific first.
    pub fn rdns(&self) -> &[(String, String)] {
        &self.rdns
    }

    /// The DNS domain from the DC parts, in order, or `None` when there is none.
    pub fn domain(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .rdns
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case("dc"))
            .map(|(_, v)| v.as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join(".").to_ascii_lowercase())
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, v)) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ad_containers() {
        let dn = Dn::parse("OU=Computers,DC=example,DC=local").unwrap();
        assert_eq!(dn.rdns().len(), 3);
        assert_eq!(dn.domain().as_deref(), Some("example.local"));
        assert_eq!(
            Dn::parse("OU=M\\C3\\BCnchen,DC=x").unwrap().rdns()[0].1,
            "München"
        );
        let dn = Dn::parse("OU=VDI\\, Berlin, OU=Computers ,dc=Corp,dc=Example,dc=com").unwrap();
        assert_eq!(dn.rdns()[0].1, "VDI, Berlin");
        assert_eq!(dn.domain().as_deref(), Some("corp.example.com"));
        assert_eq!(Dn::parse("CN=Computers").unwrap().domain(), None);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "Computers",
            "OU=,DC=x",
            "OU=a,,DC=x",
            "=a",
            "OU=a,DC=x,",
            "OU=a=b",
            "OU=a\\",
            "1X=a",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should fail");
        }
        let e = Dn::parse("OU=Computers;DC=x").unwrap_err();
        assert!(e.contains("`;` at byte 12 must be escaped"), "{e}");
    }
}
