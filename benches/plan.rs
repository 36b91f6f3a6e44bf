//! plan() over 1k to 1M servers in 100 configs, per server, next to the memory-bound floor: a
//! plain pass that reads every server once. `python3 benches/plan_report.py` prints the table.
//! Beside it (group `rollout`), one config of 500 servers planned steady and in mid-rollout
//! (half its servers outdated, the canary ready, replacements coming up, idle old servers to
//! retire), and the tick after (those retires under way): what a rollout adds to a tick.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kasm_scale::config::{AutoScaleConfig, ConnectionType, Generation};
use kasm_scale::engine::{
    Action, Bookkeeping, Cause, ConfigSnapshot, PoolSnapshot, RolloutState, ScalingPolicy,
    ServerId, ServerSnapshot, ServerState, plan,
};

const CONFIGS: usize = 100;

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

/// A steady pool: `servers` spread over 100 configs, mostly busy, a few idle or booting, with
/// minimums that hold (so the plan is nearly empty, as on most ticks).
fn snapshot(servers: usize) -> PoolSnapshot {
    let per_config = (servers / CONFIGS).max(1) as u32;
    let configs = (0..CONFIGS)
        .map(|i| {
            let mut c = AutoScaleConfig::new(format!("cfg-{i}"), "p", ConnectionType::Rdp);
            c.minimum_pool_standby_sessions = 8;
            c.max_simultaneous_sessions_per_server = 4;
            c.reusable = true;
            c.require_checkin = true;
            ConfigSnapshot {
                policy: ScalingPolicy::new(&c, per_config * 2),
                bookkeeping: Bookkeeping::default(),
                generation: None,
            }
        })
        .collect();
    let servers = (0..servers)
        .map(|i| {
            let (state, sessions, checked) = match i % 50 {
                0 => (ServerState::Starting, 0, None),
                1..=3 => (
                    ServerState::Running,
                    0,
                    Some(now() - SignedDuration::from_mins(50)),
                ),
                _ => (
                    ServerState::Running,
                    1 + (i % 4) as u32,
                    Some(now() - SignedDuration::from_mins(50)),
                ),
            };
            ServerSnapshot {
                id: ServerId(uuid::Uuid::from_u128(i as u128 + 1)),
                config: (i % CONFIGS) as u32,
                state,
                sessions: sessions.min(4),
                capacity: 4,
                reusable: true,
                used: sessions > 0,
                created_at: now() - SignedDuration::from_mins(60 - (i % 30) as i64),
                checked_in_at: checked,
                queue_slots: 0,
                outdated: false,
                drained: None,
                woken_at: None,
                for_warm: false,
            }
        })
        .collect();
    PoolSnapshot {
        pool: "bench".into(),
        configs,
        servers,
        ..PoolSnapshot::default()
    }
}

/// Servers of the one config of the rollout case.
const ROLLOUT_SERVERS: usize = 500;

/// One config of [`ROLLOUT_SERVERS`] servers (4 sessions each, minimum 40, 600 allowed), mostly
/// busy. With `rolling`, its generation is known, its rollout is replacing (canary ready an
/// hour ago), every second server is outdated, and some current ones are still coming up.
fn one_config(rolling: bool) -> PoolSnapshot {
    let mut c = AutoScaleConfig::new("desktops", "p", ConnectionType::Rdp);
    c.minimum_pool_standby_sessions = 40;
    c.max_simultaneous_sessions_per_server = 4;
    c.reusable = true;
    c.require_checkin = true;
    let mut bookkeeping = Bookkeeping::default();
    if rolling {
        bookkeeping.rollout = Some(RolloutState {
            generation: Generation(2),
            started_at: now() - SignedDuration::from_mins(90),
            failures_since: now() - SignedDuration::from_mins(90),
            canary_ready_at: Some(now() - SignedDuration::from_mins(60)),
            paused: None,
            finished_at: None,
        });
    }
    let config = ConfigSnapshot {
        policy: ScalingPolicy::new(&c, 600),
        bookkeeping,
        generation: rolling.then_some(Generation(2)),
    };
    let servers = (0..ROLLOUT_SERVERS)
        .map(|i| {
            let outdated = rolling && i % 2 == 0;
            let (state, sessions, checked) = match i % 20 {
                // Replacements coming up (current ones only while rolling).
                1 if rolling => (ServerState::Starting, 0, None),
                // Idle: old ones to retire, current ones holding the minimum.
                0..=5 => (
                    ServerState::Running,
                    0,
                    Some(now() - SignedDuration::from_mins(50)),
                ),
                _ => (
                    ServerState::Running,
                    1 + (i % 4) as u32,
                    Some(now() - SignedDuration::from_mins(50)),
                ),
            };
            ServerSnapshot {
                id: ServerId(uuid::Uuid::from_u128(i as u128 + 1)),
                config: 0,
                state,
                sessions,
                capacity: 4,
                reusable: true,
                used: sessions > 0,
                created_at: now() - SignedDuration::from_mins(60 - (i % 30) as i64),
                checked_in_at: checked,
                queue_slots: 0,
                outdated,
                drained: None,
                woken_at: None,
                for_warm: false,
            }
        })
        .map(|s| match s.state {
            // Coming up for two minutes, well within the check-in timeout.
            ServerState::Starting => ServerSnapshot {
                created_at: now() - SignedDuration::from_mins(2),
                ..s
            },
            _ => s,
        })
        .collect();
    PoolSnapshot {
        pool: "bench".into(),
        configs: vec![config],
        servers,
        ..PoolSnapshot::default()
    }
}

/// The floor: read every server once, adding its free slots to its config.
fn floor(s: &PoolSnapshot) -> u64 {
    let mut free = [0u64; CONFIGS];
    for server in &s.servers {
        free[server.config as usize] += u64::from(server.capacity - server.sessions);
    }
    free.iter().sum()
}

fn bench(c: &mut Criterion) {
    println!(
        "ServerSnapshot: {} bytes per server",
        std::mem::size_of::<ServerSnapshot>()
    );
    let mut group = c.benchmark_group("plan");
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let s = snapshot(n);
        let p = plan(&s, now());
        assert!(
            p.actions.len() < n / 10,
            "a steady pool needs few actions: {}",
            p.actions.len()
        );
        group.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::new("plan", n), &s, |b, s| {
            b.iter(|| plan(black_box(s), now()))
        });
        group.bench_with_input(BenchmarkId::new("floor", n), &s, |b, s| {
            b.iter(|| floor(black_box(s)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("rollout");
    group.throughput(Throughput::Elements(ROLLOUT_SERVERS as u64));
    // The tick after the retires: the idle outdated servers are being destroyed.
    let mut next = one_config(true);
    for v in &mut next.servers {
        if v.outdated && v.sessions == 0 && v.state == ServerState::Running {
            v.state = ServerState::Destroying;
        }
    }
    let cases = [
        ("steady", one_config(false), false),
        ("mid-rollout", one_config(true), true),
        ("mid-rollout-next", next, false),
    ];
    for (name, s, retiring) in cases {
        let p = plan(&s, now());
        let retires = p
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Destroy {
                        cause: Cause::Rollout,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(
            retires > 0,
            retiring,
            "{name}: only the mid-rollout case retires idle outdated servers: {:?}",
            p.notes
        );
        println!(
            "rollout/{name}/{ROLLOUT_SERVERS}: {} actions ({retires} retires), {} notes",
            p.actions.len(),
            p.notes.len()
        );
        group.bench_with_input(BenchmarkId::new(name, ROLLOUT_SERVERS), &s, |b, s| {
            b.iter(|| plan(black_box(s), now()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
