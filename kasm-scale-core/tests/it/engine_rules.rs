//! Table tests of the scaling rules, placement, and schedules across a DST change.

use jiff::Timestamp;
use kasm_scale_core::config::{
    AutoScaleConfig, ConnectionType, Placement, Schedule, TimeZoneName, Weekday,
};
use kasm_scale_core::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, PoolSnapshot, ScalingPolicy, ServerId,
    ServerSnapshot, ServerState, assign, failure_backoff, plan,
};

const NOW: &str = "2026-11-30T12:00:00Z";

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    t(NOW)
}

/// A policy with Kasm's defaults and the given minimum, sessions per server and cap.
fn policy(name: &str, minimum: u32, sessions: u32, max: u32) -> ScalingPolicy {
    let mut c = AutoScaleConfig::new(name, "p", ConnectionType::Rdp);
    c.minimum_pool_standby_sessions = minimum;
    c.max_simultaneous_sessions_per_server = sessions;
    c.reusable = sessions > 1;
    ScalingPolicy::new(&c, max)
}

fn pool(policies: Vec<ScalingPolicy>) -> PoolSnapshot {
    PoolSnapshot {
        pool: "p".into(),
        configs: policies
            .into_iter()
            .map(|policy| ConfigSnapshot {
                policy,
                bookkeeping: Bookkeeping::default(),
                generation: None,
            })
            .collect(),
        ..PoolSnapshot::default()
    }
}

fn id(n: u128) -> ServerId {
    ServerId(uuid::Uuid::from_u128(n))
}

/// A ready server of config `config` with `sessions` of `capacity`, created an hour ago.
fn server(n: u128, config: u32, sessions: u32, capacity: u32) -> ServerSnapshot {
    ServerSnapshot {
        id: id(n),
        config,
        state: ServerState::Running,
        sessions,
        capacity,
        reusable: capacity > 1,
        used: sessions > 0,
        created_at: t("2026-11-30T11:00:00Z"),
        checked_in_at: Some(t("2026-11-30T11:05:00Z")),
        queue_slots: 0,
        outdated: false,
        drained: None,
        woken_at: None,
        for_warm: false,
    }
}

fn provisions(p: &kasm_scale_core::engine::Plan) -> Vec<(String, u32, Cause)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Provision {
                config,
                count,
                cause,
                ..
            } => Some((config.clone(), *count, *cause)),
            _ => None,
        })
        .collect()
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

#[test]
fn provisions_the_deficit_in_whole_servers_with_a_reason() {
    let mut s = pool(vec![policy("aws-east", 10, 4, 100)]);
    s.servers = vec![server(1, 0, 1, 4)]; // 3 free
    let p = plan(&s, now());
    assert_eq!(
        provisions(&p),
        [("aws-east".into(), 2, Cause::BelowMinimum)]
    );
    assert_eq!(
        p.actions[0].reason(),
        "provision 2 on aws-east: 3 free < minimum 10 (deficit 7, 4 sessions per server)"
    );
}

#[test]
fn pending_servers_count_at_full_capacity() {
    let mut s = pool(vec![policy("c", 4, 4, 100)]);
    let mut booting = server(1, 0, 0, 4);
    booting.state = ServerState::Starting;
    booting.checked_in_at = None;
    booting.created_at = t("2026-11-30T11:55:00Z");
    s.servers = vec![booting];
    assert!(
        plan(&s, now()).actions.is_empty(),
        "a booting server covers the minimum"
    );
}

#[test]
fn max_instances_counts_every_live_server() {
    let mut s = pool(vec![policy("c", 10, 1, 3)]);
    let mut going = server(1, 0, 0, 1);
    going.state = ServerState::Destroying;
    s.servers = vec![going, server(2, 0, 1, 1)];
    let p = plan(&s, now());
    assert_eq!(provisions(&p), [("c".into(), 1, Cause::BelowMinimum)]);
    assert!(
        p.actions[0].reason().ends_with("capped by max_instances 3"),
        "{}",
        p.actions[0].reason()
    );
    s.servers.push(server(3, 0, 1, 1));
    let p = plan(&s, now());
    assert!(provisions(&p).is_empty());
    assert_eq!(
        p.notes,
        ["c: 0 free < minimum 10, but all 3 servers allowed by max_instances exist"]
    );
}

