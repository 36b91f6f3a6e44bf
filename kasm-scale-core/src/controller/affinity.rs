//! User affinity *(ours)*: a request for a user who already has a session in the pool gets that
//! session back — a reconnect to the same server — instead of a second session elsewhere (two
//! sessions of one user on two hosts break roaming profiles such as FSLogix containers). A
//! drained or outdated server still takes its own users' reconnects: nothing new is placed.

use std::collections::HashSet;

use super::events::SessionOutcome;
use super::records::{Records, SessionId};
use super::state::State;

/// The session `user` has in `pool` (seated on one of its servers, or waiting in its queue),
/// oldest first.
pub(crate) fn session_of(records: &Records, pool: &str, user: &str) -> Option<SessionOutcome> {
    records
        .users
        .iter()
        .filter(|(_, u)| u.as_str() == user)
        .find_map(|(&session, _)| {
            if let Some(&server) = records.sessions.get(&session) {
                let here = records.servers.get(&server).is_some_and(|s| s.pool == pool);
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
