//! Property tests of plan() over random snapshots.

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::{AutoScaleConfig, ConnectionType};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, Plan, PoolSnapshot, ScalingPolicy, ServerId,
    ServerSnapshot, ServerState, plan,
};
use proptest::prelude::*;

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn ago(seconds: i64) -> Timestamp {
    now() - SignedDuration::from_secs(seconds)
}

fn policy() -> impl Strategy<Value = ConfigSnapshot> {
    (
        0u32..20,
        1u32..5,
        1u32..15,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u64..3600,
        60u32..3000,
        0u32..4,
        prop::option::of(0i64..7200),
        prop::option::of(0i64..7200),
    )
        .prop_map(
            |(
                min,
                sps,
                max,
                enabled,
                aggressive,
                checkin,
                backoff,
                timeout,
                failures,
                last_failure,
                downscale,
            )| {
                let mut c = AutoScaleConfig::new("x", "p", ConnectionType::Rdp);
                c.minimum_pool_standby_sessions = min;
                c.max_simultaneous_sessions_per_server = sps;
                c.reusable = sps > 1;
                c.enabled = enabled;
                c.aggressive_scaling = aggressive;
                c.require_checkin = checkin;
                c.downscale_backoff = backoff;
                c.checkin_timeout = timeout;
                ConfigSnapshot {
                    policy: ScalingPolicy::new(&c, max),
                    bookkeeping: Bookkeeping {
                        downscale_requested_at: downscale.map(ago),
                        consecutive_failures: if last_failure.is_some() { failures } else { 0 },
                        last_failure_at: last_failure.map(ago),
                    },
                }
            },
        )
}

fn server(configs: usize) -> impl Strategy<Value = ServerSnapshot> {
    (
        0..configs as u32,
        prop::sample::select(vec![
            ServerState::Provisioning,
            ServerState::Starting,
            ServerState::Running,
            ServerState::Running,
            ServerState::Destroying,
        ]),
        1u32..5,
        0u32..5,
        any::<bool>(),
        any::<bool>(),
        0i64..10_000,
        prop::option::of(0i64..10_000),
    )
        .prop_map(
            |(config, state, capacity, sessions, reusable, used, created, checked)| {
                let sessions = if state == ServerState::Running {
                    sessions.min(capacity)
                } else {
                    0
                };
                ServerSnapshot {
                    id: ServerId(uuid::Uuid::nil()),
                    config,
                    state,
                    sessions,
                    capacity,
                    reusable,
                    used: used || sessions > 0,
                    created_at: ago(created),
                    checked_in_at: checked.map(|c| ago(c.min(created))),
                }
            },
        )
}

fn snapshot() -> impl Strategy<Value = PoolSnapshot> {
    prop::collection::vec(policy(), 1..4).prop_flat_map(|mut configs| {
        for (i, c) in configs.iter_mut().enumerate() {
            c.policy.name = format!("cfg-{i}");
        }
        let n = configs.len();
        (
            Just(configs),
            prop::collection::vec(server(n), 0..40),
            0u32..12,
        )
            .prop_map(|(configs, mut servers, pending)| {
                // Ids are unique (shrinking would otherwise make them all equal).
                for (i, s) in servers.iter_mut().enumerate() {
                    s.id = ServerId(uuid::Uuid::from_u128(i as u128 + 1));
                }
                PoolSnapshot {
                    pool: "p".into(),
                    configs,
                    servers,
                    pending_requests: pending,
                    ..PoolSnapshot::default()
                }
            })
    })
}