#[test]
fn a_used_single_use_server_is_destroyed_when_its_session_ends() {
    let mut s = pool(vec![policy("c", 0, 1, 10)]);
    s.servers = vec![server(1, 0, 0, 1), server(2, 0, 1, 1)];
    s.servers[0].used = true;
    let p = plan(&s, now());
    assert_eq!(destroys(&p), [(id(1), Cause::SessionEnded)]);
}

#[test]
fn check_in_timeouts_destroy_count_as_failures_and_back_off() {
    let mut s = pool(vec![policy("c", 1, 1, 10)]);
    let mut stuck = server(1, 0, 0, 1);
    stuck.state = ServerState::Starting;
    stuck.checked_in_at = None;
    stuck.created_at = t("2026-11-30T11:39:59Z"); // 1201 s ago; timeout 1200 s
    s.servers = vec![stuck];
    let p = plan(&s, now());
    assert_eq!(destroys(&p), [(id(1), Cause::CheckinTimeout)]);
    assert_eq!(
        p.bookkeeping["c"],
        Bookkeeping {
            downscale_requested_at: None,
            consecutive_failures: 1,
            last_failure_at: Some(now()),
            rollout: None,
        }
    );
    // The replacement waits out the backoff (the server is still live until destroyed).
    assert!(provisions(&p).is_empty());
    assert_eq!(
        p.notes,
        [
            "c: 0 free < minimum 1, but waiting until 2026-11-30T12:01:00Z after 1 consecutive failure(s)"
        ]
    );

    // After the backoff: one server at a time.
    let mut s = pool(vec![policy("c", 5, 1, 10)]);
    s.configs[0].bookkeeping = Bookkeeping {
        consecutive_failures: 3,
        last_failure_at: Some(t("2026-11-30T11:55:00Z")),
        ..Bookkeeping::default()
    };
    let p = plan(&s, now());
    assert_eq!(provisions(&p), [("c".into(), 1, Cause::BelowMinimum)]);
    assert!(
        p.actions[0]
            .reason()
            .ends_with("one at a time after 3 consecutive failure(s)")
    );
    // A server that became ready after the last failure clears the count.
    s.servers = vec![server(1, 0, 1, 1)];
    s.servers[0].checked_in_at = Some(t("2026-11-30T11:58:00Z"));
    let p = plan(&s, now());
    assert_eq!(p.bookkeeping["c"].consecutive_failures, 0);
    assert_eq!(provisions(&p), [("c".into(), 5, Cause::BelowMinimum)]);
}

