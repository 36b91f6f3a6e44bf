//! Rolling replacement (issue 26, item 3, the engine's part): the rules one by one. The
//! properties over simulated runs are in `engine_rollout_props.rs`.

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::{AutoScaleConfig, ConnectionType, Generation, Surge};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, Plan, PoolSnapshot, RolloutState, ScalingPolicy,
    ServerId, ServerSnapshot, ServerState, assign, plan,
};

pub(crate) const G: Generation = Generation(2);

pub(crate) fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

pub(crate) fn ago(s: i64) -> Timestamp {
    now() - SignedDuration::from_secs(s)
}

pub(crate) fn id(n: u128) -> ServerId {
    ServerId(uuid::Uuid::from_u128(n))
}

/// A config of `sessions` per server keeping `minimum`, at most `max` servers, canary 1,
/// max_surge 2, current generation [`G`].
pub(crate) fn config(minimum: u32, sessions: u32, max: u32) -> ConfigSnapshot {
    let mut c = AutoScaleConfig::new("aws", "p", ConnectionType::Rdp);
    c.minimum_pool_standby_sessions = minimum;
    c.max_simultaneous_sessions_per_server = sessions;
    c.reusable = true;
    c.rollout.max_surge = Surge::Servers(2);
    ConfigSnapshot {
        policy: ScalingPolicy::new(&c, max),
        bookkeeping: Bookkeeping::default(),
        generation: Some(G),
    }
}

/// A ready server with `sessions` of `capacity`, created `age` seconds ago.
pub(crate) fn ready(n: u128, sessions: u32, capacity: u32, outdated: bool) -> ServerSnapshot {
    ServerSnapshot {
        id: id(n),
        config: 0,
        state: ServerState::Running,
        sessions,
        capacity,
        reusable: true,
        used: sessions > 0,
        created_at: ago(7200 - n as i64),
        checked_in_at: Some(ago(7000 - n as i64)),
        queue_slots: 0,
        outdated,
        drained: None,
        woken_at: None,
        for_warm: false,
    }
}

pub(crate) fn pending(n: u128, capacity: u32, age: i64) -> ServerSnapshot {
    ServerSnapshot {
        state: ServerState::Starting,
        checked_in_at: None,
        created_at: ago(age),
        ..ready(n, 0, capacity, false)
    }
}

pub(crate) fn pool(config: ConfigSnapshot, servers: Vec<ServerSnapshot>) -> PoolSnapshot {
    PoolSnapshot {
        pool: "p".into(),
        configs: vec![config],
        servers,
        ..PoolSnapshot::default()
    }
}

pub(crate) fn provisions(p: &Plan) -> Vec<(u32, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Provision { count, cause, .. } => Some((*count, *cause)),
            _ => None,
        })
        .collect()
}

pub(crate) fn destroys(p: &Plan) -> Vec<(ServerId, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { server, cause, .. } => Some((*server, *cause)),
            _ => None,
        })
        .collect()
}

pub(crate) fn rollout(p: &Plan) -> RolloutState {
    p.bookkeeping["aws"].rollout.clone().expect("a rollout")
}

/// The state a rollout of [`G`] started an hour ago is in, with its canary ready.
pub(crate) fn replacing() -> RolloutState {
    RolloutState {
        generation: G,
        started_at: ago(3600),
        failures_since: ago(3600),
        canary_ready_at: Some(ago(3000)),
        paused: None,
        finished_at: None,
    }
}

#[test]
fn without_a_known_generation_nothing_is_outdated() {
    let servers: Vec<ServerSnapshot> = (1..=4).map(|n| ready(n, 0, 1, true)).collect();
    let mut c = config(2, 1, 10);
    c.generation = None;
    let flagged = plan(&pool(c.clone(), servers.clone()), now());
    let plain: Vec<ServerSnapshot> = servers
        .into_iter()
        .map(|s| ServerSnapshot {
            outdated: false,
            ..s
        })
        .collect();
    assert_eq!(flagged, plan(&pool(c, plain), now()));
    assert_eq!(flagged.bookkeeping["aws"].rollout, None);
}

