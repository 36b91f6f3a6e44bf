//! Host name patterns in use: lowest free number first, past the names the directory holds.

use std::sync::Arc;

use kasm_scale_core::controller::{Autoscaler, DrainRequest, DrainTarget};
use kasm_scale_core::engine::{DrainThen, ServerId};
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, deliver_checkins};
use kasm_scale_core::testkit::AD_CONTAINER;
use kasm_scale_core::traits::{ComputerSpec, DirectoryService, Owner};

use super::{fixture, memory};

fn names(scaler: &Autoscaler) -> Vec<String> {
    let mut names: Vec<String> = scaler.servers().into_iter().map(|s| s.hostname).collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn names_count_up_from_the_lowest_free_one_past_a_record_someone_else_holds() {
    let config = fixture()
        .active_directory()
        .minimum_standby(3)
        .autoscale("server_hostname_pattern", "VDI-{n:3}")
        .config();
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 31));
    // A computer named by hand, owned by nobody we know.
    let foreign = Owner {
        owner_id: "someone-else".into(),
        pool: "x".into(),
        config: "x".into(),
        server_id: ServerId(uuid::Uuid::from_u128(99)),
    };
    directory
        .create_computer(&ComputerSpec {
            name: "VDI-002".into(),
            container_dn: AD_CONTAINER.into(),
            owner: foreign,
        })
        .await
        .unwrap();
    let cloud = Arc::new(MemoryCloud::new(memory(&config), 31));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .seed(31)
        .build()
        .unwrap();
    for _ in 0..40 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
    assert_eq!(names(&scaler), ["VDI-001", "VDI-003", "VDI-004"]);
    // The hand-made record is untouched.
    assert_eq!(directory.record_count(), 4);
    // A destroyed server's number is the next one given.
    let first = scaler
        .servers()
        .into_iter()
        .find(|s| s.hostname == "VDI-001")
        .unwrap();
    scaler
        .drain(DrainRequest {
            target: DrainTarget::Server(first.id),
            by: "test".into(),
            reason: "renumbering".into(),
            until: None,
            then: DrainThen::Destroy,
        })
        .await
        .unwrap();
    for _ in 0..20 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
    assert!(scaler.server(first.id).is_none(), "the drained server went");
    // Its replacement was made while it was still being destroyed: VDI-001 was in use.
    assert_eq!(names(&scaler), ["VDI-003", "VDI-004", "VDI-005"]);
    // Now it is free again: the next server takes it.
    let mut more = (*scaler.config()).clone();
    more.pools[0].autoscale[0].minimum_pool_standby_sessions = 4;
    scaler.reconfigure(more).await.unwrap();
    for _ in 0..20 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
    assert_eq!(names(&scaler), ["VDI-001", "VDI-003", "VDI-004", "VDI-005"]);
}