#[test]
fn failure_backoff_is_exponential_and_capped() {
    let waits: Vec<u64> = (0..10).map(failure_backoff).collect();
    assert_eq!(waits, [0, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    assert_eq!(failure_backoff(u32::MAX), 3600);
}

#[test]
fn surplus_must_last_the_backoff_and_never_touches_busy_servers() {
    let mut s = pool(vec![policy("c", 2, 2, 10)]);
    // 4 idle servers (8 free) and one busy; minimum 2.
    s.servers = (1..=4)
        .map(|n| server(n, 0, 0, 2))
        .chain([server(9, 0, 2, 2)])
        .collect();
    s.servers[0].created_at = t("2026-11-30T10:00:00Z"); // oldest goes first
    let p = plan(&s, now());
    assert!(destroys(&p).is_empty());
    assert_eq!(p.bookkeeping["c"].downscale_requested_at, Some(now()));

    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T11:40:00Z")); // 20 min < 30
    assert!(destroys(&plan(&s, now())).is_empty());

    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T11:30:00Z")); // 30 min
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        [
            (id(1), Cause::Surplus),
            (id(2), Cause::Surplus),
            (id(3), Cause::Surplus)
        ]
    );
    assert_eq!(
        p.bookkeeping["c"].downscale_requested_at, None,
        "no surplus left"
    );
    assert!(p.actions[0].reason().starts_with("destroy idle 00000000-0000-0000-0000-000000000001 of c: 8 free > minimum 2 since 2026-11-30T11:30:00Z"));
}

#[test]
fn schedules_set_the_minimum_and_outside_them_idle_servers_go() {
    let mut office = policy("c", 4, 1, 10);
    office.schedules = vec![Schedule {
        active_start_time: "08:00".parse().unwrap(),
        active_end_time: "18:00".parse().unwrap(),
        timezone: TimeZoneName::new("Europe/Berlin").unwrap(),
        days_of_the_week: Weekday::all()[..5].to_vec(),
        minimum_pool_standby_sessions: None,
    }];
    let mut s = pool(vec![office]);
    // Monday 2026-11-30 12:00 UTC = 13:00 Berlin: open.
    assert_eq!(
        provisions(&plan(&s, now())),
        [("c".into(), 4, Cause::BelowMinimum)]
    );
    // Monday 18:30 Berlin: closed; idle servers go after the backoff, the busy one stays.
    s.servers = vec![server(1, 0, 0, 1), server(2, 0, 1, 1)];
    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T17:00:00Z"));
    let p = plan(&s, t("2026-11-30T17:30:00Z"));
    assert_eq!(destroys(&p), [(id(1), Cause::Surplus)]);
}

#[test]
fn schedule_minimum_override_and_dst() {
    // Warm 6 slots 07:30-09:30 New York on weekdays, else the config's 1.
    let mut c = policy("c", 1, 1, 20);
    let window = |start: &str, end: &str, min| Schedule {
        active_start_time: start.parse().unwrap(),
        active_end_time: end.parse().unwrap(),
        timezone: TimeZoneName::new("America/New_York").unwrap(),
        days_of_the_week: Weekday::all()[..5].to_vec(),
        minimum_pool_standby_sessions: min,
    };
    c.schedules = vec![
        window("07:00", "19:00", None),
        window("07:30", "09:30", Some(6)),
    ];
    // Friday 2026-10-30, EDT (UTC-4): 07:45 local = 11:45 UTC.
    assert_eq!(c.minimum_at(t("2026-10-30T11:45:00Z")), 6);
    // Monday 2026-11-02, after the change to EST (UTC-5): 07:45 local = 12:45 UTC; 11:45 UTC is 06:45.
    assert_eq!(c.minimum_at(t("2026-11-02T12:45:00Z")), 6);
    assert_eq!(c.minimum_at(t("2026-11-02T11:45:00Z")), 0);
    assert_eq!(c.minimum_at(t("2026-11-02T15:00:00Z")), 1);
    let s = pool(vec![c]);
    assert_eq!(
        provisions(&plan(&s, t("2026-11-02T12:45:00Z"))),
        [("c".into(), 6, Cause::BelowMinimum)]
    );
    assert!(plan(&s, t("2026-11-02T11:45:00Z")).actions.is_empty());
}

/// A server of config `config` stuck starting since `created` (never checked in).
fn stuck(n: u128, config: u32, created: &str) -> ServerSnapshot {
    let mut s = server(n, config, 0, 1);
    s.state = ServerState::Starting;
    s.checked_in_at = None;
    s.created_at = t(created);
    s
}

/// Weekdays 08:00-18:00 in Berlin.
fn office_hours() -> Schedule {
    Schedule {
        active_start_time: "08:00".parse().unwrap(),
        active_end_time: "18:00".parse().unwrap(),
        timezone: TimeZoneName::new("Europe/Berlin").unwrap(),
        days_of_the_week: Weekday::all()[..5].to_vec(),
        minimum_pool_standby_sessions: None,
    }
}

#[test]
fn a_disabled_config_provisions_nothing_but_still_cleans_up() {
    let mut c = policy("c", 5, 1, 10);
    c.enabled = false;
    let mut s = pool(vec![c]);
    // A single-use server whose session ended, one stuck starting for 1201 s (timeout 1200 s),
    // and a busy one.
    s.servers = vec![
        server(1, 0, 0, 1),
        stuck(2, 0, "2026-11-30T11:39:59Z"),
        server(3, 0, 1, 1),
    ];
    s.servers[0].used = true;
    s.pending_requests = 3;
    let p = plan(&s, now());
    assert!(provisions(&p).is_empty(), "{:?}", p.actions);
    assert_eq!(
        destroys(&p),
        [(id(1), Cause::SessionEnded), (id(2), Cause::CheckinTimeout)]
    );
    assert_eq!(p.bookkeeping["c"].consecutive_failures, 1);
    assert_eq!(
        p.notes,
        ["3 session request(s) wait: no config with aggressive scaling has room"]
    );
}

#[test]
fn a_disabled_config_keeps_no_idle_server_warm() {
    let mut c = policy("c", 5, 2, 10);
    c.enabled = false;
    let mut s = pool(vec![c]);
    s.servers = vec![server(1, 0, 0, 2), server(2, 0, 0, 2), server(3, 0, 2, 2)];
    // The surplus starts its clock like any other...
    let p = plan(&s, now());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.bookkeeping["c"].downscale_requested_at, Some(now()));
    // ...and once it has lasted downscale_backoff (1800 s) the idle servers go; the busy one stays.
    s.configs[0].bookkeeping.downscale_requested_at = Some(t("2026-11-30T11:30:00Z"));
    let p = plan(&s, now());
    assert_eq!(
        destroys(&p),
        [(id(1), Cause::Surplus), (id(2), Cause::Surplus)]
    );
    assert!(provisions(&p).is_empty());
}