#[test]
fn a_rollout_starts_with_its_canary_and_replaces_nothing_before_it_is_ready() {
    // Four idle outdated servers hold the minimum of 2: their room still counts, one canary
    // server is made, nothing goes.
    let s = pool(
        config(2, 1, 10),
        (1..=4).map(|n| ready(n, 0, 1, true)).collect(),
    );
    let p = plan(&s, now());
    assert_eq!(provisions(&p), [(1, Cause::Rollout)], "{p:#?}");
    assert!(destroys(&p).is_empty());
    assert!(
        p.actions[0].reason().contains("canary"),
        "{}",
        p.actions[0].reason()
    );
    let r = rollout(&p);
    assert_eq!(
        (r.generation, r.started_at, r.failures_since),
        (G, now(), now())
    );
    assert_eq!(
        (r.canary_ready_at, r.paused.clone(), r.finished_at),
        (None, None, None)
    );
    // The canary coming up: nothing more, the state as it was.
    let mut next = s.clone();
    next.servers.push(pending(9, 1, 60));
    next.configs[0].bookkeeping = p.bookkeeping["aws"].clone();
    let again = plan(&next, now() + SignedDuration::from_secs(60));
    assert!(again.actions.is_empty(), "{again:#?}");
    assert_eq!(again.bookkeeping["aws"].rollout, Some(r));
}

#[test]
fn once_the_canary_is_ready_replacements_come_within_max_surge_and_the_old_stay() {
    // The canary (server 9) is ready: outdated room stops counting, so 1 current free < 2;
    // max_surge 2 lets one replacement come up. The outdated servers stay: ready current free
    // (1) does not cover the minimum yet.
    let mut servers: Vec<ServerSnapshot> = (1..=4).map(|n| ready(n, 0, 1, true)).collect();
    servers.push(ready(9, 0, 1, false));
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(RolloutState {
        canary_ready_at: None,
        ..replacing()
    });
    let p = plan(&pool(c, servers.clone()), now());
    assert_eq!(provisions(&p), [(1, Cause::Rollout)], "{p:#?}");
    assert!(destroys(&p).is_empty(), "{p:#?}");
    assert_eq!(rollout(&p).canary_ready_at, Some(now()));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("4 idle outdated server(s) stay")),
        "{:?}",
        p.notes
    );
    // A larger deficit: surge 2 bounds what comes up (one already coming).
    let mut c = config(6, 1, 20);
    c.bookkeeping.rollout = Some(replacing());
    let mut more = servers.clone();
    more.push(pending(10, 1, 60));
    let p = plan(&pool(c, more), now());
    assert_eq!(provisions(&p), [(1, Cause::Rollout)], "{p:#?}");
}

#[test]
fn idle_outdated_servers_go_once_current_servers_hold_the_minimum_busy_ones_when_empty() {
    let mut servers = vec![
        ready(1, 0, 2, true),
        ready(2, 1, 2, true),
        ready(3, 2, 2, true),
        ready(4, 0, 2, true),
    ];
    servers.push(ready(8, 0, 2, false));
    servers.push(ready(9, 0, 2, false));
    let mut c = config(4, 2, 10);
    c.bookkeeping.rollout = Some(replacing());
    let s = pool(c, servers);
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        [(id(1), Cause::Rollout), (id(4), Cause::Rollout)],
        "oldest first, never one with a session: {p:#?}"
    );
    assert!(provisions(&p).is_empty(), "{p:#?}");
    assert_eq!(rollout(&p).finished_at, None);
    // Not while a request waits.
    let mut waiting = s.clone();
    waiting.pending_requests = 1;
    assert!(destroys(&plan(&waiting, now())).is_empty());
    // The busy ones' sessions end: they go, and the rollout is finished.
    let mut later = s.clone();
    later.servers.retain(|v| v.id != id(1) && v.id != id(4));
    for v in &mut later.servers {
        if v.outdated {
            v.sessions = 0;
        }
    }
    let p = plan(&later, now());
    assert_eq!(
        destroys(&p),
        [(id(2), Cause::Rollout), (id(3), Cause::Rollout)]
    );
    assert_eq!(rollout(&p).finished_at, Some(now()));
}

