//! Idempotent session requests: a broker that retries a request (its call timed out, its
//! process restarted) with the same request id gets the session its first attempt made, not a
//! second one. A request id is remembered with its session, in the same records and so in the
//! same save, for [`REQUEST_ID_TTL`]: a call that timed out either took effect, and its retry
//! is told so, or did not, and its retry makes the session.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::SessionStatus;
use super::events::{ControllerError, SessionOutcome};
use super::records::{Records, SessionId};
use super::state::State;
use crate::engine::ServerId;

/// How long a request id is remembered (ours: a day, as the common HTTP APIs keep theirs).
pub const REQUEST_ID_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest request id accepted, in bytes.
pub const MAX_REQUEST_ID: usize = 255;

/// What a request id's first attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The pool it asked in.
    pub pool: String,
    /// The session it made.
    pub session: SessionId,
    /// The server it was seated on at once, if it was.
    pub server: Option<ServerId>,
    /// When it was made.
    pub at: Timestamp,
}

/// A request id a broker may use: 1 to [`MAX_REQUEST_ID`] visible ASCII characters.
pub(crate) fn check_id(id: &str) -> Result<(), ControllerError> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ControllerError::InvalidRequestId(format!(
            "a request id is 1 to {MAX_REQUEST_ID} visible ASCII characters (got {} bytes)",
            id.len()
        )));
    }
    Ok(())
}

/// The first attempt's outcome for `id`, as the session stands now, when `id` was used within
/// the time it is remembered; an error when it was used for another pool.
pub(crate) fn replay(
    records: &Records,
    id: &str,
    pool: &str,
    now: Timestamp,
) -> Result<Option<SessionOutcome>, ControllerError> {
    let Some(first) = records.requests.get(id) else {
        return Ok(None);
    };
    if expired(first, now) {
        return Ok(None);
    }
    if first.pool != pool {
        return Err(ControllerError::RequestIdReused {
            pool: first.pool.clone(),
        });
    }
    let session = first.session;
    Ok(Some(match records.session_status(session) {
        Some(SessionStatus::Assigned { server }) => SessionOutcome::Assigned { session, server },
        Some(SessionStatus::Queued { .. }) => SessionOutcome::Queued { session },
        // Ended since (or its request withdrawn): what the first attempt answered.
        _ => match first.server {
            Some(server) => SessionOutcome::Assigned { session, server },
            None => SessionOutcome::Queued { session },
        },
    }))
}

/// Remembers what the first attempt of `id` did.
pub(crate) fn remember(
    records: &mut Records,
    id: &str,
    pool: &str,
    outcome: &SessionOutcome,
    now: Timestamp,
) {
    let (session, server) = match *outcome {
        SessionOutcome::Assigned { session, server } => (session, Some(server)),
        SessionOutcome::Queued { session } => (session, None),
    };
    records.requests.insert(
        id.to_owned(),
        RequestRecord {
            pool: pool.to_owned(),
            session,
            server,
            at: now,
        },
    );
}

fn expired(record: &RequestRecord, now: Timestamp) -> bool {
    now > record.at && now.duration_since(record.at).unsigned_abs() >= REQUEST_ID_TTL
}

/// Forgets the request ids older than [`REQUEST_ID_TTL`] (on the reconcile cadence; takes the
/// records mutably only when there is something to forget).
pub(crate) fn prune(state: &State, now: Timestamp) {
    if !state.records().requests.values().any(|r| expired(r, now)) {
        return;
    }
    state.records().requests.retain(|_, r| !expired(r, now));
}
