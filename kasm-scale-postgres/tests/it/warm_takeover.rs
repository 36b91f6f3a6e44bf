//! Failover with servers stopped: a controller keeps a warm tier on PostgreSQL and is killed
//! (dropped mid-life, nothing released or saved beyond what its ticks saved); a second
//! controller on the same database takes over. The stopped server stays stopped (neither taken
//! for dead nor rebuilt), and the new controller starts it for a request and seats it there
//! once its guest checked in again, with no second VM.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::testkit::Fixture;
use kasm_scale_core::token::TokenKeys;
use kasm_scale_postgres::PostgresStore;

fn config() -> kasm_scale_core::config::Config {
    Fixture::memory_pool("p")
        .max_instances(3)
        .boot_latency(0)
        .checkin_delay(0)
        .minimum_standby(0)
        .require_checkin(true)
        .provider_toml("start_latency = { fixed = 0 }")
        .autoscale_toml("warm_pool = { min_stopped = 1, max_stopped = 1 }")
        .config()
}

async fn controller(
    cloud: &Arc<MemoryCloud>,
    store: PostgresStore,
    keys: &TokenKeys,
) -> Autoscaler {
    let scaler = Autoscaler::builder(config())
        .provider(cloud.clone())
        .store(Arc::new(store))
        .tokens(keys.clone())
        .tick_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    scaler.start().await.expect("the stored state loads");
    scaler
}

/// Ticks until `done`, delivering the guests' check-ins, for at most 10 s.
async fn until(
    scaler: &Autoscaler,
    cloud: &MemoryCloud,
    done: impl Fn(&Autoscaler) -> bool,
) -> bool {
    for _ in 0..200 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(scaler, cloud).await;
        if done(scaler) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_taking_over_the_database_keeps_the_stopped_server_and_starts_it() {
    let Some(server) = common::server() else {
        return;
    };
    let (database, store) = common::fresh_store(&server).await;
    drop(store);
    let VmProviderConfig::Memory(mem) = config().vm_providers[0].clone() else {
        unreachable!()
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 11));
    let keys = TokenKeys::generate().unwrap();
    let first = controller(
        &cloud,
        PostgresStore::connect(&database).await.unwrap(),
        &keys,
    )
    .await;
    let stopped = |s: &Autoscaler| s.servers().iter().any(|x| x.state == ServerState::Stopped);
    assert!(
        until(&first, &cloud, stopped).await,
        "{:#?}",
        first.servers()
    );
    let warm = first.servers()[0].clone();
    assert_eq!(cloud.stopped_count(), 1);
    // Killed: no last save, no goodbye.
    drop(first);

    let second = controller(
        &cloud,
        PostgresStore::connect(&database).await.unwrap(),
        &keys,
    )
    .await;
    for _ in 0..5 {
        second.tick().await;
        second.settle().await;
    }
    let kept = second
        .server(warm.id)
        .expect("the stopped server is still known");
    assert_eq!(kept.state, ServerState::Stopped, "{kept:?}");
    assert_eq!(
        (cloud.vm_count(), cloud.stopped_count()),
        (1, 1),
        "its VM neither destroyed nor doubled"
    );
    let outcome = second
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Queued { .. }),
        "{outcome:?}"
    );
    let seated = until(&second, &cloud, |s| {
        s.server(warm.id)
            .is_some_and(|x| x.sessions == 1 && x.state == ServerState::Running)
    })
    .await;
    assert!(seated, "{:#?}", second.servers());
    assert!(
        second.server(warm.id).unwrap().woken_at.is_some(),
        "started from the tier, not rebuilt"
    );
    assert!(
        cloud.created_twice().is_empty(),
        "no server got a second VM"
    );
    assert!(
        cloud.vm_count() <= 2,
        "its VM and at most the tier's refill"
    );
}
