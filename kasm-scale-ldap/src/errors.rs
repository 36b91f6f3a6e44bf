//! LDAP result codes and connection failures mapped to the core's classes.

use std::io;

use kasm_scale_core::traits::BackendError;
use ldap3::LdapError;
use ldap3::result::LdapResult;

/// `noSuchObject`.
pub(crate) const NO_SUCH_OBJECT: u32 = 32;
/// `notAllowedOnNonLeaf`: the entry has children.
pub(crate) const NOT_ALLOWED_ON_NON_LEAF: u32 = 66;
/// `entryAlreadyExists`.
pub(crate) const ENTRY_ALREADY_EXISTS: u32 = 68;

/// `sizeLimitExceeded`: a search stopped at its size limit (its entries are still good).
pub(crate) const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// Classifies a failed operation by its result code; `what` says what was being done. AD's
/// diagnostic text is kept (it never holds a password).
///
/// Retryable (transient): busy, unavailable, time and admin limits, `other`, and the client-side
/// codes of a lost server (serverDown, timeout, connectError). Everything else needs a person or
/// a different request and is not retried.
pub(crate) fn from_result(what: &str, r: &LdapResult) -> BackendError {
    let text = if r.text.is_empty() {
        format!("{what}: LDAP result {}", r.rc)
    } else {
        format!(
            "{what}: LDAP result {}: {}",
            r.rc,
            r.text.trim_end_matches('\0').trim()
        )
    };
    match r.rc {
        NO_SUCH_OBJECT => BackendError::NotFound(text),
        // invalidCredentials, inappropriateAuthentication, strongerAuthRequired
        49 | 48 | 8 => BackendError::Auth(text),
        // insufficientAccessRights
        50 => BackendError::Permission(text),
        // timeLimitExceeded, adminLimitExceeded, busy, unavailable, loopDetect, other,
        // serverDown, timeout, connectError
        3 | 11 | 51 | 52 | 54 | 80 | 81 | 85 | 91 => BackendError::Transient(text),
        ENTRY_ALREADY_EXISTS => BackendError::Conflict(text),
        _ => BackendError::InvalidRequest(text),
    }
}

/// Classifies an `ldap3` error: result codes as above; a lost or unreachable server, a dropped
/// connection and timeouts as transient; a server certificate that fails verification as a
/// configuration error naming the reason; mistakes in what was asked (URL, filter, values) as
/// invalid requests.
pub(crate) fn from_ldap(what: &str, e: LdapError) -> BackendError {
    match e {
        LdapError::LdapResult { result } => from_result(what, &result),
        LdapError::Timeout { .. } => BackendError::Transient(format!("{what}: timed out")),
        LdapError::Io { source } => from_io(what, &source),
        LdapError::Rustls { source } => from_tls(what, &source),
        LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::EndOfStream => {
            BackendError::Transient(format!("{what}: the connection was lost ({e})"))
        }
        other => BackendError::InvalidRequest(format!("{what}: {other}")),
    }
}

/// An I/O error: the TLS error inside it, or by its kind. Reaching the server and keeping the
/// connection are transient; being refused by the local system is not.
fn from_io(what: &str, e: &io::Error) -> BackendError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return from_tls(what, tls);
    }
    match e.kind() {
        io::ErrorKind::InvalidInput
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::Unsupported => BackendError::InvalidRequest(format!("{what}: {e}")),
        // Refused, reset, aborted, unreachable, timed out, closed early, name lookups: the
        // server or the way to it is down for now.
        _ => BackendError::Transient(format!("{what}: {e}")),
    }
}

/// A TLS failure. A certificate that fails verification is a configuration error (retrying
/// cannot help): the message says which check failed. A handshake the server cannot do is one
/// too; an alert the server sends is taken as passing.
fn from_tls(what: &str, e: &rustls::Error) -> BackendError {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => {
            let reason = match cert {
                C::UnknownIssuer => {
                    "it is not signed by a CA in ca_certificate_file (the system roots when that \
                     is unset): wrong CA file, or the server's chain is incomplete"
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired",
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "it is not valid yet (check this machine's and the server's clocks)"
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it is not valid for the name in the url (use a name or address the \
                     certificate lists)"
                }
                C::Revoked => "it is revoked",
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "it is not for TLS servers (extended key usage)"
                }
                C::BadSignature
                | C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    "its signature cannot be verified"
                }
                _ => "it is not acceptable",
            };
            BackendError::Auth(format!(
                "{what}: the server's TLS certificate failed verification: {reason} ({e})"
            ))
        }
        rustls::Error::AlertReceived(_) => BackendError::Transient(format!("{what}: TLS: {e}")),
        _ => BackendError::InvalidRequest(format!(
            "{what}: TLS handshake failed: {e} (does the url name a TLS port? ldaps:// is \
             usually 636, StartTLS 389)"
        )),
    }
}

