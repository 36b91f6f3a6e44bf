//! `PostgresStore` next to `MemoryStore`, in the same run, on the PostgreSQL `.ci/run` starts
//! (`KASM_SCALE_PG_URL`):
//! - a tick of 100 pools × 100 servers (10,000 servers) with one session started and one
//!   ended before it (each saved), memory vs PostgreSQL (target: ≤ 2× or ≤ 10 ms added);
//! - a session request (assigned) and its end, each saved, as requests per second (target:
//!   ≥ 1,000 requests/s through the store).

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kasm_scale_core::config::{Config, Format, PostgresStoreConfig, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::load_str;
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::traits::StateStore;
use kasm_scale_postgres::PostgresStore;

fn config(pools: usize, minimum: u32) -> Config {
    let mut text = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10000
startup_script = "x"
boot_latency = { fixed = 0 }
"#
    .to_owned();
    for p in 0..pools {
        text += &format!(
            r#"
[[pools]]
server_pool_name = "pool-{p}"
[[pools.autoscale]]
autoscale_config_name = "cfg-{p}"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = {minimum}
max_simultaneous_sessions_per_server = 2
reusable = true
require_checkin = false
downscale_backoff = 86400
"#
        );
    }
    load_str(&text, Format::Toml).expect("bench config").config
}

/// A fresh database on the bench server.
async fn database() -> PostgresStoreConfig {
    let server = std::env::var("KASM_SCALE_PG_URL")
        .expect("KASM_SCALE_PG_URL: a PostgreSQL superuser URL (bash .ci/run starts one)");
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("reach PostgreSQL");
    tokio::spawn(connection);
    let name = format!("ks_bench_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    PostgresStoreConfig {
        url: format!("{base}/{name}"),
        password_env: None,
        password_file: None,
        tls_ca_file: None,
        pool_size: 4,
        lease_ttl: 15,
    }
}

/// A controller of `pools` pools holding `pools × minimum / 2` running servers on `store`.
async fn steady(pools: usize, minimum: u32, store: Arc<dyn StateStore>) -> Autoscaler {
    let config = config(pools, minimum);
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud)
        .store(store)
        .concurrency(64)
        .build()
        .expect("autoscaler");
    let want = pools * minimum as usize / 2;
    for _ in 0..50 {
        scaler.tick().await;
        scaler.settle().await;
        let running = scaler
            .servers()
            .iter()
            .filter(|s| s.state == ServerState::Running)
            .count();
        if running >= want {
            break;
        }
    }
    scaler.save().await;
    scaler
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One session starts in pool `i % pools` and the one before it ends: the records change.
async fn churn(
    scaler: &Autoscaler,
    pools: usize,
    i: &mut usize,
    last: &mut Option<SessionOutcome>,
) {
    let pool = format!("pool-{}", *i % pools);
    *i += 1;
    let outcome = scaler
        .request_session(&pool, &SessionRequest::default())
        .await
        .expect("request");
    if let Some(SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session }) =
        last.replace(outcome)
    {
        scaler.end_session(session).await.expect("end");
    }
}

fn tick(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store/tick_100_pools_x_100_servers");
    group.sample_size(20);
    for kind in ["memory", "postgres"] {
        let scaler = rt.block_on(async {
            let store: Arc<dyn StateStore> = match kind {
                "memory" => Arc::new(MemoryStore::default()),
                _ => Arc::new(
                    PostgresStore::connect(&database().await)
                        .await
                        .expect("store"),
                ),
            };
            steady(100, 200, store).await
        });
        assert!(scaler.servers().len() >= 10_000, "{kind}: 10,000 servers");
        let (mut i, mut last) = (0, None);
        // Timed: a session started and one ended (each saved) and the tick; not timed: the
        // background work the tick started (real time: the memory cloud's pacing only sleeps).
        group.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let began = std::time::Instant::now();
                        churn(&scaler, 100, &mut i, &mut last).await;
                        scaler.tick().await;
                        total += began.elapsed();
                        scaler.settle().await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

fn requests(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store/request_and_end_session");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    for kind in ["memory", "postgres"] {
        let scaler = rt.block_on(async {
            let store: Arc<dyn StateStore> = match kind {
                "memory" => Arc::new(MemoryStore::default()),
                _ => Arc::new(
                    PostgresStore::connect(&database().await)
                        .await
                        .expect("store"),
                ),
            };
            steady(10, 20, store).await
        });
        group.bench_function(kind, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let outcome = scaler
                        .request_session("pool-3", &SessionRequest::default())
                        .await
                        .expect("request");
                    let SessionOutcome::Assigned { session, .. } = outcome else {
                        panic!("a free slot is there: {outcome:?}")
                    };
                    scaler.end_session(session).await.expect("end");
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tick, requests);
criterion_main!(benches);
