//! Answers: JSON bodies, with a short reason on failure.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kasm_scale_core::controller::ControllerError;
use serde::Serialize;

/// A failed request: its status and a short reason (never a token or a secret).
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub reason: String,
    /// On a replica that does not lead: where the leader is (its advertised address).
    pub leader: Option<String>,
}

/// The body of a failure: `{"error_message"}`, with `"leader"` on a replica that does not lead.
#[derive(Debug, Serialize)]
struct FailureBody<'a> {
    error_message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<&'a str>,
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

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = Json(FailureBody {
            error_message: &self.reason,
            leader: self.leader.as_deref(),
        });
        match self.leader {
            // A follower: try again (at the leader, or here after a failover).
            Some(_) => {
                (self.status, [(axum::http::header::RETRY_AFTER, "1")], body).into_response()
            }
            None => (self.status, body).into_response(),
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
            ControllerError::UnknownPool(pool) => {
                Self::not_found(format!("no pool `{}`", short(&pool)))
            }
            ControllerError::UnknownSession(session) => {
                Self::not_found(format!("no session {}", session.0))
            }
            ControllerError::UnknownServer(server) => {
                Self::not_found(format!("no server {server}"))
            }
            ControllerError::UnknownConfig(config) => {
                Self::not_found(format!("no auto-scale config `{}`", short(&config)))
            }
            e @ ControllerError::NotDrained(_) => Self::not_found(e.to_string()),
            e @ ControllerError::InvalidDrain(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            e @ ControllerError::NotPaused(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            e @ ControllerError::InvalidUser(_) => {
                Self::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// `404` for a route that does not exist.
pub(crate) async fn not_found() -> Failure {
    Failure::not_found("no such route")
}

/// At most 64 characters of something a client sent, for a message.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use kasm_scale_core::controller::SessionId;
    use kasm_scale_core::engine::ServerId;

    use super::*;

    #[test]
    fn what_the_controller_does_not_know_is_404_with_the_reason() {
        let server = ServerId(uuid::Uuid::from_u128(7));
        for (error, reason) in [
            (
                ControllerError::UnknownPool("nope".into()),
                "no pool `nope`".to_owned(),
            ),
            (
                ControllerError::UnknownSession(SessionId(9)),
                "no session 9".to_owned(),
            ),
            (
                ControllerError::UnknownServer(server),
                format!("no server {server}"),
            ),
            (
                ControllerError::UnknownConfig("c".into()),
                "no auto-scale config `c`".to_owned(),
            ),
            (
                ControllerError::NotDrained(kasm_scale_core::controller::DrainTarget::Pool(
                    "p".into(),
                )),
                "pool:p is not drained".to_owned(),
            ),
        ] {
            let failure = Failure::from(error);
            assert_eq!(failure.status, StatusCode::NOT_FOUND, "{reason}");
            assert_eq!(failure.reason, reason);
            assert_eq!(failure.leader, None);
        }
        let long = "p".repeat(100);
        let failure = Failure::from(ControllerError::UnknownPool(long));
        assert_eq!(failure.reason, format!("no pool `{}`", "p".repeat(64)));
    }

    #[test]
    fn a_failure_is_its_reason_and_the_leader_only_when_there_is_one() {
        let body = serde_json::to_string(&FailureBody {
            error_message: "no such route",
            leader: None,
        })
        .unwrap();
        assert_eq!(body, r#"{"error_message":"no such route"}"#);
        let body = serde_json::to_string(&FailureBody {
            error_message: "x",
            leader: Some("https://10.0.0.7:8443"),
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"error_message":"x","leader":"https://10.0.0.7:8443"}"#
        );
    }
}
