//! The warm tier's rules in the engine: start before build, refill, stop of servers built for
//! the tier once ready, scale-in stops, expiry (age, generation, drain, disabled config,
//! `max_stopped`), the failure backoff, and nothing seated that is stopped or coming up.

use jiff::Timestamp;
use kasm_scale_core::config::{AutoScaleConfig, ConnectionType, Generation, WarmPool};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, DrainThen, Plan, PoolSnapshot, ScalingPolicy,
    ServerId, ServerSnapshot, ServerState, assign, plan,
};

use crate::plan_support::{Destroyed, carry_out, check_fixed_point};

const NOW: &str = "2026-11-30T12:00:00Z";

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    t(NOW)
}

fn warm(min: u32, max: u32) -> WarmPool {
    WarmPool {
        min_stopped: min,
        max_stopped: max,
        max_age: 86_400,
        readiness: None,
        hibernate: false,
    }
}

/// A config "w" with `minimum` free slots, `sessions` per server, `max` servers and a tier.
fn policy(minimum: u32, sessions: u32, max: u32, tier: Option<WarmPool>) -> ScalingPolicy {
    let mut c = AutoScaleConfig::new("w", "p", ConnectionType::Rdp);
    c.minimum_pool_standby_sessions = minimum;
    c.max_simultaneous_sessions_per_server = sessions;
    c.reusable = true;
    c.warm_pool = tier;
    ScalingPolicy::new(&c, max)
}

fn pool(policy: ScalingPolicy, servers: Vec<ServerSnapshot>) -> PoolSnapshot {
    PoolSnapshot {
        pool: "p".into(),
        configs: vec![ConfigSnapshot {
            policy,
            bookkeeping: Bookkeeping::default(),
            generation: Some(Generation(2)),
        }],
        servers,
        ..PoolSnapshot::default()
    }
}

fn id(n: u128) -> ServerId {
    ServerId(uuid::Uuid::from_u128(n))
}

/// A ready server with `sessions` of `capacity`, created `age_h` hours ago.
fn running(n: u128, sessions: u32, capacity: u32, age_h: i64) -> ServerSnapshot {
    let created = now() - jiff::SignedDuration::from_hours(age_h);
    ServerSnapshot {
        id: id(n),
        config: 0,
        state: ServerState::Running,
        sessions,
        capacity,
        reusable: true,
        used: sessions > 0,
        created_at: created,
        checked_in_at: Some(created + jiff::SignedDuration::from_mins(5)),
        queue_slots: 0,
        outdated: false,
        drained: None,
        woken_at: None,
        for_warm: false,
    }
}

/// A stopped server of `capacity`, built `age_h` hours ago.
fn stopped(n: u128, capacity: u32, age_h: i64) -> ServerSnapshot {
    ServerSnapshot {
        state: ServerState::Stopped,
        ..running(n, 0, capacity, age_h)
    }
}

fn starts(p: &Plan) -> Vec<(ServerId, u32)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Start {
                server,
                queue_slots,
                cause,
                ..
            } => {
                assert_eq!(*cause, Cause::WarmTier);
                Some((*server, *queue_slots))
            }
            _ => None,
        })
        .collect()
}

fn stops(p: &Plan) -> Vec<(ServerId, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Stop { server, cause, .. } => Some((*server, *cause)),
            _ => None,
        })
        .collect()
}

fn provisions(p: &Plan) -> Vec<(u32, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Provision { count, cause, .. } => Some((*count, *cause)),
            _ => None,
        })
        .collect()
}

fn destroys(p: &Plan) -> Vec<(ServerId, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { server, cause, .. } => Some((*server, *cause)),
            _ => None,
        })
        .collect()
}

fn ids() -> Vec<u128> {
    (1000..1064).collect()
}

