//! `PostgresStore` against a real PostgreSQL: the shared `StateStore` contract, migrations
//! (from an empty database, re-run, concurrent, newer schema refused), fencing by epoch and by
//! version, and a row that cannot be read.

use crate::common;

use std::sync::Arc;

use kasm_scale_core::testkit::{sample_records, state_store_contract};
use kasm_scale_core::traits::{StateStore, StoreError};
use kasm_scale_postgres::{MIGRATIONS, PostgresStore, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let Some(server) = common::server() else {
        return;
    };
    let config = common::fresh_database(&server).await;
    let pool = connect(&config).await.unwrap_or_else(|e| panic!("{e}"));
    state_store_contract(|| {
        Arc::new(PostgresStore::with_pool(pool.clone())) as Arc<dyn StateStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_from_an_empty_database_even_when_replicas_start_together() {
    let Some(server) = common::server() else {
        return;
    };
    let config = common::fresh_database(&server).await;
    // Five replicas start at once: each migrates, under the advisory lock.
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let config = config.clone();
        starts.spawn(async move { connect(&config).await });
    }
    while let Some(started) = starts.join_next().await {
        started.expect("task").unwrap_or_else(|e| panic!("{e}"));
    }
    // And once more, later.
    let pool = connect(&config).await.unwrap_or_else(|e| panic!("{e}"));
    let client = pool.get().await.expect("connection");
    let applied: Vec<i32> = client
        .query(
            "SELECT version FROM kasm_scale_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read the migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(applied, known, "each migration is applied exactly once");
    let leases: i64 = client
        .query_one("SELECT count(*) FROM kasm_scale_lease", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(leases, 1, "one lease row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_kasm_scale_is_refused() {
    let Some(server) = common::server() else {
        return;
    };
    let config = common::fresh_database(&server).await;
    let pool = connect(&config).await.unwrap_or_else(|e| panic!("{e}"));
    pool.get()
        .await
        .expect("connection")
        .execute(
            "INSERT INTO kasm_scale_migrations (version, name) VALUES (9999, 'future')",
            &[],
        )
        .await
        .expect("insert");
    let error = connect(&config)
        .await
        .expect_err("a newer schema is refused");
    let text = error.to_string();
    assert!(
        text.contains("9999") && text.contains("upgrade kasm-scale"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_did_not_read_the_latest_state_is_refused_and_changes_nothing() {
    let Some(server) = common::server() else {
        return;
    };
    let (_, a) = common::fresh_store(&server).await;
    let b = Arc::new(PostgresStore::with_pool(a.pool().clone()));
    a.load().await.expect("load");
    b.load().await.expect("load");
    let first = sample_records(1, 6);
    a.save(&first).await.expect("the first writer saves");
    let second = sample_records(2, 6);
    let refused = b
        .save(&second)
        .await
        .expect_err("b saved over a's write blindly");
    assert!(matches!(refused, StoreError::Fenced(_)), "{refused}");
    assert!(refused.to_string().contains("another process"), "{refused}");
    let fresh = PostgresStore::with_pool(a.pool().clone());
    assert_eq!(
        fresh.load().await.expect("load"),
        Some(first),
        "a's write is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_read_fails_the_load_with_its_name() {
    let Some(server) = common::server() else {
        return;
    };
    let (_, store) = common::fresh_store(&server).await;
    store.save(&sample_records(3, 2)).await.expect("save");
    store
        .pool()
        .get()
        .await
        .expect("connection")
        .execute(
            "UPDATE kasm_scale_records SET value = '{\"id\": 5}' WHERE kind = 'server' \
             AND key = (SELECT min(key) FROM kasm_scale_records WHERE kind = 'server')",
            &[],
        )
        .await
        .expect("break a row");
    let error = PostgresStore::with_pool(store.pool().clone())
        .load()
        .await
        .expect_err("a broken row is not guessed at");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    assert!(error.to_string().contains("(server, "), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_writes_only_the_rows_that_changed() {
    let Some(server) = common::server() else {
        return;
    };
    let (_, store) = common::fresh_store(&server).await;
    let mut records = sample_records(4, 200);
    store.save(&records).await.expect("save");
    // Mark every row, then change one server: only that row may move.
    store
        .pool()
        .get()
        .await
        .expect("connection")
        .execute("UPDATE kasm_scale_records SET value = value", &[])
        .await
        .expect("touch");
    let before: Vec<(String, String, i64)> = xmins(&store).await;
    if let Some(s) = records.servers.values_mut().nth(7) {
        s.sessions += 1;
    }
    store.save(&records).await.expect("save one change");
    let after = xmins(&store).await;
    let moved: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.2 != a.2)
        .map(|(b, _)| (b.0.clone(), b.1.clone()))
        .collect();
    let changed = records.servers.values().nth(7).map(|s| s.id.to_string());
    assert_eq!(moved.len(), 1, "one row rewritten, got {moved:?}");
    assert_eq!(moved[0].0, "server");
    assert_eq!(Some(&moved[0].1), changed.as_ref());
}

/// Each row's writing transaction, in key order.
async fn xmins(store: &PostgresStore) -> Vec<(String, String, i64)> {
    store
        .pool()
        .get()
        .await
        .expect("connection")
        .query(
            "SELECT kind, key, xmin::text::bigint FROM kasm_scale_records ORDER BY kind, key",
            &[],
        )
        .await
        .expect("xmin")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}