#[test]
fn a_retire_counts_the_ready_room_the_scale_in_beside_it_leaves() {
    // (found by the free-slot property) Three idle current servers, one coming up, one idle
    // outdated server; minimum 2, surplus for long. The retire counted on the ready current
    // room (3 >= 2) and the scale-in beside it, counting the server coming up as Kasm's rule
    // does, took two of them: 1 ready free slot was left for a minimum of 2 until the new one
    // booted. The scale-in comes first now, and the retire counts what it leaves (1 < 2): the
    // outdated server stays, and the ready free slots stay at the minimum.
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(replacing());
    c.bookkeeping.downscale_requested_at = Some(ago(100_000));
    let servers = vec![
        ready(1, 0, 1, true),
        ready(2, 0, 1, false),
        ready(3, 0, 1, false),
        ready(4, 0, 1, false),
        pending(9, 1, 60),
    ];
    let s = pool(c.clone(), servers);
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        [(id(2), Cause::Surplus), (id(3), Cause::Surplus)],
        "{p:#?}"
    );
    assert!(
        p.notes.iter().any(|n| n.contains(
            "1 idle outdated server(s) stay: 1 ready current free < minimum 2"
        )),
        "{:?}",
        p.notes
    );
    // Planned again with the scale-in done, it retires nothing either; once the new server is
    // ready the outdated one goes.
    let mut next = s.clone();
    next.servers.retain(|v| v.id != id(2) && v.id != id(3));
    next.configs[0].bookkeeping = p.bookkeeping["aws"].clone();
    assert!(plan(&next, now()).actions.is_empty());
    next.servers[2] = ready(9, 0, 1, false);
    let p = plan(&next, now());
    assert_eq!(destroys(&p), [(id(1), Cause::Rollout)], "{p:#?}");
}

#[test]
fn a_current_server_that_does_not_check_in_pauses_the_rollout_and_nothing_more_is_built() {
    // The canary never checked in; the minimum's deficit is not made either.
    let mut servers: Vec<ServerSnapshot> = (1..=2).map(|n| ready(n, 1, 1, true)).collect();
    servers.push(pending(9, 1, 5000));
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(RolloutState {
        canary_ready_at: None,
        ..replacing()
    });
    let s = pool(c, servers);
    let p = plan(&s, now());
    assert_eq!(destroys(&p), [(id(9), Cause::CheckinTimeout)]);
    assert!(provisions(&p).is_empty(), "{p:#?}");
    let pause = rollout(&p).paused.expect("paused");
    assert_eq!(pause.at, now());
    assert_eq!(
        pause.reason,
        format!(
            "server {} of generation {G} did not check in within 1200 s",
            id(9)
        )
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("paused") && n.contains(&pause.reason))
    );
    // Paused, long after: still nothing, even for the minimum, and the old servers stay.
    let mut later = s.clone();
    later.servers.pop();
    later.configs[0].bookkeeping = p.bookkeeping["aws"].clone();
    let p2 = plan(&later, now() + SignedDuration::from_secs(86_400));
    assert!(p2.actions.is_empty(), "{p2:#?}");
    // The operator resumes: building goes on (one at a time after the failure).
    later.configs[0]
        .bookkeeping
        .rollout
        .as_mut()
        .unwrap()
        .paused = None;
    later.configs[0]
        .bookkeeping
        .rollout
        .as_mut()
        .unwrap()
        .failures_since = now() + SignedDuration::from_secs(86_000);
    let p3 = plan(&later, now() + SignedDuration::from_secs(86_400));
    assert_eq!(provisions(&p3), [(1, Cause::BelowMinimum)], "{p3:#?}");
    assert_eq!(rollout(&p3).paused, None);
}

