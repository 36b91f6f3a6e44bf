//! User affinity *(ours)*: a request for a user who already has a session in the pool gets that
//! session back — a reconnect to the same server — instead of a second session elsewhere (two
//! sessions of one user on two hosts break roaming profiles such as FSLogix containers). A
//! drained or outdated server still takes its own users' reconnects: nothing new is placed.

use std::collections::HashSet;

use super::events::{ControllerError, SessionOutcome};
use super::records::{Records, SessionId};
use super::state::State;
use crate::engine::ServerState;

/// The longest user name kept, in characters.
pub const MAX_USER: usize = 256;

/// The user a request names, as kept and compared: trimmed, and `None` when empty (an
/// anonymous request is nobody's reconnect); an error when longer than [`MAX_USER`] or holding
/// control characters.
pub(crate) fn user_of(user: Option<&str>) -> Result<Option<String>, ControllerError> {
    let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let length = user.chars().count();
    if length > MAX_USER {
        return Err(ControllerError::InvalidUser(format!(
            "a user name is at most {MAX_USER} characters, got {length}"
        )));
    }
    if user.chars().any(char::is_control) {
        return Err(ControllerError::InvalidUser(
            "a user name must not hold control characters".into(),
        ));
    }
    Ok(Some(user.to_owned()))
}

/// How a user is kept in the records and compared: in lower case.
pub(crate) fn key(user: &str) -> String {
    user.to_lowercase()
}

/// The session `user` has in `pool` (seated on one of its live servers, or waiting in its
/// queue), oldest first. Names compare without regard to case, as Windows accounts do
/// (`Alice` and `alice` are one profile): the records keep them in lower case
/// ([`key`]). A session on a server being destroyed is not a
/// place to reconnect to: the user gets a new one.
pub(crate) fn session_of(records: &Records, pool: &str, user: &str) -> Option<SessionOutcome> {
    let user = key(user);
    records
        .users
        .iter()
        .filter(|(_, u)| **u == user)
        .find_map(|(&session, _)| {
            if let Some(&server) = records.sessions.get(&session) {
                let here = records
                    .servers
                    .get(&server)
                    .is_some_and(|s| s.pool == pool && s.state != ServerState::Destroying);
                return here.then_some(SessionOutcome::Assigned { session, server });
            }
            let queued = records
                .queued
                .get(pool)
                .is_some_and(|q| q.iter().any(|q| q.session == session));
            queued.then_some(SessionOutcome::Queued { session })
        })
}

/// Forgets the users of sessions that ended without `end_session` (lost with their server,
/// expired in the queue, replaced by a report): on the reconcile cadence, taking the records
/// mutably only when there is something to forget.
pub(crate) fn prune(state: &State) {
    let alive = |r: &Records| -> HashSet<SessionId> {
        let queued = r.queued.values().flat_map(|q| q.iter().map(|q| q.session));
        r.sessions.keys().copied().chain(queued).collect()
    };
    let stale = {
        let records = state.records();
        let live = alive(&records);
        records.users.keys().any(|s| !live.contains(s))
    };
    if stale {
        let mut records = state.records();
        let live = alive(&records);
        records.users.retain(|s, _| live.contains(s));
    }
}