/// Whether the connection is unusable after `e` (so the operation may be tried on a new one).
pub(crate) fn connection_lost(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    #[test]
    fn result_codes_map_to_the_core_classes_with_ads_text() {
        let class = |rc| match from_result("op", &result(rc, "00002082: text\0")) {
            BackendError::NotFound(_) => "not found",
            BackendError::Auth(_) => "auth",
            BackendError::Permission(_) => "permission",
            BackendError::Transient(_) => "transient",
            BackendError::Conflict(_) => "conflict",
            BackendError::InvalidRequest(_) => "invalid request",
            _ => "other",
        };
        for (rc, expected) in [
            (32, "not found"),
            (49, "auth"),
            (50, "permission"),
            (51, "transient"),
            (52, "transient"),
            (19, "invalid request"),
            (21, "invalid request"),
            (34, "invalid request"),
            (53, "invalid request"),
            (68, "conflict"),
            (3, "transient"),
            (11, "transient"),
            (80, "transient"),
            (81, "transient"),
            (85, "transient"),
            (91, "transient"),
            (1, "invalid request"),
            (66, "invalid request"),
        ] {
            assert_eq!(class(rc), expected, "rc {rc}");
        }
        assert_eq!(
            from_result(
                "cannot create X",
                &result(19, "0000052D: Constraint violation\0")
            )
            .to_string(),
            "invalid request: cannot create X: LDAP result 19: 0000052D: Constraint violation"
        );
    }

    fn io(kind: io::ErrorKind) -> LdapError {
        LdapError::Io {
            source: io::Error::from(kind),
        }
    }

    /// A TLS failure as tokio-rustls reports it: an I/O error around the rustls error.
    fn tls_io(e: rustls::Error) -> LdapError {
        LdapError::Io {
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }

    #[test]
    fn connection_faults_are_transient_and_mistakes_are_not() {
        use io::ErrorKind as K;
        for kind in [
            K::ConnectionRefused,
            K::ConnectionReset,
            K::ConnectionAborted,
            K::NotConnected,
            K::BrokenPipe,
            K::TimedOut,
            K::UnexpectedEof,
            K::HostUnreachable,
            K::NetworkUnreachable,
            K::AddrNotAvailable,
            K::Other,
        ] {
            let e = io(kind);
            assert!(connection_lost(&e), "{kind:?} loses the connection");
            let e = from_ldap("op", e);
            assert!(
                matches!(e, BackendError::Transient(_)),
                "{kind:?} is transient: {e}"
            );
        }
        assert!(
            from_ldap("op", io(K::PermissionDenied))
                .to_string()
                .starts_with("invalid request")
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        drop(tx);
        let lost = LdapError::ResultRecv {
            source: rx.blocking_recv().unwrap_err(),
        };
        assert!(connection_lost(&lost));
        assert!(from_ldap("op", lost).is_retryable());
        assert!(from_ldap("op", LdapError::EndOfStream).is_retryable());
        // What was asked is wrong: trying again cannot help, and the connection is fine.
        for e in [
            LdapError::FilterParsing,
            LdapError::UnknownScheme("ldapz".into()),
            LdapError::AddNoValues,
            LdapError::DecodingUTF8,
            LdapError::EmptyUnixPath,
        ] {
            assert!(!connection_lost(&e), "{e}");
            let e = from_ldap("op", e);
            assert!(matches!(e, BackendError::InvalidRequest(_)), "{e}");
        }
        let busy = LdapError::LdapResult {
            result: result(51, ""),
        };
        assert!(!connection_lost(&busy));
        assert!(from_ldap("op", busy).is_retryable());
    }

    #[test]
    fn certificate_failures_are_configuration_errors_that_say_why() {
        use rustls::CertificateError as C;
        for (cert, says) in [
            (
                C::UnknownIssuer,
                "not signed by a CA in ca_certificate_file",
            ),
            (C::Expired, "expired"),
            (C::NotValidYet, "not valid yet"),
            (C::NotValidForName, "not valid for the name in the url"),
            (C::Revoked, "revoked"),
            (C::BadSignature, "signature cannot be verified"),
        ] {
            let e = from_ldap(
                "cannot connect",
                tls_io(rustls::Error::InvalidCertificate(cert)),
            );
            assert!(!e.is_retryable(), "{e}");
            assert!(
                matches!(&e, BackendError::Auth(m) if m.contains(says) && m.contains("TLS certificate")),
                "{e}"
            );
            // The same error as ldap3 reports it outside I/O.
            let direct = LdapError::Rustls {
                source: rustls::Error::InvalidCertificate(C::UnknownIssuer),
            };
            assert!(!from_ldap("op", direct).is_retryable());
        }
        // Talking TLS to a port that does not: a configuration error too.
        let e = from_ldap(
            "op",
            tls_io(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType,
            )),
        );
        assert!(
            matches!(&e, BackendError::InvalidRequest(m) if m.contains("TLS port")),
            "{e}"
        );
        // An alert from the server (it is shutting down, say) passes.
        let e = from_ldap(
            "op",
            tls_io(rustls::Error::AlertReceived(
                rustls::AlertDescription::InternalError,
            )),
        );
        assert!(e.is_retryable(), "{e}");
    }
}