#[test]
fn a_canary_that_fails_after_the_last_old_server_went_still_pauses_the_rollout() {
    // (found by the failed-canary property, seed 7) The canary (9) never checks in; the one
    // outdated server is single-use, and its session ended: it goes in the very plan the
    // canary times out. The rollout used to be skipped as soon as no outdated server was
    // left, so the canary's failure paused nothing and the broken generation went on being
    // built for the minimum.
    let mut c = config(1, 1, 10);
    c.policy.reusable = false;
    c.bookkeeping.rollout = Some(RolloutState {
        canary_ready_at: None,
        ..replacing()
    });
    let spent = ServerSnapshot {
        reusable: false,
        used: true,
        ..ready(1, 0, 1, true)
    };
    let s = pool(c.clone(), vec![spent, pending(9, 1, 5000)]);
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        [(id(1), Cause::SessionEnded), (id(9), Cause::CheckinTimeout)]
    );
    assert!(provisions(&p).is_empty(), "{p:#?}");
    let r = rollout(&p);
    assert!(r.paused.is_some(), "{r:?}");
    assert_eq!(r.finished_at, None);
    // The old server went earlier (the rollout then counted as finished, with no canary
    // ready): the canary timing out later still pauses it, and it is not finished any more.
    let mut c = c.clone();
    c.bookkeeping.rollout = Some(RolloutState {
        canary_ready_at: None,
        finished_at: Some(ago(600)),
        ..replacing()
    });
    let p = plan(&pool(c.clone(), vec![pending(9, 1, 5000)]), now());
    assert_eq!(destroys(&p), [(id(9), Cause::CheckinTimeout)]);
    assert!(provisions(&p).is_empty(), "{p:#?}");
    let r = rollout(&p);
    assert!(r.paused.is_some(), "{r:?}");
    assert_eq!(r.finished_at, None);
    // With nothing left to replace no canary is built for it: the minimum's server is all,
    // and once a current server is ready the canary is, and the rollout stays finished.
    let p = plan(&pool(c.clone(), vec![]), now());
    assert_eq!(provisions(&p), [(1, Cause::BelowMinimum)], "{p:#?}");
    let p = plan(&pool(c, vec![ready(9, 0, 1, false)]), now());
    assert!(p.actions.is_empty(), "{p:#?}");
    let r = rollout(&p);
    assert_eq!(
        (r.canary_ready_at, r.finished_at),
        (Some(now()), Some(ago(600)))
    );
}

#[test]
fn a_create_refused_after_the_rollout_began_pauses_it_an_old_timeout_does_not() {
    let servers: Vec<ServerSnapshot> = (1..=3).map(|n| ready(n, 0, 1, true)).collect();
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(replacing());
    c.bookkeeping.consecutive_failures = 2;
    c.bookkeeping.last_failure_at = Some(ago(30));
    let p = plan(&pool(c.clone(), servers.clone()), now());
    let pause = rollout(&p).paused.expect("paused");
    assert!(
        pause.reason.contains("a create of generation"),
        "{}",
        pause.reason
    );
    assert!(
        pause.reason.contains("2 consecutive failure(s)"),
        "{}",
        pause.reason
    );
    assert!(provisions(&p).is_empty());
    // Without pause_on_failure: not paused, the backoff applies.
    c.policy.rollout.pause_on_failure = false;
    let p = plan(&pool(c, servers.clone()), now());
    assert_eq!(rollout(&p).paused, None);
    // An outdated server that times out counts a failure but does not pause, and the next
    // plan does not take it for a failure of the new generation.
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(replacing());
    let mut old = servers.clone();
    old.push(ServerSnapshot {
        outdated: true,
        ..pending(7, 1, 5000)
    });
    let s = pool(c, old);
    let p = plan(&s, now());
    assert_eq!(destroys(&p)[0], (id(7), Cause::CheckinTimeout));
    assert_eq!(p.bookkeeping["aws"].consecutive_failures, 1);
    let r = rollout(&p);
    assert_eq!((r.paused, r.failures_since), (None, now()));
    let mut next = s.clone();
    next.servers.pop();
    next.configs[0].bookkeeping = p.bookkeeping["aws"].clone();
    let p = plan(&next, now() + SignedDuration::from_secs(60));
    assert_eq!(rollout(&p).paused, None);
}

