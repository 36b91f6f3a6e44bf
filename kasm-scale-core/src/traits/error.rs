//! [`BackendError`]: what went wrong in a cloud or a directory, classified by what to do.

use std::time::Duration;

/// An error from a [`VmProvider`](super::VmProvider) or a
/// [`DirectoryService`](super::DirectoryService), classified by what the controller must do.
/// Messages come from the backend and never contain secrets (implementations must not put a
/// password, token or rendered script in them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The thing does not exist (for destroy and delete: success).
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend refuses calls for now; retry after the given time if any.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The backend's words.
        message: String,
        /// How long it asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No capacity for this size or image in this place right now (retry later or elsewhere).
    #[error("insufficient capacity: {0}")]
    Capacity(String),
    /// An account limit is reached (needs a person).
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// Credentials are missing, wrong or expired.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Authenticated, but not allowed to do this.
    #[error("permission denied: {0}")]
    Permission(String),
    /// The request itself is wrong (bad image id, bad parameter, constraint violation).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The name or id is taken by something we do not own.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A passing fault: timeouts, 5xx answers, dropped connections.
    #[error("transient failure: {0}")]
    Transient(String),
}

impl BackendError {
    /// The class as a short name (`not_found`, `rate_limited`, `capacity`, `quota`, `auth`,
    /// `permission`, `invalid_request`, `conflict`, `transient`), for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Capacity(_) => "capacity",
            Self::Quota(_) => "quota",
            Self::Auth(_) => "auth",
            Self::Permission(_) => "permission",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Conflict(_) => "conflict",
            Self::Transient(_) => "transient",
        }
    }

    /// Whether trying again later may succeed: rate limits, capacity and transient faults.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Capacity(_) | Self::Transient(_)
        )
    }

    /// The wait the backend asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