#[test]
fn warm_servers_are_started_oldest_first_before_anything_is_built() {
    // Minimum 5, 2 sessions per server, nothing running; three stopped: the two oldest give 4
    // slots, one server is built for the last slot, and the tier (min_stopped 1) is refilled.
    let s = pool(
        policy(5, 2, 10, Some(warm(1, 3))),
        vec![stopped(1, 2, 3), stopped(2, 2, 5), stopped(3, 2, 1)],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(2), 0), (id(1), 0), (id(3), 0)]);
    assert_eq!(
        provisions(&p),
        vec![(1, Cause::WarmTier)],
        "{:#?}",
        p.actions
    );
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn starts_cover_the_deficit_and_only_the_rest_is_built() {
    let s = pool(
        policy(5, 2, 10, Some(warm(0, 3))),
        vec![stopped(1, 2, 3), stopped(2, 2, 5)],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(2), 0), (id(1), 0)]);
    assert_eq!(provisions(&p), vec![(1, Cause::BelowMinimum)]);
    let reason = p.actions[0].reason();
    assert!(
        reason.contains("2 warm server(s) started for 5 free slot(s) below the minimum 5"),
        "{reason}"
    );
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn a_start_needs_no_max_instances_room() {
    // Three stopped servers fill max_instances 3: the minimum still gets two of them started.
    let s = pool(
        policy(4, 2, 3, Some(warm(0, 3))),
        vec![stopped(1, 2, 1), stopped(2, 2, 2), stopped(3, 2, 3)],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(3), 0), (id(2), 0)]);
    assert!(provisions(&p).is_empty());
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn the_queue_starts_warm_servers_with_aggressive_scaling() {
    let mut pol = policy(0, 2, 10, Some(warm(0, 3)));
    pol.aggressive_scaling = true;
    let mut s = pool(pol, vec![stopped(1, 2, 1), stopped(2, 2, 2)]);
    s.pending_requests = 3;
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(2), 2), (id(1), 1)]);
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn the_tier_is_refilled_then_its_builds_are_stopped_once_ready() {
    let s = pool(policy(0, 2, 10, Some(warm(2, 4))), vec![]);
    let p = plan(&s, now());
    assert_eq!(provisions(&p), vec![(2, Cause::WarmTier)]);
    assert!(
        p.actions[0]
            .reason()
            .contains("build 2 server(s) for the warm tier of w: 0 in the tier of 2"),
        "{}",
        p.actions[0].reason()
    );
    let built = carry_out(&s, &p, now(), &ids(), Destroyed::Gone);
    assert!(built.servers.iter().all(|x| x.for_warm));
    // Coming up for the tier: nothing more, and their room is not free (no minimum here, but a
    // minimum would build).
    assert!(plan(&built, now()).actions.is_empty());
    let mut with_minimum = built.clone();
    with_minimum.configs[0].policy.minimum_pool_standby_sessions = 2;
    assert_eq!(
        provisions(&plan(&with_minimum, now())),
        vec![(1, Cause::BelowMinimum)]
    );
    // Ready: both are stopped.
    let mut ready = built.clone();
    for x in &mut ready.servers {
        x.state = ServerState::Running;
        x.checked_in_at = Some(now());
    }
    let p = plan(&ready, now());
    assert_eq!(stops(&p).len(), 2, "{:#?}", p.actions);
    assert!(stops(&p).iter().all(|(_, c)| *c == Cause::WarmTier));
    assert!(provisions(&p).is_empty());
    check_fixed_point(&ready, now(), &ids()).unwrap();
}

#[test]
fn the_tier_is_refilled_outside_schedule_windows() {
    use kasm_scale_core::config::{Schedule, TimeZoneName, Weekday};
    let mut pol = policy(4, 2, 10, Some(warm(2, 4)));
    let schedule = Schedule {
        active_start_time: "07:00".parse().unwrap(),
        active_end_time: "08:00".parse().unwrap(),
        timezone: TimeZoneName::new("UTC").unwrap(),
        days_of_the_week: Weekday::all()[..5].to_vec(),
        minimum_pool_standby_sessions: None,
    };
    pol.schedules = vec![schedule];
    let s = pool(pol, vec![]);
    assert!(!s.configs[0].policy.is_active_at(now()));
    let p = plan(&s, now());
    assert_eq!(provisions(&p), vec![(2, Cause::WarmTier)]);
}

