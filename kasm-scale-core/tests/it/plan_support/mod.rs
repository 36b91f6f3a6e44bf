//! Carrying a plan out in its snapshot, and the engine's fixed point: a plan carried out and
//! planned again at the same instant asks for nothing more. Shared by the engine's property
//! tests (`engine_props`, `engine_demand`, `engine_fixed_point`).
// Each test file uses a part of it.
#![allow(dead_code)]

pub mod sim;

use jiff::Timestamp;
use kasm_scale_core::engine::{
    Action, Cause, Plan, PoolSnapshot, ServerId, ServerSnapshot, ServerState,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// What became of the servers a plan destroys once it was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destroyed {
    /// Still being destroyed: they count against `max_instances` until the provider confirms
    /// (the controller's records right after executing a plan).
    Destroying,
    /// Gone: the provider confirmed.
    Gone,
}

/// Ids for the servers a plan makes, drawn at random as the controller draws them (v4 UUIDs):
/// a new server may sort before or after the servers that exist.
pub fn new_ids() -> impl Strategy<Value = Vec<u128>> {
    prop::collection::vec(any::<u128>(), 64)
}

/// Ids for the servers a plan on `s` makes, spread over the id space like [`new_ids`] but
/// drawn from `s` itself (a property keeps its strategy, and with it its saved regressions).
pub fn ids_for(s: &PoolSnapshot) -> Vec<u128> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{s:?}").hash(&mut hasher);
    // splitmix64 from the snapshot's hash.
    let mut x = hasher.finish();
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..64)
        .map(|_| (u128::from(next()) << 64) | u128::from(next()))
        .collect()
}

/// The seed of a property's runs: `PROPTEST_RNG_SEED` when set, else `seed`, so that CI runs
/// the same cases every time and anyone can run others.
pub fn seed_or(seed: u64) -> proptest::test_runner::RngSeed {
    use proptest::test_runner::{Config, RngSeed};
    match Config::default().rng_seed {
        RngSeed::Random => RngSeed::Fixed(seed),
        chosen => chosen,
    }
}

/// The snapshot once `p` (planned on `s` at `now`) is carried out, as the controller's executor
/// carries it out: each provision becomes `count` servers of its config, provisioning, created
/// at `now`, with the config's sessions per server and reusability, the plan's `queue_slots`
/// shared out server by server; each destroyed server is being destroyed or gone (`destroyed`);
/// the configs take the plan's bookkeeping. A provision for the warm tier makes servers built
/// for it (`for_warm`); a stopped server is stopping (`Destroying`) or stopped (`Gone`), as its
/// stop is under way or done; a started one is starting, woken at `now`, not checked in, with
/// the start's `queue_slots`. The queue is unchanged: requests are seated when
/// servers are ready, not by a plan. New servers take their ids from `ids` in turn (then from
/// the top of the id space).
pub fn carry_out(
    s: &PoolSnapshot,
    p: &Plan,
    now: Timestamp,
    ids: &[u128],
    destroyed: Destroyed,
) -> PoolSnapshot {
    let mut next = s.clone();
    let gone: Vec<ServerId> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { server, .. } => Some(*server),
            _ => None,
        })
        .collect();
    match destroyed {
        Destroyed::Destroying => {
            for sv in next.servers.iter_mut().filter(|sv| gone.contains(&sv.id)) {
                sv.state = ServerState::Destroying;
            }
        }
        Destroyed::Gone => next.servers.retain(|sv| !gone.contains(&sv.id)),
    }
    for a in &p.actions {
        match a {
            Action::Stop { server, .. } => {
                for sv in next.servers.iter_mut().filter(|sv| sv.id == *server) {
                    sv.state = match destroyed {
                        Destroyed::Destroying => ServerState::Stopping,
                        Destroyed::Gone => ServerState::Stopped,
                    };
                }
            }
            Action::Start {
                server,
                queue_slots,
                ..
            } => {
                for sv in next.servers.iter_mut().filter(|sv| sv.id == *server) {
                    // A ready build of the tier is handed over as it is (the controller's
                    // `Wake::HandedOver`); a stopped server starts and must prove it is up.
                    if sv.state == ServerState::Stopped {
                        sv.state = ServerState::Starting;
                        sv.woken_at = Some(now);
                        sv.checked_in_at = None;
                    }
                    sv.queue_slots = *queue_slots;
                    sv.for_warm = false;
                }
            }
            _ => {}
        }
    }
    let mut made = 0usize;
    for a in &p.actions {
        let Action::Provision {
            config,
            count,
            queue_slots,
            cause,
            ..
        } = a
        else {
            continue;
        };
        let c = next
            .configs
            .iter()
            .position(|c| &c.policy.name == config)
            .expect("a provision names a config of the pool");
        let policy = next.configs[c].policy.clone();
        let mut queue_slots = *queue_slots;
        for _ in 0..*count {
            let slots = queue_slots.min(policy.sessions_per_server);
            queue_slots -= slots;
            let id = ids.get(made).copied().unwrap_or(u128::MAX - made as u128);
            made += 1;
            next.servers.push(ServerSnapshot {
                id: ServerId(uuid::Uuid::from_u128(id)),
                config: c as u32,
                state: ServerState::Provisioning,
                sessions: 0,
                capacity: policy.sessions_per_server,
                reusable: policy.reusable,
                used: false,
                created_at: now,
                checked_in_at: None,
                queue_slots: slots,
                outdated: false,
                drained: None,
                woken_at: None,
                for_warm: *cause == Cause::WarmTier,
            });
        }
    }
    for c in &mut next.configs {
        c.bookkeeping = p.bookkeeping[&c.policy.name].clone();
    }
    next
}

