//! Drains survive a failover: the leader drains a server (kept for maintenance) and is killed;
//! the replica that takes over has the drain, keeps the server, and does not count its slot.

use crate::common;

use std::time::{Duration, Instant};

use common::replicas::{Replica, World, leader};
use kasm_scale_core::controller::{DrainRequest, DrainTarget};
use kasm_scale_core::engine::{DrainThen, ServerState};

const TTL: Duration = Duration::from_millis(900);
const TICK: Duration = Duration::from_millis(100);

/// Waits until `done` holds, for at most `patience`.
async fn until(patience: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + patience;
    while Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_survives_a_failover() {
    let Some(server) = common::server() else {
        return;
    };
    let database = common::fresh_database(&server).await;
    let world = World::new(5, Duration::from_millis(100));
    let mut replicas = Vec::new();
    for i in 0..2 {
        replicas.push(Replica::start(i, &world, &database, TTL, TICK).await);
    }
    let first = leader(&replicas, TTL * 3).await.expect("a leader");
    let scaler = replicas[first].scaler.clone();
    assert!(
        until(Duration::from_secs(10), || scaler.pools()[0].free_sessions
            >= 2)
        .await,
        "the pool filled: {:?}",
        scaler.pools()
    );
    let kept = scaler.servers()[0].id;
    scaler
        .drain(DrainRequest {
            target: DrainTarget::Server(kept),
            by: "ops@example.com".into(),
            reason: "firmware".into(),
            until: None,
            then: DrainThen::Keep,
        })
        .await
        .unwrap();
    replicas.remove(first).kill();
    let next = leader(&replicas, TTL * 4).await.expect("a new leader");
    let scaler = replicas[next].scaler.clone();
    tokio::time::sleep(TICK * 10).await;
    let drains = scaler.drains();
    assert_eq!(drains.len(), 1, "{drains:?}");
    assert_eq!(drains[0].target, DrainTarget::Server(kept));
    assert_eq!(drains[0].by, "ops@example.com");
    let s = scaler.server(kept).expect("the kept server stays");
    assert_ne!(s.state, ServerState::Destroying);
    // Its slot is not free: the new leader keeps the minimum on the other servers.
    assert!(
        until(Duration::from_secs(10), || {
            let live = scaler
                .servers()
                .into_iter()
                .filter(|s| s.id != kept && s.state == ServerState::Running)
                .map(|s| s.capacity - s.sessions)
                .sum::<u32>();
            live >= 2
        })
        .await,
        "{:?}",
        scaler.servers()
    );
    for r in replicas {
        r.stop().await;
    }
}