#[test]
fn a_failing_config_does_not_refill_while_it_backs_off_and_starts_nothing() {
    let mut s = pool(policy(2, 2, 10, Some(warm(2, 4))), vec![stopped(1, 2, 1)]);
    s.configs[0].bookkeeping.consecutive_failures = 2;
    s.configs[0].bookkeeping.last_failure_at = Some(now());
    let p = plan(&s, now());
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("its warm tier holds 1 of 2")),
        "{:?}",
        p.notes
    );
    // Past the backoff: one at a time (the start is the one).
    let later = now() + jiff::SignedDuration::from_hours(1);
    let p = plan(&s, later);
    assert_eq!(starts(&p), vec![(id(1), 0)]);
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
}

#[test]
fn scale_in_stops_idle_servers_into_the_tier_up_to_max_stopped() {
    // Minimum 0, three idle servers past the downscale backoff; the tier holds one of at most
    // two: one is stopped (the oldest), the other two destroyed.
    let mut s = pool(
        policy(0, 2, 10, Some(warm(0, 2))),
        vec![
            running(1, 0, 2, 3),
            running(2, 0, 2, 2),
            running(3, 0, 2, 1),
            stopped(4, 2, 1),
        ],
    );
    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T11:00:00Z"));
    let p = plan(&s, now());
    assert_eq!(stops(&p), vec![(id(1), Cause::Surplus)], "{:#?}", p.actions);
    assert_eq!(
        destroys(&p),
        vec![(id(2), Cause::Surplus), (id(3), Cause::Surplus)]
    );
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn scale_in_does_not_stop_spent_old_or_outdated_servers() {
    let mut single = running(1, 0, 1, 2);
    single.reusable = false;
    single.used = true;
    let old = running(2, 0, 2, 48);
    let mut outdated = running(3, 0, 2, 2);
    outdated.outdated = true;
    let mut unused_single = running(5, 0, 1, 2);
    unused_single.reusable = false;
    let mut s = pool(
        policy(0, 2, 10, Some(warm(0, 5))),
        vec![single, old, outdated, running(4, 0, 2, 1), unused_single],
    );
    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T11:00:00Z"));
    let p = plan(&s, now());
    let stopped: Vec<ServerId> = stops(&p).into_iter().map(|(s, _)| s).collect();
    assert_eq!(stopped, vec![id(5), id(4)], "{:#?}", p.actions);
    assert!(destroys(&p).contains(&(id(2), Cause::Surplus)));
}

#[test]
fn stopped_servers_expire_by_age_generation_drain_and_disabled_config() {
    let young = stopped(1, 2, 1);
    let old = stopped(2, 2, 25);
    let mut outdated = stopped(3, 2, 1);
    outdated.outdated = true;
    let mut drained = stopped(4, 2, 1);
    drained.drained = Some(DrainThen::Destroy);
    let mut kept = stopped(5, 2, 1);
    kept.drained = Some(DrainThen::Keep);
    let s = pool(
        policy(0, 2, 10, Some(warm(0, 5))),
        vec![young, old, outdated, drained, kept],
    );
    let p = plan(&s, now());
    let mut gone = destroys(&p);
    gone.sort_by_key(|(s, _)| *s);
    assert_eq!(
        gone,
        vec![
            (id(2), Cause::WarmExpired),
            (id(3), Cause::WarmExpired),
            (id(4), Cause::WarmExpired)
        ],
        "{:#?}",
        p.actions
    );
    assert!(starts(&p).is_empty());
    // A minimum starts only the available one, never an expired one.
    let mut s2 = s.clone();
    s2.configs[0].policy.minimum_pool_standby_sessions = 6;
    let p = plan(&s2, now());
    assert_eq!(starts(&p), vec![(id(1), 0)]);
    // A disabled config's stopped servers all go.
    let mut off = s.clone();
    off.configs[0].policy.enabled = false;
    let p = plan(&off, now());
    assert!(destroys(&p).contains(&(id(1), Cause::WarmExpired)));
    assert!(!destroys(&p).iter().any(|(x, _)| *x == id(5)));
}

#[test]
fn beyond_max_stopped_the_oldest_go() {
    let s = pool(
        policy(0, 2, 10, Some(warm(0, 2))),
        vec![
            stopped(1, 2, 3),
            stopped(2, 2, 5),
            stopped(3, 2, 1),
            stopped(4, 2, 4),
        ],
    );
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        vec![(id(2), Cause::WarmExpired), (id(4), Cause::WarmExpired)]
    );
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn a_config_without_a_tier_destroys_its_stopped_servers() {
    let s = pool(policy(2, 2, 10, None), vec![stopped(1, 2, 1)]);
    let p = plan(&s, now());
    assert_eq!(destroys(&p), vec![(id(1), Cause::WarmExpired)]);
    assert_eq!(provisions(&p), vec![(1, Cause::BelowMinimum)]);
}

#[test]
fn nothing_stopped_starting_or_built_for_the_tier_is_assigned_or_counted_free() {
    let mut build = running(2, 0, 2, 1);
    build.for_warm = true;
    let mut woken = running(3, 0, 2, 1);
    woken.state = ServerState::Starting;
    woken.woken_at = Some(now());
    woken.checked_in_at = None;
    let mut stopping = running(4, 0, 2, 1);
    stopping.state = ServerState::Stopping;
    let s = pool(
        policy(0, 2, 10, Some(warm(0, 5))),
        vec![stopped(1, 2, 1), build, woken, stopping],
    );
    assert_eq!(assign(&s), None);
    // The woken server's room is coming: a minimum of 2 builds nothing, 3 builds one.
    let mut s2 = s.clone();
    s2.configs[0].policy.minimum_pool_standby_sessions = 4;
    let p = plan(&s2, now());
    // 2 coming on the woken server; for the other 2 the ready server built for the tier is
    // handed over (it serves at once: stopping and starting it would cost a stop, a start and
    // a check-in), not the stopped one started.
    assert_eq!(starts(&p), vec![(id(2), 0)]);
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
}

#[test]
fn a_woken_servers_checkin_timeout_counts_from_its_start() {
    let mut woken = running(1, 0, 2, 48);
    woken.state = ServerState::Starting;
    woken.checked_in_at = None;
    woken.woken_at = Some(now() - jiff::SignedDuration::from_mins(5));
    let s = pool(policy(2, 2, 10, Some(warm(0, 5))), vec![woken.clone()]);
    let p = plan(&s, now());
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    woken.woken_at = Some(now() - jiff::SignedDuration::from_hours(2));
    let s = pool(policy(2, 2, 10, Some(warm(0, 5))), vec![woken]);
    let p = plan(&s, now());
    assert_eq!(destroys(&p), vec![(id(1), Cause::CheckinTimeout)]);
    assert!(
        p.actions[0]
            .reason()
            .contains("after its start from the warm tier")
    );
}

#[test]
fn stopped_and_building_servers_count_against_max_instances() {
    let mut build = running(2, 0, 2, 1);
    build.for_warm = true;
    build.state = ServerState::Provisioning;
    build.checked_in_at = None;
    let s = pool(
        policy(4, 2, 3, Some(warm(3, 3))),
        vec![running(1, 2, 2, 1), build, {
            let mut x = stopped(3, 2, 1);
            x.state = ServerState::Stopping;
            x
        }],
    );
    let p = plan(&s, now());
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
    assert!(starts(&p).is_empty());
}

#[test]
fn the_rollout_replaces_with_warm_servers_first() {
    let mut old = running(1, 0, 2, 2);
    old.outdated = true;
    let mut s = pool(
        policy(2, 2, 10, Some(warm(0, 3))),
        vec![old, running(2, 0, 2, 1), stopped(3, 2, 1)],
    );
    // The canary is ready: outdated room is held back; the stopped server replaces it.
    s.configs[0].bookkeeping.rollout = Some(kasm_scale_core::engine::RolloutState {
        generation: Generation(2),
        started_at: now(),
        failures_since: now(),
        canary_ready_at: Some(now()),
        paused: None,
        finished_at: None,
    });
    s.servers[1].sessions = 2;
    s.servers[1].used = true;
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(3), 0)], "{:#?}", p.actions);
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn with_demand_the_running_buffer_covers_a_warm_start_and_the_tier_a_cold_build() {
    use kasm_scale_core::config::StandbyPolicy;
    use kasm_scale_core::engine::DemandSignal;
    use kasm_scale_core::engine::demand::standby_for;
    // 3 requests a minute, nothing learned: the recent rate reads the demand. A build takes
    // 600 s (p90), a warm start 60 s.
    let rate = 3.0 / 60.0;
    let signal = DemandSignal {
        recent_rate: rate,
        boot_p90: vec![Some(600.0)],
        start_p90: vec![Some(60.0)],
        ..DemandSignal::default()
    };
    let demand_pool = |tier: Option<WarmPool>| {
        let mut pol = policy(0, 1, 100, tier);
        pol.standby_policy = StandbyPolicy::Demand;
        pol.target_immediate_service = 0.9;
        let mut s = pool(pol, vec![]);
        s.demand = Some(signal.clone());
        s
    };
    let running = |p: &Plan| -> u32 {
        provisions(p)
            .iter()
            .filter(|(_, c)| *c == Cause::BelowMinimum)
            .map(|(n, _)| n)
            .sum()
    };
    let tier_builds = |p: &Plan| -> u32 {
        provisions(p)
            .iter()
            .filter(|(_, c)| *c == Cause::WarmTier)
            .map(|(n, _)| n)
            .sum()
    };
    let cold = standby_for(rate * 600.0, 0.9) as u32;
    let warm_lead = standby_for(rate * 60.0, 0.9) as u32;
    assert!(warm_lead < cold, "{warm_lead} < {cold}");

    // Without a tier the running buffer covers a build.
    let plain = plan(&demand_pool(None), now());
    assert_eq!(running(&plain), cold, "{:#?}", plain.actions);

    // With one it covers a warm start; the tier covers the rest of a build.
    let s = demand_pool(Some(warm(0, 50)));
    let p = plan(&s, now());
    assert_eq!(running(&p), warm_lead, "{:#?}", p.actions);
    assert_eq!(tier_builds(&p), cold - warm_lead, "{:#?}", p.actions);
    let refill = p
        .actions
        .iter()
        .find(|a| {
            matches!(
                a,
                Action::Provision {
                    cause: Cause::WarmTier,
                    ..
                }
            )
        })
        .unwrap();
    assert!(refill.reason().contains("demand:"), "{}", refill.reason());
    let min_reason = p.actions[0].reason();
    assert!(min_reason.contains("warm start p90"), "{min_reason}");
    check_fixed_point(&s, now(), &ids()).unwrap();

    // The target stays within min_stopped and max_stopped.
    let capped = plan(&demand_pool(Some(warm(0, 2))), now());
    assert_eq!(tier_builds(&capped), 2);
    // What a capped tier cannot hold of a cold build stays running.
    assert_eq!(running(&capped), cold - 2, "{:#?}", capped.actions);
    let floor = plan(&demand_pool(Some(warm(cold + 5, cold + 10))), now());
    assert_eq!(tier_builds(&floor), cold + 5);

    // Without the demand policy the tier keeps min_stopped.
    let mut stat = demand_pool(Some(warm(1, 50)));
    stat.configs[0].policy.standby_policy = StandbyPolicy::Static;
    assert_eq!(tier_builds(&plan(&stat, now())), 1);
}