/// The snapshot once the plan is carried out: destroyed servers are being destroyed (they count
/// against `max_instances` until the provider confirms), new ones are provisioning.
fn carry_out(s: &PoolSnapshot, p: &Plan) -> PoolSnapshot {
    let mut next = s.clone();
    let gone: Vec<ServerId> = p
        .actions
        .iter()
        .filter_map(|a| {
            if let Action::Destroy { server, .. } = a {
                Some(*server)
            } else {
                None
            }
        })
        .collect();
    for sv in next.servers.iter_mut().filter(|sv| gone.contains(&sv.id)) {
        sv.state = ServerState::Destroying;
    }
    let mut n = 0u128;
    for a in &p.actions {
        if let Action::Provision { config, count, .. } = a {
            let c = next
                .configs
                .iter()
                .position(|c| &c.policy.name == config)
                .unwrap();
            let policy = next.configs[c].policy.clone();
            for _ in 0..*count {
                n += 1;
                next.servers.push(ServerSnapshot {
                    id: ServerId(uuid::Uuid::from_u128(u128::MAX - n)),
                    config: c as u32,
                    state: ServerState::Provisioning,
                    sessions: 0,
                    capacity: policy.sessions_per_server,
                    reusable: policy.reusable,
                    used: false,
                    created_at: now(),
                    checked_in_at: None,
                });
            }
        }
    }
    for c in next.configs.iter_mut() {
        c.bookkeeping = p.bookkeeping[&c.policy.name].clone();
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn plan_properties(s in snapshot()) {
        let p = plan(&s, now());
        prop_assert_eq!(&p, &plan(&s, now()), "same input, same plan");

        for action in &p.actions {
            match action {
                Action::Destroy { server, .. } => {
                    let sv = s.servers.iter().find(|x| x.id == *server).unwrap();
                    prop_assert_eq!(sv.sessions, 0, "never destroys a server with a session");
                    prop_assert!(sv.state != ServerState::Destroying);
                }
                Action::Provision { count, .. } => prop_assert!(*count > 0),
            }
        }
        for (c, config) in s.configs.iter().enumerate() {
            let policy = &config.policy;
            let live = s.servers.iter().filter(|x| x.config as usize == c).count() as u64;
            let provisioned: u64 = p.actions.iter().map(|a| match a {
                Action::Provision { config, count, .. } if *config == policy.name => u64::from(*count),
                _ => 0,
            }).sum();
            if provisioned > 0 {
                prop_assert!(live + provisioned <= u64::from(policy.max_instances), "never exceeds max_instances");
                prop_assert!(policy.enabled);
            }
            // Never a whole server more than needed for the minimum (requests excluded).
            for a in &p.actions {
                if let Action::Provision { config, count, cause: Cause::BelowMinimum, .. } = a
                    && *config == policy.name
                {
                    let minimum = u64::from(policy.minimum_at(now()));
                    prop_assert!(u64::from(count - 1) * u64::from(policy.sessions_per_server) < minimum);
                }
            }
        }

        // Carried out and planned again: nothing more to provision.
        let next = carry_out(&s, &p);
        let again = plan(&next, now());
        let more: Vec<&Action> = again.actions.iter().filter(|a| matches!(a, Action::Provision { .. })).collect();
        prop_assert!(more.is_empty(), "second plan provisions {:?}\nfirst {:?}", more, p.actions);

        // The minimum holds afterwards, unless max_instances or the failure backoff binds.
        for (c, config) in next.configs.iter().enumerate() {
            let policy = &config.policy;
            if !policy.enabled || config.bookkeeping.consecutive_failures > 0 {
                continue;
            }
            let mine = next.servers.iter().filter(|x| x.config as usize == c);
            let live = mine.clone().count() as u64;
            if live >= u64::from(policy.max_instances) || s.pending_requests > 0 {
                continue;
            }
            let free: u64 = mine.map(|x| {
                let ready = x.is_ready(policy.requires_checkin);
                match x.state {
                    ServerState::Destroying => 0,
                    ServerState::Running if ready && x.is_spent() => 0,
                    ServerState::Running if ready => u64::from(x.capacity - x.sessions),
                    _ => u64::from(x.capacity),
                }
            }).sum();
            prop_assert!(free >= u64::from(policy.minimum_at(now())), "{}: free {} < minimum", policy.name, free);
        }
    }
}
