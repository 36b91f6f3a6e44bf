//! A fresh database per test on the PostgreSQL server `.ci/run` starts (`KASM_SCALE_PG_URL`,
//! a superuser URL on loopback; `KASM_SCALE_SKIP_PG=1` skips outside CI, and says so).

#![allow(dead_code)]

pub mod proxy;
pub mod replicas;

use std::sync::Arc;

use kasm_scale_core::config::PostgresStoreConfig;
use kasm_scale_core::testkit::test_server;
use kasm_scale_postgres::PostgresStore;

/// The server's URL, or `None` when skipped (outside CI, with the opt-out).
pub fn server() -> Option<String> {
    test_server(
        "KASM_SCALE_PG_URL",
        "KASM_SCALE_SKIP_PG",
        "the PostgreSQL store",
    )
}

/// A new, empty database on the server: its store settings.
pub async fn fresh_database(server: &str) -> PostgresStoreConfig {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server}: {e}"));
    tokio::spawn(connection);
    let name = format!("ks_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    PostgresStoreConfig {
        url: format!("{base}/{name}"),
        password_env: None,
        password_file: None,
        tls_ca_file: None,
        pool_size: 4,
        lease_ttl: 15,
    }
}

/// A store on a fresh database (migrated).
pub async fn fresh_store(server: &str) -> (PostgresStoreConfig, Arc<PostgresStore>) {
    let config = fresh_database(server).await;
    let store = PostgresStore::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (config, Arc::new(store))
}
