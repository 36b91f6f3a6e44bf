//! Failover: three replicas on one database and one cloud; the leader is killed (as by SIGKILL)
//! at a random moment of a burst of session requests, in 100 seeded runs. Each run checks that
//! a new leader acts within TTL + one tick, that no server id got two VMs, that the cloud never
//! held more than `max_instances`, that no VM or AD record leaked and that no session the broker
//! was given got lost. Prints the failover times (p50, p99, max).

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::replicas::{MAX_INSTANCES, Replica, World, leader, request};
use kasm_scale_core::controller::{Event, SessionOutcome, SessionStatus};
use kasm_scale_core::traits::{DirectoryService, VmProvider};
use rand::{Rng, SeedableRng};

const TTL: Duration = Duration::from_millis(900);
const TICK: Duration = Duration::from_millis(100);
const RUNS: u64 = 100;
/// Runs at once.
const PARALLEL: usize = 4;

/// A finished run's failover time; a run that panicked fails the test with its message.
fn joined(done: Option<Result<Duration, tokio::task::JoinError>>) -> Duration {
    match done.expect("a run is under way") {
        Ok(took) => took,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a run was cancelled: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_ttl_and_a_tick_and_nothing_is_lost_or_doubled() {
    let Some(server) = common::server() else {
        return;
    };
    // Runs are independent (a database and a cloud each) and mostly wait on timers: a few at
    // once keep the wall time short.
    let mut failovers = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    for seed in 0..RUNS {
        if running.len() == PARALLEL {
            failovers.push(joined(running.join_next().await));
        }
        let server = server.clone();
        running.spawn(async move { run(&server, seed).await });
    }
    while let Some(done) = running.join_next().await {
        failovers.push(joined(Some(done)));
    }
    failovers.sort();
    let at = |q: f64| failovers[((failovers.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "failover over {RUNS} runs (TTL {} ms, tick {} ms): p50 {} ms, p99 {} ms, max {} ms",
        TTL.as_millis(),
        TICK.as_millis(),
        at(0.5).as_millis(),
        at(0.99).as_millis(),
        failovers.last().map_or(0, Duration::as_millis),
    );
}

/// One seeded run; returns the time from the kill to the new leader's first act.
async fn run(server: &str, seed: u64) -> Duration {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let database = common::fresh_database(server).await;
    let world = World::new(seed, Duration::from_millis(rng.random_range(50..300)));
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(Replica::start(i, &world, &database, TTL, TICK).await);
    }
    let first = leader(&replicas, TTL * 3)
        .await
        .unwrap_or_else(|| panic!("seed {seed}: no replica took the lease"));

    // The cloud never holds more than max_instances: watched all along.
    let watch = tokio::spawn({
        let cloud = world.cloud.clone();
        async move {
            let mut most = 0;
            loop {
                most = most.max(cloud.vm_count());
                if most > MAX_INSTANCES {
                    return most;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let requests = rng.random_range(8..20);
    let kill_after = rng.random_range(0..requests);
    let mut given: Vec<(u64, SessionOutcome)> = Vec::new();
    let mut killed_at = None;
    for k in 0..requests {
        if k == kill_after {
            let victim = replicas.iter().position(Replica::leads).unwrap_or(first);
            replicas.remove(victim).kill();
            killed_at = Some(Instant::now());
        }
        let (_, outcome) = request(&replicas, TTL * 4)
            .await
            .unwrap_or_else(|| panic!("seed {seed}: request {k} found no leader"));
        given.push((k, outcome));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..60))).await;
    }
    let killed_at = killed_at.unwrap_or_else(Instant::now);

    // Let the new leader finish its work: boots, the queue, a reconcile.
    tokio::time::sleep(TICK * 12).await;
    let now_leader = leader(&replicas, TTL * 3)
        .await
        .unwrap_or_else(|| panic!("seed {seed}: no leader at the end"));
    let scaler = replicas[now_leader].scaler.clone();
    scaler.tick().await;
    scaler.settle().await;

    // A new leader acted within TTL + one tick of the kill.
    let events = world.events();
    let took_over = events
        .iter()
        .find(|(at, _, e)| *at > killed_at && matches!(e, Event::Leading { .. }))
        .map(|(at, _, _)| at.duration_since(killed_at))
        .unwrap_or_else(|| panic!("seed {seed}: nobody took over after the kill"));
    assert!(
        took_over <= TTL + TICK,
        "seed {seed}: the new leader acted {} ms after the kill (TTL {} + tick {})",
        took_over.as_millis(),
        TTL.as_millis(),
        TICK.as_millis()
    );

    let twice = world.cloud.created_twice();
    assert!(
        twice.is_empty(),
        "seed {seed}: servers created twice: {twice:?}"
    );
    watch.abort();
    if let Ok(Ok(most)) = tokio::time::timeout(Duration::from_millis(50), watch).await {
        panic!("seed {seed}: the cloud held {most} VMs, over max_instances {MAX_INSTANCES}");
    }

    // No lost session: every session given is seated or waiting on the new leader.
    for (k, outcome) in &given {
        let session = match outcome {
            SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session } => {
                *session
            }
        };
        let status = scaler.session(session);
        assert!(
            matches!(
                status,
                Some(SessionStatus::Assigned { .. } | SessionStatus::Queued { .. })
            ),
            "seed {seed}: request {k}'s session {session:?} was lost ({status:?})"
        );
    }

    // No leak: the cloud's VMs and the directory's records are exactly the leader's servers.
    let servers = scaler.servers();
    let known: BTreeSet<_> = servers.iter().map(|s| s.id).collect();
    let vms: BTreeSet<_> = world
        .cloud
        .list("kasm-scale")
        .await
        .expect("list the cloud")
        .into_iter()
        .map(|v| v.owner.server_id)
        .collect();
    assert_eq!(
        vms, known,
        "seed {seed}: VMs and the leader's servers differ"
    );
    let records = world
        .directory
        .list_computers("kasm-scale", &["OU=Kasm,DC=example,DC=local".to_owned()])
        .await
        .expect("list the directory")
        .len();
    assert_eq!(
        records,
        servers.iter().filter(|s| s.ad.is_some()).count(),
        "seed {seed}: AD records and the leader's servers differ"
    );

    for r in replicas {
        r.stop().await;
    }
    took_over
}
