//! Step 2 of a tick: the engine's view of every pool, read from the records in one pass, with
//! each pool's demand signal. Broker calls and seating read one pool's view from here too.

use jiff::Timestamp;

use super::demand;
use super::records::{Records, ServerInfo};
use super::state::State;
use crate::config::Config;
use crate::engine::{PoolSnapshot, ServerSnapshot, SnapshotBuilder};

/// Step 2: every pool's snapshot at `now`, with the demand signal of the pools that use it.
pub(crate) fn snapshots_at(config: &Config, state: &State, now: Timestamp) -> Vec<PoolSnapshot> {
    let records = state.records();
    let mut snapshots = snapshots(config, &records, None);
    demand::signals(config, &records, &mut snapshots, now);
    snapshots
}

/// How the engine sees `server`. A server whose sessions are unknown (adopted after the saved
/// state was lost) counts as full and used: it takes no session and is not destroyed.
pub(crate) fn server_snapshot(s: &ServerInfo) -> ServerSnapshot {
    ServerSnapshot {
        id: s.id,
        config: 0,
        state: s.state,
        sessions: if s.sessions_unknown {
            s.capacity.max(s.sessions)
        } else {
            s.sessions
        },
        capacity: s.capacity,
        reusable: s.reusable,
        used: s.used || s.sessions_unknown,
        created_at: s.created_at,
        checked_in_at: s.checked_in_at,
        queue_slots: s.queue_slots,
        outdated: false,
        drained: None,
    }
}

/// The engine's view of every pool (or only of `pool`).
pub(crate) fn snapshots(
    config: &Config,
    records: &Records,
    pool: Option<&str>,
) -> Vec<PoolSnapshot> {
    let mut builder = SnapshotBuilder::new(
        config,
        pool,
        |config| records.bookkeeping.get(config).cloned().unwrap_or_default(),
        |pool| records.waiting(pool),
    );
    for s in records.servers.values() {
        if pool.is_none_or(|p| p == s.pool) {
            builder.add(&s.config, server_snapshot(s));
        }
    }
    builder.finish()
}

/// The engine's view of `pool`.
pub(crate) fn snapshot(config: &Config, records: &Records, pool: &str) -> PoolSnapshot {
    snapshots(config, records, Some(pool))
        .pop()
        .unwrap_or_default()
}