#[test]
fn outside_every_window_queued_requests_wait_with_a_note() {
    let mut office = policy("c", 2, 1, 10);
    office.schedules = vec![office_hours()];
    let mut s = pool(vec![office]);
    s.pending_requests = 3;
    // Monday 18:30 Berlin: closed. Nothing is provisioned, not even for the queue.
    let p = plan(&s, t("2026-11-30T17:30:00Z"));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(
        p.notes,
        [
            "c: 3 session request(s) wait: outside every schedule window",
            "3 session request(s) wait: no config with aggressive scaling has room"
        ]
    );
    // Monday 13:00 Berlin: open; the minimum and the queue are provisioned.
    let p = plan(&s, now());
    assert_eq!(
        provisions(&p),
        [
            ("c".into(), 2, Cause::BelowMinimum),
            ("c".into(), 3, Cause::QueuedRequests)
        ]
    );
}

#[test]
fn a_burst_of_timeouts_in_one_plan_counts_as_one_failure() {
    let mut s = pool(vec![policy("c", 40, 1, 100)]);
    s.servers = (1..=40)
        .map(|n| stuck(n, 0, "2026-11-30T11:30:00Z"))
        .collect();
    let p = plan(&s, now());
    assert_eq!(destroys(&p).len(), 40);
    assert!(
        destroys(&p)
            .iter()
            .all(|(_, cause)| *cause == Cause::CheckinTimeout)
    );
    let bk = &p.bookkeeping["c"];
    assert_eq!(bk.consecutive_failures, 1, "one plan, one failure");
    assert_eq!(bk.last_failure_at, Some(now()));
    assert_eq!(failure_backoff(bk.consecutive_failures), 60);
    assert!(
        p.notes[0].contains("waiting until 2026-11-30T12:01:00Z"),
        "{:?}",
        p.notes
    );
    // A second burst in a later plan adds one more: 120 s, not the one-hour cap.
    s.configs[0].bookkeeping = bk.clone();
    let later = t("2026-11-30T12:05:00Z");
    let p = plan(&s, later);
    assert_eq!(p.bookkeeping["c"].consecutive_failures, 2);
    assert_eq!(
        failure_backoff(p.bookkeeping["c"].consecutive_failures),
        120
    );
}

#[test]
fn two_configs_keep_their_own_minimum_and_queued_requests_go_to_the_first_with_room() {
    let mut s = pool(vec![policy("aws", 2, 1, 2), policy("azure", 3, 1, 10)]);
    let p = plan(&s, now());
    assert_eq!(
        provisions(&p),
        [
            ("aws".into(), 2, Cause::BelowMinimum),
            ("azure".into(), 3, Cause::BelowMinimum)
        ]
    );

    // aws is full: requests that no slot covers provision on azure.
    s.servers = vec![server(1, 0, 1, 1), server(2, 1, 1, 1)];
    s.servers.push(server(3, 0, 1, 1));
    s.pending_requests = 2;
    s.configs[0].policy.max_instances = 2;
    let p = plan(&s, now());
    assert_eq!(
        provisions(&p),
        [
            ("aws".into(), 0, Cause::BelowMinimum),
            ("azure".into(), 3, Cause::BelowMinimum),
            ("azure".into(), 2, Cause::QueuedRequests)
        ]
        .into_iter()
        .filter(|(_, n, _)| *n > 0)
        .collect::<Vec<_>>()
    );
    // Without aggressive scaling, requests wait for the normal cycle.
    s.configs[1].policy.aggressive_scaling = false;
    let p = plan(&s, now());
    assert_eq!(provisions(&p), [("azure".into(), 3, Cause::BelowMinimum)]);
    assert_eq!(
        p.notes.last().unwrap(),
        "2 session request(s) wait: no config with aggressive scaling has room"
    );
}

