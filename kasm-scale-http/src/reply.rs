//! Answers: JSON bodies, with a short reason on failure.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kasm_scale_core::controller::ControllerError;
use serde_json::json;

/// A failed request: its status and a short reason (never a token or a secret).
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub reason: String,
    /// On a replica that does not lead: where the leader is (its advertised address).
    pub leader: Option<String>,
}

impl Failure {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            leader: None,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self.leader {
            // A follower: try again (at the leader, or here after a failover).
            Some(leader) => (
                self.status,
                [(axum::http::header::RETRY_AFTER, "1")],
                Json(json!({ "error_message": self.reason, "leader": leader })),
            )
                .into_response(),
            None => (self.status, Json(json!({ "error_message": self.reason }))).into_response(),
        }
    }
}

impl From<ControllerError> for Failure {
    fn from(e: ControllerError) -> Self {
        match e {
            // Says why (expired, signature, other server…) without the token.
            ControllerError::Token(e) => Self::new(StatusCode::UNAUTHORIZED, e.to_string()),
            ControllerError::Store(e) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"))
            }
            ControllerError::NotLeader { leader } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "this replica does not lead: send writes to the leader".into(),
                leader: Some(leader.unwrap_or_default()),
            },
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// `404` for a route that does not exist.
pub(crate) async fn not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "no such route")
}
