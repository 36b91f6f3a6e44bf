//! Drained servers (issue 26, item 4, the engine's part): every state of a drained server ×
//! `then = destroy | keep`, the room of drained servers, placement, and a property over random
//! pools.

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::{AutoScaleConfig, ConnectionType};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, DrainThen, PoolSnapshot, ScalingPolicy, ServerId,
    ServerSnapshot, ServerState, assign, plan,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::plan_support;

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn ago(s: i64) -> Timestamp {
    now() - SignedDuration::from_secs(s)
}

fn id(n: u128) -> ServerId {
    ServerId(uuid::Uuid::from_u128(n))
}

fn config(minimum: u32, sessions: u32, max: u32) -> ConfigSnapshot {
    let mut c = AutoScaleConfig::new("aws", "p", ConnectionType::Rdp);
    c.minimum_pool_standby_sessions = minimum;
    c.max_simultaneous_sessions_per_server = sessions;
    c.reusable = sessions > 1;
    ConfigSnapshot {
        policy: ScalingPolicy::new(&c, max),
        bookkeeping: Bookkeeping::default(),
        generation: None,
    }
}

fn ready(n: u128, sessions: u32, capacity: u32) -> ServerSnapshot {
    ServerSnapshot {
        id: id(n),
        config: 0,
        state: ServerState::Running,
        sessions,
        capacity,
        reusable: capacity > 1,
        used: sessions > 0,
        created_at: ago(3600),
        checked_in_at: Some(ago(3300)),
        queue_slots: 0,
        outdated: false,
        drained: None,
        woken_at: None,
        for_warm: false,
    }
}

fn pool(configs: Vec<ConfigSnapshot>, servers: Vec<ServerSnapshot>) -> PoolSnapshot {
    PoolSnapshot {
        pool: "p".into(),
        configs,
        servers,
        ..PoolSnapshot::default()
    }
}

fn destroys(p: &kasm_scale_core::engine::Plan) -> Vec<(ServerId, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { server, cause, .. } => Some((*server, *cause)),
            _ => None,
        })
        .collect()
}

fn provisioned(p: &kasm_scale_core::engine::Plan) -> u32 {
    p.actions
        .iter()
        .map(|a| match a {
            Action::Provision { count, .. } => *count,
            _ => 0,
        })
        .sum()
}

#[test]
fn every_state_of_a_drained_server_with_destroy_and_keep() {
    // (name, server, whether it has no session and is not already being destroyed)
    let states: Vec<(&str, ServerSnapshot, bool)> = vec![
        (
            "provisioning",
            ServerSnapshot {
                state: ServerState::Provisioning,
                checked_in_at: None,
                created_at: ago(60),
                ..ready(1, 0, 1)
            },
            true,
        ),
        (
            "starting",
            ServerSnapshot {
                state: ServerState::Starting,
                checked_in_at: None,
                created_at: ago(300),
                ..ready(1, 0, 1)
            },
            true,
        ),
        (
            "starting past its check-in timeout",
            ServerSnapshot {
                state: ServerState::Starting,
                checked_in_at: None,
                created_at: ago(100_000),
                ..ready(1, 0, 1)
            },
            true,
        ),
        ("running idle", ready(1, 0, 4), true),
        ("running with sessions", ready(1, 2, 4), false),
        ("running full", ready(1, 4, 4), false),
        (
            "destroying",
            ServerSnapshot {
                state: ServerState::Destroying,
                ..ready(1, 0, 4)
            },
            false,
        ),
        (
            "spent single-use",
            ServerSnapshot {
                used: true,
                reusable: false,
                ..ready(1, 0, 1)
            },
            true,
        ),
        (
            "single-use in its session",
            ServerSnapshot {
                used: true,
                reusable: false,
                ..ready(1, 1, 1)
            },
            false,
        ),
    ];
    for (name, server, empty) in states {
        for then in [DrainThen::Destroy, DrainThen::Keep] {
            let s = pool(
                vec![config(0, server.capacity, 10)],
                vec![ServerSnapshot {
                    drained: Some(then),
                    ..server.clone()
                }],
            );
            let p = plan(&s, now());
            let expected = if then == DrainThen::Destroy && empty {
                vec![(id(1), Cause::Drained)]
            } else {
                vec![]
            };
            assert_eq!(destroys(&p), expected, "{name}, then {then:?}: {p:#?}");
            if let Some(Action::Destroy { reason, .. }) = p.actions.first() {
                assert!(reason.contains("drained"), "{reason}");
            }
            // Undrained, the same server is the rules' again.
            let undrained = plan(
                &pool(vec![config(0, server.capacity, 10)], vec![server.clone()]),
                now(),
            );
            if then == DrainThen::Keep && name == "spent single-use" {
                assert_eq!(destroys(&undrained), [(id(1), Cause::SessionEnded)]);
            }
            if then == DrainThen::Keep && name == "starting past its check-in timeout" {
                assert_eq!(destroys(&undrained), [(id(1), Cause::CheckinTimeout)]);
            }
        }
    }
}