#[test]
fn queued_requests_use_free_slots_first() {
    let mut s = pool(vec![policy("c", 2, 4, 10)]);
    s.servers = vec![server(1, 0, 1, 4)]; // 3 free
    s.pending_requests = 2; // take 2 of them: 1 left < minimum 2
    let p = plan(&s, now());
    assert_eq!(provisions(&p), [("c".into(), 1, Cause::BelowMinimum)]);
}

#[test]
fn placement_depth_first_breadth_first_and_readiness() {
    let mut s = pool(vec![policy("c", 0, 4, 10)]);
    s.servers = vec![
        server(1, 0, 1, 4),
        server(2, 0, 3, 4),
        server(3, 0, 4, 4),
        server(4, 0, 0, 4),
    ];
    assert_eq!(
        assign(&s),
        Some(id(2)),
        "depth-first: the fullest with room"
    );
    s.placement = Placement::BreadthFirst;
    assert_eq!(assign(&s), Some(id(4)));
    // Not checked in where required, spent single-use servers and full servers take nothing.
    let mut single = pool(vec![{
        let mut p = policy("c", 0, 1, 10);
        p.requires_checkin = true;
        p
    }]);
    let mut unchecked = server(1, 0, 0, 1);
    unchecked.checked_in_at = None;
    let mut spent = server(2, 0, 0, 1);
    spent.used = true;
    single.servers = vec![unchecked, spent];
    assert_eq!(assign(&single), None);
    single.servers.push(server(3, 0, 0, 1));
    assert_eq!(assign(&single), Some(id(3)));
}

/// The minimum and the queued requests are one need: an empty pool with minimum `m` and `q`
/// waiting requests needs ceil((m + q) / sessions per server) servers, not one per rule.
#[test]
fn the_minimum_and_the_queue_share_one_deficit() {
    let mut wrong = Vec::new();
    for minimum in 0..=6u32 {
        for queued in 0..=4u32 {
            let mut s = pool(vec![policy("c", minimum, 4, 100)]);
            s.pending_requests = queued;
            let p = plan(&s, now());
            let servers: u32 = provisions(&p).iter().map(|(_, n, _)| n).sum();
            let need = (minimum + queued).div_ceil(4);
            if servers != need {
                wrong.push(format!(
                    "minimum {minimum}, {queued} queued: {servers} servers, {need} enough"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Two configs with aggressive scaling: the servers one tick provisions for the queue are the
/// ones the queue takes at the next plan, so neither config looks short and nothing more is
/// provisioned (servers of one tick share their creation time).
#[test]
fn the_queue_keeps_the_servers_provisioned_for_it() {
    let mut s = pool(vec![policy("a", 1, 1, 100), policy("b", 1, 4, 100)]);
    s.pending_requests = 1;
    let first = plan(&s, now());
    let mut n = 0;
    for action in &first.actions {
        let Action::Provision {
            config,
            count,
            queue_slots,
            ..
        } = action
        else {
            continue;
        };
        let c = s
            .configs
            .iter()
            .position(|x| &x.policy.name == config)
            .unwrap();
        let capacity = s.configs[c].policy.sessions_per_server;
        let mut queue_slots = *queue_slots;
        for _ in 0..*count {
            let slots = queue_slots.min(capacity);
            queue_slots -= slots;
            n += 1;
            s.servers.push(ServerSnapshot {
                // Ids in the opposite order of the configs: an id tie-break picks b first.
                id: id(1000 - n),
                config: c as u32,
                state: ServerState::Provisioning,
                sessions: 0,
                capacity,
                reusable: capacity > 1,
                used: false,
                created_at: now(),
                checked_in_at: None,
                queue_slots: slots,
                outdated: false,
                drained: None,
                woken_at: None,
                for_warm: false,
            });
        }
    }
    let total: u32 = provisions(&first).iter().map(|(_, n, _)| n).sum();
    assert_eq!(total, 2, "one server each: {:?}", first.actions);
    let again = plan(&s, now());
    assert_eq!(provisions(&again), vec![], "{:?}", again.actions);
}
