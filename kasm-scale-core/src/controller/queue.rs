//! Step 5 of a tick, and what `end_session` and check-ins trigger: waiting requests take free
//! slots, oldest first; requests that waited past the queue timeout are dropped. Each returns
//! the events of what it did, for its caller to tell.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::builder::Setup;
use super::records::{Queued, Records, SessionId};
use super::state::State;
use super::{Event, snapshot};
use crate::engine::{ServerId, assign};

/// Step 5: drops requests that waited too long, seats the others where there is room.
pub(crate) fn seat_the_queue(setup: &Setup, state: &State, now: Timestamp) -> Vec<Event> {
    let mut events = expire(setup.queue_timeout, state, now);
    events.extend(serve(setup, state, None));
    events
}

/// Puts `session` on `server`.
pub(crate) fn seat(records: &mut Records, session: SessionId, server: ServerId) {
    if let Some(s) = records.servers.get_mut(&server) {
        s.sessions += 1;
        s.used = true;
    }
    records.sessions.insert(session, server);
}

/// Seats queued requests on servers that have room, oldest request first (every pool, or only
/// `pool`).
pub(crate) fn serve(setup: &Setup, state: &State, pool: Option<&str>) -> Vec<Event> {
    let mut assigned = Vec::new();
    let mut records = state.records();
    let pools: Vec<String> = records
        .queued
        .iter()
        .filter(|(p, q)| !q.is_empty() && pool.is_none_or(|only| only == p.as_str()))
        .map(|(p, _)| p.clone())
        .collect();
    for pool in pools {
        // One snapshot per pool, kept in step with each seat (not one per request).
        let mut snap = snapshot::snapshot(setup, &records, &pool);
        while records.waiting(&pool) > 0 {
            let Some(server) = assign(&snap) else {
                break;
            };
            let Some(q) = records.queued.get_mut(&pool).and_then(|q| q.pop_front()) else {
                break;
            };
            seat(&mut records, q.session, server);
            if let Some(s) = snap.servers.iter_mut().find(|s| s.id == server) {
                s.sessions += 1;
                s.used = true;
            }
            tracing::info!(session = q.session.0, %server, "queued request seated");
            assigned.push(Event::SessionAssigned {
                session: q.session,
                server,
            });
        }
    }
    assigned
}

/// Drops requests that waited `timeout` or longer.
fn expire(timeout: Duration, state: &State, now: Timestamp) -> Vec<Event> {
    let limit = SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
    let mut expired = Vec::new();
    let mut records = state.records();
    let due = |q: &Queued| now.duration_since(q.since) >= limit;
    if !records.queued.values().any(|q| q.front().is_some_and(due)) {
        // Nothing expires: the records stay untouched (and unsaved).
        return expired;
    }
    for (pool, queue) in records.queued.iter_mut() {
        while let Some(q) = queue.front().copied() {
            let waited = now.duration_since(q.since);
            if waited < limit {
                break;
            }
            queue.pop_front();
            tracing::warn!(
                session = q.session.0,
                pool,
                waited_seconds = waited.as_secs(),
                "queued request expired"
            );
            expired.push(Event::RequestExpired {
                session: q.session,
                pool: pool.clone(),
                waited_seconds: waited.as_secs(),
            });
        }
    }
    records.queued.retain(|_, q| !q.is_empty());
    expired
}
