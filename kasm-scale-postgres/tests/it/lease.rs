//! The lease under load: a save in flight (which holds a key-share lock on the lease row) does
//! not hold up the leader's renewals, so a slow save does not make the leader step down; and
//! a takeover waits for a save in flight (the save lands before the new leader loads, or is
//! refused).

use crate::common;

use std::time::Duration;

use common::replicas::{Replica, World, leader};
use kasm_scale_core::controller::Event;

const TTL: Duration = Duration::from_millis(900);
const TICK: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_save_does_not_stop_the_leaders_renewals() {
    let Some(server) = common::server() else {
        return;
    };
    let database = common::fresh_database(&server).await;
    let world = World::new(1, Duration::from_millis(50));
    let replicas = vec![Replica::start(0, &world, &database, TTL, TICK).await];
    leader(&replicas, TTL * 3).await.expect("it leads");
    tokio::time::sleep(TICK * 3).await;
    // A real save that takes three TTLs: another session holds the version row, so the
    // leader's save waits (holding its lock on the lease row) until that session ends.
    let mut client = replicas[0].store.pool().get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    tx.query_one(
        "SELECT version FROM kasm_scale_version WHERE name = 'records' FOR UPDATE",
        &[],
    )
    .await
    .expect("hold the version row");
    let scaler = replicas[0].scaler.clone();
    let slow = tokio::spawn(async move {
        scaler
            .request_session("p", &kasm_scale_core::engine::SessionRequest::default())
            .await
    });
    tokio::time::sleep(TTL * 3).await;
    assert!(
        !slow.is_finished(),
        "the save was not held up: the test proves nothing"
    );
    tx.rollback().await.expect("end the blocker");
    drop(client);
    slow.await
        .expect("task")
        .expect("the slow request is answered by the leader");
    assert!(
        replicas[0].leads(),
        "the leader stepped down behind a slow save"
    );
    assert!(
        !world
            .events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::SteppedDown { .. })),
        "the leader stepped down behind a slow save"
    );
    for r in replicas {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_a_save_in_flight() {
    let Some(server) = common::server() else {
        return;
    };
    let database = common::fresh_database(&server).await;
    let world = World::new(2, Duration::from_millis(50));
    let a = Replica::start(0, &world, &database, TTL, TICK).await;
    leader(std::slice::from_ref(&a), TTL * 3)
        .await
        .expect("a leads");
    // A save of a's is in flight (its lock is held) when a dies.
    let mut client = a.store.pool().get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    tx.query_one(
        "SELECT epoch FROM kasm_scale_lease WHERE name = 'leader' FOR KEY SHARE",
        &[],
    )
    .await
    .expect("the lock a save takes");
    a.kill();
    let b = Replica::start(1, &world, &database, TTL, TICK).await;
    // The lease expires, but b cannot take it while the save holds its lock.
    tokio::time::sleep(TTL * 2).await;
    assert!(
        !b.leads(),
        "b took over while a save of the old leader was in flight"
    );
    tx.rollback().await.expect("the save ends");
    drop(client);
    leader(std::slice::from_ref(&b), TTL * 3)
        .await
        .expect("b leads once the save has ended");
    b.stop().await;
}
