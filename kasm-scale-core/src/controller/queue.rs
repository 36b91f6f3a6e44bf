//! Step 5 of a tick, and what `end_session` and check-ins trigger: waiting requests take free
//! slots, oldest first; requests that waited past the queue timeout are dropped.

use jiff::SignedDuration;

use super::records::{Records, SessionId};
use super::{Event, Shared, snapshot};
use crate::engine::{ServerId, assign};

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
pub(crate) fn serve(shared: &Shared, pool: Option<&str>) {
    let mut assigned = Vec::new();
    {
        let mut records = shared.records();
        let pools: Vec<String> = records
            .queued
            .iter()
            .filter(|(p, q)| !q.is_empty() && pool.is_none_or(|only| only == p.as_str()))
            .map(|(p, _)| p.clone())
            .collect();
        for pool in pools {
            // One snapshot per pool, kept in step with each seat (not one per request).
            let mut snap = snapshot::snapshot(shared, &records, &pool);
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
                assigned.push(Event::SessionAssigned {
                    session: q.session,
                    server,
                });
            }
        }
    }
    for event in assigned {
        if let Event::SessionAssigned { session, server } = &event {
            tracing::info!(session = session.0, %server, "queued request seated");
        }
        shared.emit(event);
    }
}

/// Drops requests that waited longer than the queue timeout.
pub(crate) fn expire(shared: &Shared) {
    let now = shared.now();
    let limit = SignedDuration::try_from(shared.queue_timeout).unwrap_or(SignedDuration::MAX);
    let mut expired = Vec::new();
    {
        let mut records = shared.records();
        let due = |q: &super::records::Queued| now.duration_since(q.since) >= limit;
        if !records.queued.values().any(|q| q.front().is_some_and(due)) {
            // Nothing expires: the records stay untouched (and unsaved).
            return;
        }
        for (pool, queue) in records.queued.iter_mut() {
            while let Some(q) = queue.front().copied() {
                let waited = now.duration_since(q.since);
                if waited < limit {
                    break;
                }
                queue.pop_front();
                expired.push(Event::RequestExpired {
                    session: q.session,
                    pool: pool.clone(),
                    waited_seconds: waited.as_secs(),
                });
            }
        }
        records.queued.retain(|_, q| !q.is_empty());
    }
    for event in expired {
        if let Event::RequestExpired {
            session,
            pool,
            waited_seconds,
        } = &event
        {
            tracing::warn!(
                session = session.0,
                pool,
                waited_seconds,
                "queued request expired"
            );
        }
        shared.emit(event);
    }
}