#[test]
fn a_ready_build_for_the_tier_is_handed_over_before_a_stopped_server_is_started() {
    let mut build = running(2, 0, 2, 1);
    build.for_warm = true;
    let s = pool(
        policy(2, 2, 10, Some(warm(0, 5))),
        vec![stopped(1, 2, 1), build],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(2), 0)], "{:#?}", p.actions);
    assert!(
        stops(&p).is_empty(),
        "the handed-over build is not stopped too"
    );
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
    let reason = p.actions[0].reason();
    assert!(reason.contains("ready, over to serve at once"), "{reason}");
}

#[test]
fn a_warm_start_covers_what_servers_still_being_built_cannot_give_in_time() {
    // A minimum of 4; 4 free slots, but all of them on a server still being built (10 to 15
    // minutes): the arrivals of the next minutes would find none. A warm start is there in
    // one or two.
    let mut building = running(2, 0, 4, 0);
    building.state = ServerState::Provisioning;
    building.checked_in_at = None;
    let s = pool(
        policy(4, 4, 10, Some(warm(0, 5))),
        vec![stopped(1, 4, 1), building.clone()],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(1), 0)], "{:#?}", p.actions);
    assert!(provisions(&p).is_empty(), "{:#?}", p.actions);
    check_fixed_point(&s, now(), &ids()).unwrap();
    // A server being started from the tier comes up in time: it counts.
    let mut woken = stopped(3, 4, 1);
    woken.state = ServerState::Starting;
    woken.woken_at = Some(now());
    woken.checked_in_at = None;
    let s = pool(
        policy(4, 4, 10, Some(warm(0, 5))),
        vec![stopped(1, 4, 1), woken],
    );
    assert!(starts(&plan(&s, now())).is_empty());
    // Without a tier the build counts as Kasm counts it.
    let s = pool(policy(4, 4, 10, None), vec![building]);
    let p = plan(&s, now());
    assert!(
        starts(&p).is_empty() && provisions(&p).is_empty(),
        "{:#?}",
        p.actions
    );
}

