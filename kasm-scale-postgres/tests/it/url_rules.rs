//! The URL's TLS rule, through the public API and against a real server: a connection goes to
//! `hostaddr` when it is given (the host name is then only the name TLS checks), so the rule
//! judges the address, in every form of URL.

use crate::common;

use kasm_scale_core::config::PostgresStoreConfig;
use kasm_scale_postgres::{ConnectError, PostgresStore};

fn settings(url: &str) -> PostgresStoreConfig {
    PostgresStoreConfig {
        url: url.to_owned(),
        password_env: None,
        password_file: None,
        tls_ca_file: None,
        pool_size: 1,
        lease_ttl: 15,
    }
}

#[tokio::test]
async fn an_address_off_this_machine_is_refused_before_any_connection() {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): nothing answers there.
    for url in [
        "host=localhost hostaddr=192.0.2.1 user=kasm dbname=kasm",
        "hostaddr=192.0.2.1 user=kasm dbname=kasm",
        "postgres://kasm@localhost/kasm?hostaddr=192.0.2.1",
        "host=localhost,127.0.0.1 hostaddr=127.0.0.1,192.0.2.1 user=kasm",
        "postgres://kasm@localhost,192.0.2.1/kasm",
    ] {
        let started = std::time::Instant::now();
        let e = PostgresStore::connect(&settings(url)).await.expect_err(url);
        assert!(matches!(e, ConnectError::Config(_)), "{url}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("`192.0.2.1`") && text.contains("is not loopback"),
            "{url}: {text}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{url}: refused without trying to connect"
        );
    }
}

#[tokio::test]
async fn a_host_name_with_a_loopback_hostaddr_connects_to_the_address() {
    let Some(server) = common::server() else {
        return;
    };
    let db = common::fresh_database(&server).await;
    let pg: tokio_postgres::Config = db.url.parse().expect("the test database's URL");
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let user = pg.get_user().expect("a user");
    let dbname = pg.get_dbname().expect("a database");
    // A name no resolver knows (RFC 6761 `.invalid`): the connection works only because it goes
    // to the hostaddr, which is what the rule judged.
    for url in [
        format!(
            "host=kasm-scale.invalid hostaddr=127.0.0.1 port={port} user={user} dbname={dbname}"
        ),
        format!("postgres://{user}@kasm-scale.invalid:{port}/{dbname}?hostaddr=127.0.0.1"),
    ] {
        let store = PostgresStore::connect(&PostgresStoreConfig {
            url: url.clone(),
            ..db.clone()
        })
        .await
        .unwrap_or_else(|e| panic!("{url}: plain TCP to loopback: {e}"));
        let client = store.pool().get().await.expect("a connection");
        let row = client
            .query_one("SELECT inet_server_addr()::text", &[])
            .await
            .expect("a query");
        let addr: String = row.get(0);
        assert_eq!(addr, "127.0.0.1/32", "{url}");
    }
}
