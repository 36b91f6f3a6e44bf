//! The [`StateStore`] contract: what every store (memory, file, PostgreSQL) must keep.

use std::collections::VecDeque;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::controller::{AdRecord, Queued, Records, ServerInfo, SessionId};
use crate::engine::{Bookkeeping, ServerId, ServerState};
use crate::traits::StateStore;

/// Records holding every kind of record with every optional field set, varied by `seed` (for
/// round trips): `servers` servers in every state, a session on each of the first half,
/// two pools' queues, bookkeeping, orphans, tombstones and the session counter.
pub fn sample_records(seed: u64, servers: u32) -> Records {
    let at = |s: i64| Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_800_000_000 + s);
    let states = [
        ServerState::Provisioning,
        ServerState::Starting,
        ServerState::Running,
        ServerState::Destroying,
    ];
    let mut r = Records::default();
    for i in 0..servers {
        let n = u128::from(seed) << 32 | u128::from(i);
        let id = ServerId(uuid::Uuid::from_u128(n));
        let full = i % 2 == 0;
        r.servers.insert(
            id,
            ServerInfo {
                id,
                hostname: format!("KASM-{:010X}", n & 0xff_ffff_ffff),
                pool: format!("pool-{}", i % 3),
                config: format!("config-{}", i % 2),
                provider: "mem".into(),
                state: states[i as usize % states.len()],
                vm_id: full.then(|| format!("i-{n:x}")),
                address: full.then(|| format!("10.0.{}.{}", i / 250, i % 250)),
                sessions: i % 3,
                capacity: 4,
                reusable: i % 3 != 0,
                requires_checkin: true,
                used: i % 2 == 1,
                sessions_unknown: i % 5 == 4,
                sessions_unknown_since: (i % 5 == 4).then(|| at(i64::from(i) + 60)),
                queue_slots: i % 4,
                created_at: at(i64::from(i)),
                checked_in_at: full.then(|| at(i64::from(i) + 90)),
                ad: full.then(|| AdRecord {
                    ldap: "ad".into(),
                    container_dn: "OU=Kasm, DC=example,DC=local".into(),
                    recursive: i % 3 == 0,
                }),
                ad_join: full.then(|| crate::token::Sealed {
                    key_id: "ed25519:0123456789abcdef".into(),
                    data: format!("c2VhbGVk{i}"),
                }),
                last_error: full.then(|| format!("error \"{i}\" with ünïcode\nand a newline")),
                reported_status: full.then(|| "running (100%): ready".into()),
                generation: (i % 2 == 0)
                    .then_some(crate::config::Generation(0x4759_a486_cac0_27d6 ^ seed)),
                offering: 0,
                for_warm: false,
                stopped_at: None,
                woken_at: None,
                power_failures: 0,
            },
        );
        if i < servers / 2 {
            r.sessions.insert(SessionId(seed * 1000 + u64::from(i)), id);
        }
    }
    for (p, len) in [("pool-0", 3u64), ("pool with spaces/ü", 2)] {
        let queue: VecDeque<Queued> = (0..len)
            .map(|k| Queued {
                session: SessionId(seed * 1000 + 500 + k),
                since: at(k as i64),
            })
            .collect();
        r.queued.insert(p.into(), queue);
    }
    r.bookkeeping.insert(
        "config-0".into(),
        Bookkeeping {
            downscale_requested_at: Some(at(7)),
            consecutive_failures: 3,
            last_failure_at: Some(at(8)),
            rollout: Some(crate::engine::RolloutState {
                generation: crate::config::Generation(seed << 8 | 0xab),
                started_at: at(20),
                failures_since: at(21),
                canary_ready_at: Some(at(22)),
                paused: Some(crate::engine::RolloutPause {
                    at: at(23),
                    reason: "server X of generation G did not check in within 1200 s".into(),
                }),
                finished_at: None,
            }),
        },
    );
    r.bookkeeping
        .insert("config-1".into(), Bookkeeping::default());
    r.orphans.insert(format!("vm:mem:i-orphan-{seed}"), at(11));
    r.orphans
        .insert("ad:ad:CN=KASM-X,OU=Kasm,DC=example,DC=local".into(), at(12));
    r.removed.insert(
        ServerId(uuid::Uuid::from_u128(u128::from(seed) + 77)),
        at(13),
    );
    // A day and a half of demand history, and boot times.
    let (mut recent, mut profile) = Default::default();
    for k in 0..(40 + seed as i64 % 7) {
        crate::engine::demand::record_arrival(
            &mut recent,
            &mut profile,
            at(k * 3_000),
            &jiff::tz::TimeZone::UTC,
        );
    }
    r.demand_recent.insert("pool-0".into(), recent);
    r.demand_profiles.insert("pool-0".into(), profile);
    let mut boots = crate::engine::demand::BootTimes::default();
    for k in 0..5 {
        boots.record(90.0 + f64::from(k) * 7.5);
    }
    r.boot_times.insert("config-0".into(), boots);
    r.requests.insert(
        format!("retry-key-{seed}"),
        crate::controller::RequestRecord {
            pool: "pool-0".into(),
            session: SessionId(seed * 1000 + 1),
            server: r.servers.keys().next().copied(),
            at: at(90),
        },
    );
    // Drains of every kind of target, and the users of some sessions.
    let first = *r.servers.keys().next().expect("servers");
    for (target, then) in [
        (
            crate::controller::DrainTarget::Server(first),
            crate::engine::DrainThen::Keep,
        ),
        (
            crate::controller::DrainTarget::Config("config-1".into()),
            crate::engine::DrainThen::Destroy,
        ),
        (
            crate::controller::DrainTarget::Pool("pool with spaces/ü".into()),
            crate::engine::DrainThen::Destroy,
        ),
    ] {
        r.drains.insert(
            target.key(),
            crate::controller::Drain {
                target,
                by: "ops@example.com".into(),
                reason: format!("patch night {seed}"),
                since: at(30),
                until: (then == crate::engine::DrainThen::Destroy).then(|| at(3_600)),
                then,
            },
        );
    }
    for k in 0..3 {
        r.users
            .insert(SessionId(seed * 1000 + k), format!("user{k}@example.com"));
    }
    r.acted_generations
        .insert("config-0".into(), crate::config::Generation(seed ^ 0x5eed));
    r.next_session = seed * 1000 + 999;
    r.token_key_id = Some(format!("hs256:{seed:016x}"));
    r
}

