//! Restart on the same database: a new controller finds the sessions, the queue and the used
//! single-use servers the last one left. It seats the waiting request on a fresh server, never
//! destroys the busy one, and never hands the used single-use server out again.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::{Autoscaler, SessionOutcome, SessionStatus};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_postgres::PostgresStore;

use kasm_scale_core::testkit::Fixture;

fn config() -> kasm_scale_core::config::Config {
    Fixture::memory_pool("p")
        .max_instances(3)
        .boot_latency(0)
        .minimum_standby(2)
        .require_checkin(false)
        .autoscale("aggressive_scaling", false)
        .config()
}

async fn controller(cloud: &Arc<MemoryCloud>, store: PostgresStore) -> Autoscaler {
    let config = config();
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .store(Arc::new(store))
        .tick_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    scaler.start().await.expect("the stored state loads");
    scaler
}

async fn steps(scaler: &Autoscaler, n: usize) {
    for _ in 0..n {
        scaler.tick().await;
        scaler.settle().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn session(o: &SessionOutcome) -> kasm_scale_core::controller::SessionId {
    match o {
        SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session } => *session,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_seats_the_queue_keeps_busy_servers_and_never_reissues_used_ones() {
    let Some(server) = common::server() else {
        return;
    };
    let (database, store) = common::fresh_store(&server).await;
    drop(store);
    let VmProviderConfig::Memory(mem) = config().vm_providers[0].clone() else {
        panic!("memory provider")
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 1));

    let first = controller(&cloud, PostgresStore::connect(&database).await.unwrap()).await;
    steps(&first, 3).await;
    let request = SessionRequest::default();
    let a = first.request_session("p", &request).await.unwrap();
    let b = first.request_session("p", &request).await.unwrap();
    let (
        SessionOutcome::Assigned { server: used, .. },
        SessionOutcome::Assigned { server: busy, .. },
    ) = (a, b)
    else {
        panic!("two ready servers take the first two sessions: {a:?} {b:?}")
    };
    let waiting = first.request_session("p", &request).await.unwrap();
    assert!(
        matches!(waiting, SessionOutcome::Queued { .. }),
        "{waiting:?}"
    );
    first.end_session(session(&a)).await.unwrap();
    // Dies before its next tick: the used single-use server is still there.
    drop(first);

    let second = controller(&cloud, PostgresStore::connect(&database).await.unwrap()).await;
    assert_eq!(
        second.session(session(&b)),
        Some(SessionStatus::Assigned { server: busy }),
        "the busy server's session is known"
    );
    assert!(
        matches!(
            second.session(session(&waiting)),
            Some(SessionStatus::Queued { .. })
        ),
        "the waiting request is known"
    );
    steps(&second, 8).await;
    let servers = second.servers();
    assert!(
        servers
            .iter()
            .any(|s| s.id == busy && s.sessions == 1 && s.state == ServerState::Running),
        "the busy server stays with its session"
    );
    assert!(
        !servers.iter().any(|s| s.id == used),
        "the used single-use server is destroyed"
    );
    match second.session(session(&waiting)) {
        Some(SessionStatus::Assigned { server }) => {
            assert_ne!(
                server, used,
                "a used single-use server was handed out again"
            );
            assert_ne!(server, busy, "a full server took a second session");
        }
        other => panic!("the waiting request was not seated: {other:?}"),
    }
}