#[test]
fn a_waiting_request_takes_a_ready_build_of_the_tier_before_a_server_still_coming_up() {
    let mut build = running(2, 0, 2, 1);
    build.for_warm = true;
    let mut coming = running(3, 0, 2, 0);
    coming.state = ServerState::Provisioning;
    coming.checked_in_at = None;
    coming.queue_slots = 1;
    let mut policy = policy(0, 2, 10, Some(warm(0, 5)));
    policy.aggressive_scaling = true;
    let mut s = pool(policy, vec![build, coming]);
    s.pending_requests = 1;
    let p = plan(&s, now());
    assert_eq!(starts(&p), vec![(id(2), 1)], "{:#?}", p.actions);
    assert!(
        stops(&p).is_empty() && provisions(&p).is_empty(),
        "{:#?}",
        p.actions
    );
}

#[test]
fn warm_starts_for_servers_still_being_built_cover_the_whole_gap_in_one_plan() {
    // A minimum of 4 at 2 slots per server, one server still being built (room 2), nothing
    // ready: both slots-worth of warm servers start in this plan, not one now and one next.
    let mut building = running(3, 0, 2, 0);
    building.state = ServerState::Provisioning;
    building.checked_in_at = None;
    let s = pool(
        policy(4, 2, 10, Some(warm(0, 5))),
        vec![stopped(1, 2, 1), stopped(2, 2, 2), building],
    );
    let p = plan(&s, now());
    assert_eq!(starts(&p).len(), 2, "{:#?}", p.actions);
    check_fixed_point(&s, now(), &ids()).unwrap();
}

#[test]
fn scale_in_does_not_stop_a_server_that_the_builds_in_flight_cannot_replace_in_time() {
    // A minimum of 2 at 1 slot per server: two servers still being built and one idle ready
    // server past the downscale backoff. Counting the builds, there is a surplus; but they
    // are minutes away, so the ready one stays (and one warm start covers the other slot).
    let mut building_a = running(3, 0, 1, 0);
    building_a.state = ServerState::Provisioning;
    building_a.checked_in_at = None;
    let mut building_b = building_a.clone();
    building_b.id = id(4);
    let mut s = pool(
        policy(2, 1, 10, Some(warm(0, 5))),
        vec![
            running(1, 0, 1, 3),
            stopped(2, 1, 1),
            building_a,
            building_b,
        ],
    );
    s.configs[0].bookkeeping.downscale_requested_at =
        Some(now() - jiff::SignedDuration::from_hours(1));
    let p = plan(&s, now());
    assert!(
        stops(&p).is_empty() && destroys(&p).is_empty(),
        "{:#?}",
        p.actions
    );
    assert_eq!(starts(&p), vec![(id(2), 0)], "{:#?}", p.actions);
    check_fixed_point(&s, now(), &ids()).unwrap();
}