#[test]
fn a_drained_server_s_room_is_not_free_and_the_minimum_replaces_it() {
    // Minimum 4 on 4-session servers: one idle server holds it. Drained, it does not: a
    // replacement is made, and the drained one goes (destroy) or stays (keep).
    for then in [DrainThen::Destroy, DrainThen::Keep] {
        let s = pool(
            vec![config(4, 4, 10)],
            vec![ServerSnapshot {
                drained: Some(then),
                ..ready(1, 0, 4)
            }],
        );
        let p = plan(&s, now());
        assert_eq!(provisioned(&p), 1, "{then:?}: {p:#?}");
        assert!(matches!(
            p.actions
                .iter()
                .find(|a| matches!(a, Action::Provision { .. })),
            Some(Action::Provision {
                cause: Cause::BelowMinimum,
                ..
            })
        ));
    }
    // It still counts against max_instances: at the cap, nothing is made.
    let s = pool(
        vec![config(4, 4, 1)],
        vec![ServerSnapshot {
            drained: Some(DrainThen::Keep),
            ..ready(1, 0, 4)
        }],
    );
    let p = plan(&s, now());
    assert_eq!(provisioned(&p), 0);
    assert!(
        p.notes.iter().any(|n| n.contains("max_instances")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_drained_server_takes_no_session_and_no_waiting_request() {
    let drained = ServerSnapshot {
        drained: Some(DrainThen::Keep),
        ..ready(1, 3, 4)
    };
    // Depth-first would pick the fullest: the drained one. It picks the other.
    let mut s = pool(
        vec![config(0, 4, 10)],
        vec![drained.clone(), ready(2, 1, 4)],
    );
    assert_eq!(assign(&s), Some(id(2)));
    s.servers[1].sessions = 4;
    assert_eq!(assign(&s), None, "only the drained server has room");
    // A waiting request finds no room on it: with aggressive scaling a server is made for it.
    s.configs[0].policy.aggressive_scaling = true;
    s.pending_requests = 1;
    let p = plan(&s, now());
    assert!(
        p.actions.iter().any(|a| matches!(
            a,
            Action::Provision {
                cause: Cause::QueuedRequests,
                ..
            }
        )),
        "{p:#?}"
    );
}

#[test]
fn a_drained_server_is_never_scaled_in_and_its_room_starts_no_downscale_clock() {
    let mut c = config(0, 4, 10);
    c.bookkeeping.downscale_requested_at = Some(ago(100_000));
    let s = pool(
        vec![c],
        (1..=3)
            .map(|n| ServerSnapshot {
                drained: Some(DrainThen::Keep),
                ..ready(n, 0, 4)
            })
            .collect(),
    );
    let p = plan(&s, now());
    assert!(p.actions.is_empty(), "{p:#?}");
    assert_eq!(p.bookkeeping["aws"].downscale_requested_at, None);
}

/// Random pools with some servers drained: a kept drained server is never destroyed, a server
/// with sessions never is, a drained server without a session (`destroy`) always is (unless
/// being destroyed), and assign never picks a drained server; plans stay fixed points.
#[test]
fn drains_over_random_pools() {
    let server = (
        prop::sample::select(vec![
            ServerState::Provisioning,
            ServerState::Starting,
            ServerState::Running,
            ServerState::Running,
            ServerState::Destroying,
        ]),
        0u32..5,
        any::<bool>(),
        0i64..10_000,
        prop_oneof![2 => Just(None), 1 => Just(Some(DrainThen::Destroy)), 1 => Just(Some(DrainThen::Keep))],
    );
    let strategy = (
        0u32..10,
        1u32..5,
        1u32..20,
        prop::collection::vec(server, 0..16),
        0u32..4,
        any::<bool>(),
        plan_support::new_ids(),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1000,
        rng_seed: plan_support::seed_or(264),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &strategy,
            |(minimum, sessions, max, servers, pending, aggressive, ids)| {
                let mut c = config(minimum, sessions, max);
                c.policy.aggressive_scaling = aggressive;
                let servers: Vec<ServerSnapshot> = servers
                    .into_iter()
                    .enumerate()
                    .map(|(i, (state, n, used, created, drained))| {
                        let sessions = if state == ServerState::Running {
                            n.min(sessions)
                        } else {
                            0
                        };
                        ServerSnapshot {
                            id: id(i as u128 + 1),
                            state,
                            sessions,
                            used: used || sessions > 0,
                            created_at: ago(created),
                            checked_in_at: (state == ServerState::Running)
                                .then(|| ago(created / 2)),
                            drained,
                            ..ready(0, 0, c.policy.sessions_per_server)
                        }
                    })
                    .collect();
                let mut s = pool(vec![c], servers);
                s.pending_requests = pending;
                let p = plan(&s, now());
                let gone = destroys(&p);
                for sv in &s.servers {
                    let destroyed = gone.iter().find(|(g, _)| *g == sv.id);
                    prop_assert!(
                        destroyed.is_none() || sv.sessions == 0,
                        "destroys {} with sessions: {p:#?}",
                        sv.id
                    );
                    match sv.drained {
                        Some(DrainThen::Keep) => prop_assert!(destroyed.is_none(), "{p:#?}"),
                        Some(DrainThen::Destroy) => prop_assert_eq!(
                            destroyed.map(|d| d.1),
                            (sv.sessions == 0 && sv.state != ServerState::Destroying)
                                .then_some(Cause::Drained)
                        ),
                        None => prop_assert!(destroyed.is_none_or(|d| d.1 != Cause::Drained)),
                    }
                }
                if let Some(pick) = assign(&s) {
                    let sv = s.servers.iter().find(|x| x.id == pick).unwrap();
                    prop_assert!(sv.drained.is_none());
                }
                plan_support::check_fixed_point(&s, now(), &ids)
            },
        )
        .unwrap();
}