/// Servers of config `c` in `s`, whatever their state (what counts against `max_instances`).
pub fn live(s: &PoolSnapshot, c: usize) -> u64 {
    s.servers.iter().filter(|x| x.config as usize == c).count() as u64
}

/// The engine's fixed point on `s` at `now`: plan, carry the plan out, plan again at the same
/// instant.
///
/// - With the destroyed servers still being destroyed, the second plan has no action at all
///   and keeps the bookkeeping as the first left it: the first plan made what its rules ask
///   for, so nothing is provisioned again and nothing (least of all what was just built) is
///   destroyed.
/// - With them gone, a config may provision again only where the first plan left it at
///   `max_instances` (the servers being destroyed still counted), and no more servers than it
///   lost; nothing is destroyed.
pub fn check_fixed_point(
    s: &PoolSnapshot,
    now: Timestamp,
    ids: &[u128],
) -> Result<(), TestCaseError> {
    let first = kasm_scale_core::engine::plan(s, now);
    let next = carry_out(s, &first, now, ids, Destroyed::Destroying);
    let again = kasm_scale_core::engine::plan(&next, now);
    prop_assert!(
        again.actions.is_empty(),
        "planned again after its plan was carried out, it asks for more: {:#?}\nfirst plan {:#?}\nsnapshot {:#?}",
        again.actions,
        first.actions,
        s
    );
    prop_assert_eq!(
        &again.bookkeeping,
        &first.bookkeeping,
        "planned again, the bookkeeping moves\nfirst plan {:#?}\nsnapshot {:#?}",
        first.actions,
        s
    );

    let done = carry_out(s, &first, now, ids, Destroyed::Gone);
    let again = kasm_scale_core::engine::plan(&done, now);
    let mut provisioned = vec![0u64; s.configs.len()];
    for a in &again.actions {
        match a {
            Action::Destroy { server, .. } => prop_assert!(
                false,
                "planned again once its destroys were done, it destroys {}: {:#?}\nfirst plan {:#?}\nsnapshot {:#?}",
                server,
                again.actions,
                first.actions,
                s
            ),
            Action::Stop { server, .. } | Action::Start { server, .. } => prop_assert!(
                false,
                "planned again once its stops and starts were done, it acts on {} again: {:#?}",
                server,
                again.actions
            ),
            Action::Provision { config, count, .. } => {
                let c = s
                    .configs
                    .iter()
                    .position(|x| &x.policy.name == config)
                    .expect("a provision names a config of the pool");
                provisioned[c] += u64::from(*count);
            }
        }
    }
    for (c, &count) in provisioned.iter().enumerate() {
        let capped = live(&next, c) >= u64::from(s.configs[c].policy.max_instances);
        let lost = live(&next, c) - live(&done, c);
        prop_assert!(
            count == 0 || (capped && count <= lost),
            "planned again once its destroys were done, {} provisions {} (at max_instances after the first plan: {}, servers gone: {}): {:#?}\nfirst plan {:#?}\nsnapshot {:#?}",
            s.configs[c].policy.name,
            count,
            capped,
            lost,
            again.actions,
            first.actions,
            s
        );
    }
    Ok(())
}
