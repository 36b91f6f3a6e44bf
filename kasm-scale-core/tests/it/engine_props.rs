//! Property tests of plan() over random snapshots.

use jiff::{SignedDuration, Timestamp};
use std::cell::Cell;

use kasm_scale_core::config::{AutoScaleConfig, ConnectionType, Schedule, TimeZoneName, Weekday};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, Plan, PoolSnapshot, ScalingPolicy, ServerId,
    ServerSnapshot, ServerState, plan,
};
use plan_support::Destroyed;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::plan_support;

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn ago(seconds: i64) -> Timestamp {
    now() - SignedDuration::from_secs(seconds)
}

/// A window of whole hours in one of a few time zones, on some days, maybe with its own minimum:
/// at `now` (Monday 12:00 UTC) some are open, some closed.
fn schedule() -> impl Strategy<Value = Schedule> {
    (
        0u8..24,
        0u8..24,
        prop::sample::select(vec![
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
        ]),
        prop::sample::subsequence(Weekday::all().to_vec(), 1..=7),
        prop::option::of(0u32..20),
    )
        .prop_map(|(start, end, zone, days, minimum)| Schedule {
            active_start_time: format!("{start:02}:00").parse().unwrap(),
            active_end_time: format!("{end:02}:00").parse().unwrap(),
            timezone: TimeZoneName::new(zone).unwrap(),
            days_of_the_week: days,
            minimum_pool_standby_sessions: minimum,
        })
}

fn policy() -> impl Strategy<Value = ConfigSnapshot> {
    (
        prop_oneof![1 => Just(0u32), 19 => 1u32..20],
        1u32..5,
        prop_oneof![1 => 1u32..15, 3 => 15u32..60],
        prop::bool::weighted(0.9),
        any::<bool>(),
        any::<bool>(),
        0u64..3600,
        // Mostly longer than any server's age: a config with timeouts is failing, and the
        // minimum property does not apply to it.
        prop_oneof![1 => 60u32..3000, 4 => 10_000u32..20_000],
        0u32..4,
        prop::option::weighted(0.2, 0i64..7200),
        prop::option::of(0i64..7200),
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(schedule(), 1..3)],
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
                schedules,
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
                c.schedules = schedules;
                ConfigSnapshot {
                    policy: ScalingPolicy::new(&c, max),
                    bookkeeping: Bookkeeping {
                        downscale_requested_at: downscale.map(ago),
                        consecutive_failures: if last_failure.is_some() { failures } else { 0 },
                        last_failure_at: last_failure.map(ago),
                        rollout: None,
                    },
                    generation: None,
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
        prop_oneof![3 => 0i64..900, 1 => 0i64..10_000],
        prop::option::of(0i64..10_000),
        prop_oneof![4 => Just(0u32), 1 => 1u32..5],
    )
        .prop_map(
            |(config, state, capacity, sessions, reusable, used, created, checked, queue_slots)| {
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
                    queue_slots: queue_slots.min(capacity),
                    outdated: false,
                    drained: None,
                    woken_at: None,
                    for_warm: false,
                }
            },
        )
}

