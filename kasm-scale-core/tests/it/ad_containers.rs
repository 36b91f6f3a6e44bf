//! Computer records live in a configured container (default `CN=Computers,<search_base>`), and
//! the controller looks for its records where it makes them.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::engine::{ServerId, ServerState};
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, deliver_checkins};
use kasm_scale_core::traits::{ComputerSpec, DirectoryService, Owner};

use crate::fixture::Fixture;

const EPOCH: &str = "2026-11-30T12:00:00Z";
const DEFAULT_CONTAINER: &str = "CN=Computers,DC=example,DC=local";

fn config(container: &str) -> Config {
    Fixture::memory_pool("p")
        .startup_script("{ad_join_credential} {checkin_jwt}")
        .boot_latency(60)
        .checkin_delay(30)
        .active_directory()
        .autoscale_without("ad_computer_container_dn")
        .minimum_standby(2)
        .require_checkin(true)
        .autoscale_toml(container)
        .config()
}

fn cloud_of(config: &Config) -> Arc<MemoryCloud> {
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    Arc::new(MemoryCloud::new(m, 1))
}

async fn run(scaler: &Autoscaler, cloud: &MemoryCloud, steps: usize) {
    for _ in 0..steps {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(scaler, cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

fn stray(owner_id: &str, container: &str, name: &str, n: u128) -> ComputerSpec {
    ComputerSpec {
        name: name.into(),
        container_dn: container.into(),
        owner: Owner {
            owner_id: owner_id.into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
    }
}

#[test]
fn an_unset_container_is_the_computers_container_of_the_search_base() {
    let c = config("");
    let asc = &c.pools[0].autoscale[0];
    assert_eq!(asc.ad_computer_container_dn, None);
    assert_eq!(
        c.computer_container(asc).as_deref(),
        Some(DEFAULT_CONTAINER)
    );
    let c = config(r#"ad_computer_container_dn = "OU=Kasm,DC=example,DC=local""#);
    assert_eq!(
        c.computer_container(&c.pools[0].autoscale[0]).as_deref(),
        Some("OU=Kasm,DC=example,DC=local")
    );
    let mut c = config("");
    c.pools[0].autoscale[0].ldap_id = Some("nowhere".into());
    assert_eq!(c.computer_container(&c.pools[0].autoscale[0]), None);
}

#[tokio::test(start_paused = true)]
async fn without_a_container_records_are_made_in_the_default_one() {
    let config = config("");
    let cloud = cloud_of(&config);
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    run(&scaler, &cloud, 12).await;
    let servers = scaler.servers();
    assert_eq!(
        servers
            .iter()
            .filter(|s| s.state == ServerState::Running)
            .count(),
        2,
        "{servers:?}"
    );
    let records = directory
        .list_computers("kasm-scale", &[DEFAULT_CONTAINER.to_owned()])
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    for s in &servers {
        assert_eq!(
            s.ad.as_ref().map(|a| a.container_dn.as_str()),
            Some(DEFAULT_CONTAINER)
        );
        assert!(
            records
                .iter()
                .any(|r| r.dn == format!("CN={},{DEFAULT_CONTAINER}", s.hostname)),
            "{records:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn reconcile_removes_stray_records_where_records_are_made_and_nowhere_else() {
    let config = config(r#"ad_computer_container_dn = "OU=Kasm,DC=example,DC=local""#);
    let cloud = cloud_of(&config);
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 1));
    // Records with our owner marker that belong to no server: one where this configuration
    // makes records, one in a container it has nothing to do with (another installation's,
    // reusing the owner id).
    for (container, name, n) in [
        ("OU=Kasm,DC=example,DC=local", "STRAY-HERE", 1),
        ("OU=Elsewhere,DC=example,DC=local", "STRAY-AWAY", 2),
    ] {
        directory
            .create_computer(&stray("kasm-scale", container, name, n))
            .await
            .unwrap();
    }
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .reconcile_every(2)
        .orphan_grace(Duration::from_secs(30))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    run(&scaler, &cloud, 20).await;
    let here = directory
        .list_computers("kasm-scale", &["OU=Kasm,DC=example,DC=local".to_owned()])
        .await
        .unwrap();
    assert!(here.iter().all(|r| r.name != "STRAY-HERE"), "{here:?}");
    assert_eq!(here.len(), 2, "the servers' records stay: {here:?}");
    let away = directory
        .list_computers(
            "kasm-scale",
            &["OU=Elsewhere,DC=example,DC=local".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(away.len(), 1, "a container not ours is not touched");
}