/// At max_instances no replacement can be made: the rollout takes room from the surplus only
/// (an idle outdated server goes while the ready room left still covers the minimum; its place
/// takes a replacement at the next plan), and with no surplus it waits and says so. (It waited
/// in every case before, and a pool whose minimum needs all but a few of its servers never
/// finished its rollout.)
#[test]
fn at_max_instances_the_rollout_takes_room_from_the_surplus_only() {
    // Minimum 3, four servers allowed, all four there: three outdated, one current.
    let mut servers: Vec<ServerSnapshot> = (1..=3).map(|n| ready(n, 0, 1, true)).collect();
    servers.push(ready(9, 0, 1, false));
    let mut c = config(3, 1, 4);
    c.bookkeeping.rollout = Some(replacing());
    let p = plan(&pool(c.clone(), servers.clone()), now());
    let destroyed: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { server, cause, .. } => Some((*server, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(destroyed, [(id(1), Cause::Rollout)], "{p:#?}");
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::Provision { .. })),
        "no room to build in this plan: {p:#?}"
    );
    // No surplus: one outdated server busy, the ready room is the minimum exactly.
    servers[1].sessions = 1;
    servers[1].used = true;
    let p = plan(&pool(c, servers), now());
    assert!(p.actions.is_empty(), "{p:#?}");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("waits") && n.contains("max_instances")),
        "{:?}",
        p.notes
    );
}

#[test]
fn sessions_go_to_current_servers_first_and_scale_in_spares_outdated_ones() {
    let mut s = pool(
        config(0, 4, 10),
        vec![ready(1, 2, 4, true), ready(2, 1, 4, false)],
    );
    assert_eq!(assign(&s), Some(id(2)));
    s.servers[1].sessions = 4;
    assert_eq!(assign(&s), Some(id(1)));
    // Long surplus: only current idle servers are scaled in, never the outdated idle one
    // (during the canary its room counts as free, but it goes by the rollout).
    let mut c = config(0, 1, 10);
    c.bookkeeping.downscale_requested_at = Some(ago(100_000));
    c.bookkeeping.rollout = Some(RolloutState {
        canary_ready_at: None,
        ..replacing()
    });
    c.policy.enabled = false;
    let s = pool(
        c,
        vec![
            ready(1, 0, 1, true),
            ready(2, 0, 1, false),
            ready(3, 0, 1, false),
        ],
    );
    let p = plan(&s, now());
    // A disabled config has no canary to wait for: the outdated server retires, the
    // current ones are scaled in.
    assert_eq!(
        destroys(&p),
        [
            (id(1), Cause::Rollout),
            (id(2), Cause::Surplus),
            (id(3), Cause::Surplus)
        ],
        "{p:#?}"
    );
}

#[test]
fn a_rollback_makes_the_old_servers_current_and_the_new_ones_go_when_idle() {
    // Rolled out to H (3), rolled back to G: G's servers (1, 2) are current again, H's
    // (8 idle, 9 with a session) are outdated. The state of H's rollout (paused) is replaced.
    let mut c = config(2, 1, 10);
    c.bookkeeping.rollout = Some(RolloutState {
        generation: Generation(3),
        paused: Some(kasm_scale_core::engine::RolloutPause {
            at: ago(600),
            reason: "server … did not check in".into(),
        }),
        ..replacing()
    });
    let servers = vec![
        ready(1, 0, 1, false),
        ready(2, 0, 1, false),
        ready(8, 0, 1, true),
        ready(9, 1, 1, true),
    ];
    let p = plan(&pool(c, servers), now());
    assert_eq!(destroys(&p), [(id(8), Cause::Rollout)], "{p:#?}");
    let r = rollout(&p);
    assert_eq!((r.generation, r.started_at, r.paused), (G, now(), None));
    assert_eq!(
        r.canary_ready_at,
        Some(now()),
        "G's own servers are its canary"
    );
}
