//! Step 2 of a tick: the engine's view of every pool, read from the records in one pass, with
//! each pool's demand signal. Broker calls and seating read one pool's view from here too.
//!
//! Besides the records, the view carries what an operator changed: a server built from an
//! older generation of its config is `outdated` (the rollout replaces it), a server a drain
//! covers is `drained`, and the servers of a config (or pool) the configuration no longer has
//! appear under a disabled stand-in of it, drained, so that they go once empty.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::builder::Setup;
use super::demand;
use super::drain;
use super::records::{Records, ServerInfo};
use super::state::State;
use crate::config::{AutoScaleConfig, Config, ConnectionType, Generation};
use crate::engine::{
    ConfigSnapshot, DrainThen, PoolSnapshot, ScalingPolicy, ServerSnapshot, SnapshotBuilder,
};

/// Every auto-scale config's current generation, by name.
pub(crate) fn generations(config: &Config) -> HashMap<String, Generation> {
    config
        .autoscale_configs()
        .filter_map(|(_, c)| {
            let name = &c.autoscale_config_name;
            config.generation(name).map(|g| (name.clone(), g))
        })
        .collect()
}

/// Step 2: every pool's snapshot at `now`, with the demand signal of the pools that use it.
pub(crate) fn snapshots_at(setup: &Setup, state: &State, now: Timestamp) -> Vec<PoolSnapshot> {
    let records = state.records();
    let mut snapshots = snapshots(setup, &records, None);
    demand::signals(&setup.config, &records, &mut snapshots, now);
    // (ours) A stopped server none of whose offerings can be tried (its own is skipped after a
    // start refused for capacity, and so is every other it could be moved to) is shown as
    // still stopping: the engine neither starts it (its start would fail again) nor replaces
    // it in the tier, and builds the free slots it cannot give on the next offering.
    let unavailable: std::collections::HashSet<_> = records
        .servers
        .values()
        .filter(|s| s.state == crate::engine::ServerState::Stopped)
        // A shortcut of the test below: not skipped, its own offering is tried first.
        .filter(|s| state.skipped.is_skipped(&s.provider, s.offering, now))
        .filter(|s| {
            let resize = setup
                .providers
                .get(&s.provider)
                .is_some_and(|p| p.capabilities().resize_stopped);
            setup.config.vm_provider(&s.provider).is_none_or(|p| {
                super::offerings::start_order(&state.skipped, p, resize, s.offering, now).is_empty()
            })
        })
        .map(|s| s.id)
        .collect();
    if !unavailable.is_empty() {
        for server in snapshots.iter_mut().flat_map(|p| p.servers.iter_mut()) {
            if unavailable.contains(&server.id) {
                server.state = crate::engine::ServerState::Stopping;
            }
        }
    }
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
        woken_at: s.woken_at,
        for_warm: s.for_warm,
    }
}

/// The engine's view of every pool (or only of `pool`).
pub(crate) fn snapshots(setup: &Setup, records: &Records, pool: Option<&str>) -> Vec<PoolSnapshot> {
    let config = &setup.config;
    let mut builder = SnapshotBuilder::new(
        config,
        pool,
        |config| records.bookkeeping.get(config).cloned().unwrap_or_default(),
        |pool| records.waiting(pool),
    );
    // Servers of configs the configuration no longer has, by (pool, config).
    let mut retired: BTreeMap<(&str, &str), Vec<&ServerInfo>> = BTreeMap::new();
    for s in records.servers.values() {
        if pool.is_some_and(|p| p != s.pool) {
            continue;
        }
        let mut view = server_snapshot(s);
        let current = setup.generations.get(&s.config);
        view.outdated =
            s.generation.is_some() && current.is_some() && s.generation.as_ref() != current;
        if !records.drains.is_empty() {
            view.drained = drain::drained(&records.drains, s);
        }
        if builder.add(&s.config, view).is_none() {
            retired.entry((&s.pool, &s.config)).or_default().push(s);
        }
    }
    let mut snapshots = builder.finish();
    for snapshot in &mut snapshots {
        let pool_drained = records
            .drains
            .contains_key(&drain::DrainTarget::Pool(snapshot.pool.clone()).key());
        for c in &mut snapshot.configs {
            c.generation = setup.generations.get(&c.policy.name).copied();
            // A drained config (or pool) makes no server: its replacements would be drained
            // too. The pool's other configs replace its slots.
            if pool_drained
                || (!records.drains.is_empty()
                    && records
                        .drains
                        .contains_key(&drain::DrainTarget::Config(c.policy.name.clone()).key()))
            {
                c.policy.enabled = false;
            }
        }
    }
    for ((pool, name), servers) in retired {
        let at = match snapshots.iter().position(|p| p.pool == pool) {
            Some(at) => at,
            None => {
                snapshots.push(PoolSnapshot {
                    pool: pool.to_owned(),
                    pending_requests: records.waiting(pool),
                    ..PoolSnapshot::default()
                });
                snapshots.len() - 1
            }
        };
        let snapshot = &mut snapshots[at];
        let index = snapshot.configs.len() as u32;
        snapshot.configs.push(ConfigSnapshot {
            policy: retired_policy(name, servers[0]),
            bookkeeping: records.bookkeeping.get(name).cloned().unwrap_or_default(),
            generation: None,
        });
        for s in servers {
            let mut view = server_snapshot(s);
            view.config = index;
            // Drained by its removal: gone once empty, unless an operator keeps it.
            view.drained = match drain::drained(&records.drains, s) {
                Some(DrainThen::Keep) => Some(DrainThen::Keep),
                _ => Some(DrainThen::Destroy),
            };
            snapshot.servers.push(view);
        }
    }
    snapshots
}

/// The stand-in policy of a removed config, from one of its servers: disabled (it makes
/// nothing), with the defaults of every rule that may still destroy its servers.
fn retired_policy(name: &str, server: &ServerInfo) -> ScalingPolicy {
    let mut config = AutoScaleConfig::new(name, server.provider.clone(), ConnectionType::Rdp);
    config.enabled = false;
    config.max_simultaneous_sessions_per_server = server.capacity;
    config.reusable = server.reusable;
    config.require_checkin = server.requires_checkin;
    ScalingPolicy::new(&config, 0)
}

/// The engine's view of `pool`.
pub(crate) fn snapshot(setup: &Setup, records: &Records, pool: &str) -> PoolSnapshot {
    snapshots(setup, records, Some(pool))
        .into_iter()
        .find(|s| s.pool == pool)
        .unwrap_or_default()
}
