//! LDAP result codes and connection failures mapped to the core's classes.

use kasm_scale_core::traits::BackendError;
use ldap3::LdapError;
use ldap3::result::LdapResult;

/// `noSuchObject`.
pub(crate) const NO_SUCH_OBJECT: u32 = 32;
/// `notAllowedOnNonLeaf`: the entry has children.
pub(crate) const NOT_ALLOWED_ON_NON_LEAF: u32 = 66;
/// `entryAlreadyExists`.
pub(crate) const ENTRY_ALREADY_EXISTS: u32 = 68;

/// Classifies a failed operation by its result code; `what` says what was being done. AD's
/// diagnostic text is kept (it never holds a password).
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
        50 => BackendError::Permission(text),
        // busy, unavailable, timeLimitExceeded, adminLimitExceeded, loopDetect, other
        51 | 52 | 3 | 11 | 54 | 80 => BackendError::Transient(text),
        ENTRY_ALREADY_EXISTS => BackendError::Conflict(text),
        _ => BackendError::InvalidRequest(text),
    }
}

/// Classifies an `ldap3` error: result codes as above, everything about the connection as
/// transient.
pub(crate) fn from_ldap(what: &str, e: LdapError) -> BackendError {
    match e {
        LdapError::LdapResult { result } => from_result(what, &result),
        LdapError::Timeout { .. } => BackendError::Transient(format!("{what}: timed out")),
        other => BackendError::Transient(format!("{what}: {other}")),
    }
}

/// Whether the connection is unusable after `e` (so the operation may be tried on a new one).
pub(crate) fn connection_lost(e: &LdapError) -> bool {
    !matches!(
        e,
        LdapError::LdapResult { .. } | LdapError::FilterParsing | LdapError::Timeout { .. }
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
}
