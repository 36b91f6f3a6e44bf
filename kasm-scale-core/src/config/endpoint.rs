//! Endpoint overrides (`aws_endpoint_url`, `azure_resource_manager_url`, `azure_authority_url`):
//! what they send (signed requests, client secrets, bearer tokens, startup scripts with join
//! passwords and check-in tokens) must not cross a network in clear. `https://` always; `http://`
//! only to a loopback host (a local emulator or proxy), or anywhere with the config's
//! `danger_allow_plaintext`.

use std::net::IpAddr;

/// The host of an `http://` URL (`Ok(None)` for `https://`); an error for anything else.
pub(crate) fn plaintext_host(url: &str) -> Result<Option<String>, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("`{url}` must be an https:// URL (http:// only to a loopback host)")
    })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the URL would be logged with it.
    if authority.contains('@') {
        return Err(format!(
            "`{}` must not carry credentials before its host",
            redact(url)
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(None),
        "http" => Ok(Some(host.to_ascii_lowercase())),
        _ => Err(format!(
            "`{url}` must be an https:// URL (http:// only to a loopback host)"
        )),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a provider may send its requests to `url`: `https://`, or `http://` to a loopback
/// host, or `http://` anywhere when `allow_plaintext` (the config's `danger_allow_plaintext`).
/// Provider builders call this too, for configs that were not loaded through
/// [`load_str`](super::load_str).
pub fn check_endpoint(url: &str, allow_plaintext: bool) -> Result<(), String> {
    match plaintext_host(url)? {
        Some(host) if !allow_plaintext && !is_loopback(&host) => Err(format!(
            "`{url}`: http:// to `{host}` would carry credentials and startup scripts in clear; use https://, a loopback host, or (tests only) danger_allow_plaintext"
        )),
        _ => Ok(()),
    }
}

fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let tail = rest.split_once('@').map_or(rest, |(_, t)| t);
            format!("{scheme}://…@{tail}")
        }
        None => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        for ok in [
            "https://ec2.eu-west-1.amazonaws.com",
            "https://management.azure.com/",
            "http://127.0.0.1:5099",
            "http://127.8.9.10/",
            "http://localhost:8080/x",
            "HTTP://LocalHost",
            "http://[::1]:5099/",
        ] {
            assert_eq!(check_endpoint(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "http://ec2.example.com",
            "http://10.0.0.5:5099",
            "http://[2001:db8::1]/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
        ] {
            let e = check_endpoint(bad, false).unwrap_err();
            assert!(e.contains("in clear"), "{bad}: {e}");
            assert_eq!(
                check_endpoint(bad, true),
                Ok(()),
                "{bad} with the danger flag"
            );
        }
        for malformed in ["ftp://x", "127.0.0.1:5099", "http://", "https:///path"] {
            assert!(check_endpoint(malformed, true).is_err(), "{malformed}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        let e = check_endpoint("https://user:hunter2@management.azure.com/", true).unwrap_err();
        assert!(e.contains("credentials"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