fn snapshot() -> impl Strategy<Value = PoolSnapshot> {
    prop::collection::vec(policy(), 1..5).prop_flat_map(|mut configs| {
        for (i, c) in configs.iter_mut().enumerate() {
            c.policy.name = format!("cfg-{i}");
        }
        let n = configs.len();
        (
            Just(configs),
            prop::collection::vec(server(n), 0..30),
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
    plan_support::carry_out(s, p, now(), &[], Destroyed::Destroying)
}

/// Each config's free slots in `s` once the queued requests have taken theirs, the way the engine
/// documents it: free slots of ready servers first (config order), then those of servers coming
/// up for enabled configs with aggressive scaling: first the slots plans gave to the queue, then
/// any, oldest server first.
fn free_after_requests(s: &PoolSnapshot) -> Vec<u64> {
    after_requests(s).0
}

/// [`free_after_requests`], and the requests no slot covers.
fn after_requests(s: &PoolSnapshot) -> (Vec<u64>, u64) {
    let n = s.configs.len();
    let (mut ready, mut coming) = (vec![0u64; n], vec![0u64; n]);
    let mut pending = Vec::new();
    for x in s
        .servers
        .iter()
        .filter(|x| x.state != ServerState::Destroying)
    {
        let (c, room) = (x.config as usize, u64::from(x.capacity - x.sessions));
        let policy = &s.configs[c].policy;
        if !x.is_ready(policy.requires_checkin) {
            coming[c] += room;
            if policy.enabled && policy.aggressive_scaling {
                pending.push(x);
            }
        } else if !x.is_spent() {
            ready[c] += room;
        }
    }
    let mut waiting = u64::from(s.pending_requests);
    for free in &mut ready {
        let take = waiting.min(*free);
        *free -= take;
        waiting -= take;
    }
    pending.sort_by_key(|x| (x.created_at, x.id));
    let mut room: Vec<u64> = pending
        .iter()
        .map(|x| u64::from(x.capacity - x.sessions))
        .collect();
    for reserved in [true, false] {
        for (x, room) in pending.iter().zip(room.iter_mut()) {
            let mut take = waiting.min(*room);
            if reserved {
                take = take.min(u64::from(x.queue_slots.saturating_sub(x.sessions)));
            }
            *room -= take;
            coming[x.config as usize] -= take;
            waiting -= take;
        }
    }
    (
        ready.iter().zip(&coming).map(|(r, c)| r + c).collect(),
        waiting,
    )
}

/// `plan` with one server fewer in its action number `at` (a provision).
fn one_fewer(plan: &Plan, at: usize) -> Plan {
    let mut fewer = plan.clone();
    if let Action::Provision { count, .. } = &mut fewer.actions[at] {
        *count -= 1;
        if *count == 0 {
            fewer.actions.remove(at);
        }
    }
    fewer
}

/// Checks every property of `plan` on `s`; returns whether the "minimum holds" property was
/// exercised (some config with a minimum above 0 was checked).
fn check(s: &PoolSnapshot) -> Result<bool, TestCaseError> {
    let p = plan(s, now());
    prop_assert_eq!(&p, &plan(s, now()), "same input, same plan");

    for action in &p.actions {
        match action {
            Action::Destroy { server, .. } => {
                let sv = s.servers.iter().find(|x| x.id == *server).unwrap();
                prop_assert_eq!(sv.sessions, 0, "never destroys a server with a session");
                prop_assert!(sv.state != ServerState::Destroying);
            }
            Action::Provision { count, .. } => prop_assert!(*count > 0),
            Action::Stop { server, .. } | Action::Start { server, .. } => {
                prop_assert!(s.servers.iter().any(|x| x.id == *server));
            }
        }
    }
    for (c, config) in s.configs.iter().enumerate() {
        let policy = &config.policy;
        let live = s.servers.iter().filter(|x| x.config as usize == c).count() as u64;
        let provisioned: u64 = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Provision { config, count, .. } if *config == policy.name => {
                    u64::from(*count)
                }
                _ => 0,
            })
            .sum();
        if provisioned > 0 {
            prop_assert!(
                live + provisioned <= u64::from(policy.max_instances),
                "never exceeds max_instances"
            );
            prop_assert!(policy.enabled, "a disabled config provisions nothing");
            let active = policy.schedules.is_empty()
                || policy.schedules.iter().any(|w| w.is_active_at(now()));
            prop_assert!(
                active,
                "{}: outside every schedule window it provisions nothing: {:?}",
                policy.name,
                p.actions
            );
        }
        // Never a whole server more than needed for the minimum (requests excluded).
        for a in &p.actions {
            if let Action::Provision {
                config,
                count,
                cause: Cause::BelowMinimum,
                ..
            } = a
                && *config == policy.name
            {
                let minimum = u64::from(policy.minimum_at(now()));
                prop_assert!(
                    u64::from(count - 1) * u64::from(policy.sessions_per_server) < minimum
                );
            }
        }
    }

    // Carried out and planned again: nothing more to provision, nothing to destroy, the same
    // bookkeeping (and with the destroys done, a provision only where max_instances bound).
    plan_support::check_fixed_point(s, now(), &plan_support::ids_for(s))?;
    let next = carry_out(s, &p);

    // Never a whole server beyond the combined need of the minimums and the queue: with one
    // server fewer from any provision, a request stays uncovered or a config falls further
    // short of its minimum.
    let (full_free, full_waiting) = after_requests(&next);
    for (at, action) in p.actions.iter().enumerate() {
        if !matches!(action, Action::Provision { .. }) {
            continue;
        }
        let (free, waiting) = after_requests(&carry_out(s, &one_fewer(&p, at)));
        let short = waiting > full_waiting
            || next.configs.iter().enumerate().any(|(c, config)| {
                let minimum = u64::from(config.policy.minimum_at(now()));
                free[c].min(minimum) < full_free[c].min(minimum)
            });
        prop_assert!(
            short,
            "a whole server too many in {:?}: without one, free {:?} and {} waiting (with it {:?}, {})\nplan {:#?}\nsnapshot {:#?}",
            action,
            free,
            waiting,
            full_free,
            full_waiting,
            p.actions,
            s
        );
    }

    // The minimum holds afterwards, queued requests seated, unless the config may not provision
    // (disabled, outside every window), max_instances binds or the failure backoff does.
    let free = free_after_requests(&next);
    let mut exercised = false;
    for (c, config) in next.configs.iter().enumerate() {
        let policy = &config.policy;
        let minimum = u64::from(policy.minimum_at(now()));
        let live = next
            .servers
            .iter()
            .filter(|x| x.config as usize == c)
            .count() as u64;
        if !policy.enabled
            || config.bookkeeping.consecutive_failures > 0
            || live >= u64::from(policy.max_instances)
        {
            continue;
        }
        exercised |= minimum > 0;
        prop_assert!(
            free[c] >= minimum,
            "{}: free {} after {} queued request(s) < minimum {}\nfirst {:?}",
            policy.name,
            free[c],
            next.pending_requests,
            minimum,
            p.actions
        );
    }
    Ok(exercised)
}

#[test]
fn plan_properties() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 2000,
        source_file: Some(file!()),
        rng_seed: plan_support::seed_or(25),
        ..ProptestConfig::default()
    });
    let (cases, exercised, with_requests) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let result = runner.run(&snapshot(), |s| {
        let checked = check(&s)?;
        cases.set(cases.get() + 1);
        if checked {
            exercised.set(exercised.get() + 1);
            if s.pending_requests > 0 {
                with_requests.set(with_requests.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (cases, exercised, with_requests) = (cases.get(), exercised.get(), with_requests.get());
    println!(
        "minimum holds: exercised in {exercised} of {cases} cases, {with_requests} with queued requests"
    );
    assert!(
        exercised * 10 >= cases * 6,
        "the minimum property ran in only {exercised} of {cases} cases"
    );
    assert!(
        with_requests * 10 >= exercised * 6,
        "only {with_requests} of {exercised} cases had queued requests"
    );
}
