//! Database faults: the leader's connections are severed three times during a burst (what a
//! restart of PostgreSQL looks like to it). Saves and lease renewals are retried on fresh
//! connections (or the leader steps down and a replica takes over): every session the broker was
//! given is still known, no server is created twice, nothing leaks. Also: a statement cancelled
//! by the server (statement timeout) fails a save as a transient error, and the next save
//! succeeds.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::proxy::Proxy;
use common::replicas::{Replica, World, leader, request};
use kasm_scale_core::controller::{SessionOutcome, SessionStatus};
use kasm_scale_core::testkit::sample_records;
use kasm_scale_core::traits::VmProvider;
use kasm_scale_core::traits::{StateStore, StoreError};
use kasm_scale_postgres::PostgresStore;

const TTL: Duration = Duration::from_millis(1500);
const TICK: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severed_connections_lose_no_session_and_create_nothing_twice() {
    let Some(server) = common::server() else {
        return;
    };
    for seed in 0..3 {
        let database = common::fresh_database(&server).await;
        let (proxy, via_proxy) = Proxy::in_front_of(&database).await;

        let world = World::new(seed, Duration::from_millis(50));
        let mut replicas = vec![Replica::start(0, &world, &via_proxy, TTL, TICK).await];
        leader(&replicas, TTL * 3)
            .await
            .expect("the first replica leads");
        replicas.push(Replica::start(1, &world, &database, TTL, TICK).await);

        let mut given = Vec::new();
        for k in 0..30 {
            if k % 10 == 5 {
                proxy.sever();
            }
            let (_, outcome) = request(&replicas, TTL * 4)
                .await
                .unwrap_or_else(|| panic!("seed {seed}: request {k} found no leader"));
            given.push(outcome);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(TICK * 10).await;
        let now = leader(&replicas, TTL * 3)
            .await
            .expect("a leader at the end");
        let scaler = replicas[now].scaler.clone();
        scaler.tick().await;
        scaler.settle().await;

        for outcome in &given {
            let (SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session }) =
                outcome;
            assert!(
                matches!(
                    scaler.session(*session),
                    Some(SessionStatus::Assigned { .. } | SessionStatus::Queued { .. })
                ),
                "seed {seed}: session {session:?} was lost"
            );
        }
        let twice = world.cloud.created_twice();
        assert!(twice.is_empty(), "seed {seed}: created twice: {twice:?}");
        let known: BTreeSet<_> = scaler.servers().iter().map(|s| s.id).collect();
        let vms: BTreeSet<_> = world
            .cloud
            .list("kasm-scale")
            .await
            .expect("list")
            .into_iter()
            .map(|v| v.owner.server_id)
            .collect();
        assert_eq!(vms, known, "seed {seed}: VMs and servers differ");
        for r in replicas {
            r.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_statement_fails_the_save_and_the_next_one_succeeds() {
    let Some(server) = common::server() else {
        return;
    };
    let (_, store) = common::fresh_store(&server).await;
    let first = sample_records(1, 4);
    store.save(&first).await.expect("save");
    // Another session holds the lease row's lock past the statement timeout (10 s) would be
    // slow: lock the version row instead and let our lock_timeout cut the save short.
    let mut blocker = store.pool().get().await.expect("connection");
    let tx = blocker.transaction().await.expect("begin");
    tx.execute("SET LOCAL lock_timeout = '0'", &[])
        .await
        .expect("set");
    tx.execute("SELECT version FROM kasm_scale_version FOR UPDATE", &[])
        .await
        .expect("lock the version row");
    let second = sample_records(2, 4);
    let shortly = PostgresStore::with_pool(store.pool().clone());
    shortly.load().await.expect("load");
    let refused = tokio::time::timeout(Duration::from_secs(60), shortly.save(&second))
        .await
        .expect("the save ends (lock_timeout)");
    let error = refused.expect_err("a save behind a held lock times out");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    tx.rollback().await.expect("release the lock");
    shortly.save(&second).await.expect("the next save succeeds");
    assert_eq!(
        PostgresStore::with_pool(store.pool().clone())
            .load()
            .await
            .expect("load"),
        Some(second)
    );
}