/// Runs the [`StateStore`] contract. `open` gives a new handle on one store that is empty at
/// the start (as a restarted process would open it): each step reads back through a new handle,
/// so what is checked is what the store keeps, not what a handle remembers.
///
/// 1. an empty store loads `None`;
/// 2. every kind of record round-trips;
/// 3. changes (servers added, changed and removed, a queue emptied, sessions ended, orphans
///    and tombstones forgotten, the counter moved) are kept, and nothing else changes;
/// 4. saving the same records again changes nothing; saving empty records keeps them empty;
/// 5. saves racing through one handle leave exactly one of them, whole.
pub async fn state_store_contract(open: impl Fn() -> Arc<dyn StateStore>) {
    let store = open();
    assert_eq!(
        store.load().await.expect("load an empty store"),
        None,
        "an empty store loads nothing"
    );

    let first = sample_records(1, 40);
    store.save(&first).await.expect("save");
    assert_eq!(
        open().load().await.expect("load").as_ref(),
        Some(&first),
        "every kind of record round-trips"
    );

    let mut second = first.clone();
    let ids: Vec<ServerId> = second.servers.keys().copied().collect();
    second.servers.remove(&ids[0]);
    second.servers.remove(&ids[5]);
    if let Some(s) = second.servers.get_mut(&ids[1]) {
        s.state = ServerState::Running;
        s.sessions = 4;
        s.last_error = None;
        s.ad = None;
    }
    let extra = sample_records(2, 3);
    second.servers.extend(extra.servers.clone());
    second
        .sessions
        .retain(|_, on| *on != ids[0] && *on != ids[2]);
    second.queued.remove("pool-0");
    if let Some(q) = second.queued.get_mut("pool with spaces/ü") {
        q.pop_front();
    }
    second.bookkeeping.remove("config-1");
    if let Some(b) = second.bookkeeping.get_mut("config-0") {
        b.consecutive_failures = 0;
    }
    second.orphans.clear();
    second.removed.extend(extra.removed);
    second.next_session += 17;
    second.token_key_id = None;
    store.save(&second).await.expect("save the changes");
    assert_eq!(
        open().load().await.expect("load").as_ref(),
        Some(&second),
        "changes are kept, and only them"
    );

    store.save(&second).await.expect("save again");
    let reopened = open();
    assert_eq!(
        reopened.load().await.expect("load").as_ref(),
        Some(&second),
        "saving the same records again changes nothing"
    );
    reopened
        .save(&Records::default())
        .await
        .expect("save empty records");
    assert_eq!(
        open().load().await.expect("load").unwrap_or_default(),
        Records::default(),
        "empty records stay empty"
    );

    let racer = open();
    racer.load().await.expect("load before racing");
    let versions: Vec<Records> = (10..18).map(|seed| sample_records(seed, 12)).collect();
    let mut saves = tokio::task::JoinSet::new();
    for v in versions.clone() {
        let racer = racer.clone();
        saves.spawn(async move { racer.save(&v).await });
    }
    while let Some(done) = saves.join_next().await {
        done.expect("a save task").expect("a racing save");
    }
    let last = open().load().await.expect("load after the race");
    assert!(
        last.as_ref().is_some_and(|l| versions.contains(l)),
        "racing saves leave exactly one of them, whole"
    );
}
