//! The in-memory cloud and directory pass the conformance suite, and the behaviour only they
//! have (latency, failures, throttling, capacity, child objects) works as configured.

use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::config::{Distribution, MemoryVmConfig};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory};
use kasm_scale_core::testkit::{directory_contract, vm_provider_contract};
use kasm_scale_core::traits::{
    BackendError, ComputerSpec, DirectoryService, Owner, VmProvider, VmSpec, VmState,
};

fn config() -> MemoryVmConfig {
    MemoryVmConfig {
        name: "mem".into(),
        max_instances: 100,
        startup_script: String::new(),
        startup_script_builtin: None,
        startup_script_variables: Default::default(),
        boot_latency: Distribution::Fixed(60.0),
        checkin_delay: Distribution::Uniform([10.0, 20.0]),
        create_failure_rate: 0.0,
        destroy_failure_rate: 0.0,
        never_checkin_rate: 0.0,
        rate_limit_per_second: None,
        capacity: None,
        outages: Vec::new(),
        price_per_hour: None,
        stopped_price_per_hour: None,
        alternatives: Vec::new(),
        capacity_skip_seconds: 180,
        start_latency: Distribution::Fixed(60.0),
        stop_failure_rate: 0.0,
        start_failure_rate: 0.0,
        api_concurrency: 8,
        api_rate_limit_per_second: None,
        api_call_timeout: 30,
    }
}

fn spec(n: u128) -> VmSpec {
    VmSpec {
        owner: Owner {
            owner_id: "o".into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
        hostname: format!("H{n}"),
        startup_script: Secret::new(format!("token-{n}")),
        offering: 0,
    }
}

#[tokio::test(start_paused = true)]
async fn memory_cloud_passes_the_conformance_suite() {
    vm_provider_contract(&MemoryCloud::new(config(), 1), "conformance").await;
    // Also with throttling and failures: the suite retries what is retryable.
    let mut flaky = config();
    flaky.rate_limit_per_second = Some(2.0);
    vm_provider_contract(&MemoryCloud::new(flaky, 2), "conformance").await;
}

#[tokio::test(start_paused = true)]
async fn memory_directory_passes_the_conformance_suite() {
    directory_contract(
        &MemoryDirectory::new("ad", "example.local", 1),
        "conformance",
        "OU=Kasm,DC=example,DC=local",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn boot_and_checkin_follow_virtual_time() {
    let cloud = MemoryCloud::new(config(), 7);
    let vm = cloud.create(&spec(1)).await.unwrap();
    assert_eq!(vm.state, VmState::Pending);
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(
        cloud.get(&vm.vm_id).await.unwrap().unwrap().state,
        VmState::Pending
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        cloud.get(&vm.vm_id).await.unwrap().unwrap().state,
        VmState::Running
    );
    assert!(cloud.due_checkins().is_empty());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let due = cloud.due_checkins();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].startup_script.expose(), "token-1");
    assert!(
        cloud.due_checkins().is_empty(),
        "each check-in is reported once"
    );
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_cloud() {
    let run = |seed| async move {
        let mut c = config();
        c.create_failure_rate = 0.3;
        c.never_checkin_rate = 0.3;
        c.boot_latency = Distribution::Normal {
            mean: 90.0,
            std_dev: 30.0,
        };
        let cloud = MemoryCloud::new(c, seed);
        let mut outcome = Vec::new();
        for n in 0..50 {
            outcome.push(
                cloud
                    .create(&spec(n))
                    .await
                    .map(|v| v.vm_id)
                    .map_err(|e| e.to_string()),
            );
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
        let checked: Vec<ServerId> = cloud
            .due_checkins()
            .into_iter()
            .map(|c| c.server_id)
            .collect();
        (outcome, checked)
    };
    let (a, b) = (run(5).await, run(5).await);
    assert_eq!(a, b);
    assert!(a.0.iter().any(Result::is_err) && a.0.iter().any(Result::is_ok));
    assert!(
        a.1.len() < a.0.iter().filter(|r| r.is_ok()).count(),
        "some VMs never check in"
    );
    assert_ne!(a, run(6).await, "another seed, another run");
}

#[tokio::test(start_paused = true)]
async fn throttling_and_capacity() {
    let mut c = config();
    c.rate_limit_per_second = Some(2.0);
    c.capacity = Some(3);
    let cloud = MemoryCloud::new(c, 1);
    cloud.create(&spec(1)).await.unwrap();
    cloud.create(&spec(2)).await.unwrap();
    let Err(BackendError::RateLimited {
        retry_after: Some(wait),
        ..
    }) = cloud.create(&spec(3)).await
    else {
        panic!("a third call in the same instant is throttled")
    };
    assert_eq!(wait, Duration::from_millis(500));
    tokio::time::sleep(wait).await;
    cloud.create(&spec(3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(
        cloud.create(&spec(4)).await,
        Err(BackendError::Capacity(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_outage_refuses_creates_and_keeps_the_vms() {
    let mut c = config();
    c.outages = vec![kasm_scale_core::config::Outage {
        start: 100.0,
        duration: 50.0,
    }];
    let cloud = MemoryCloud::new(c, 1);
    let vm = cloud.create(&spec(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(100)).await;
    let Err(e @ BackendError::Capacity(_)) = cloud.create(&spec(2)).await else {
        panic!("a create at the outage's start fails for capacity")
    };
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("insufficient capacity: "), "{e}");
    // The VM made before keeps running, and a create it already had is answered.
    assert_eq!(
        cloud.get(&vm.vm_id).await.unwrap().map(|v| v.state),
        Some(VmState::Running)
    );
    assert_eq!(cloud.create(&spec(1)).await.unwrap().vm_id, vm.vm_id);
    tokio::time::sleep(Duration::from_millis(49_999)).await;
    assert!(matches!(
        cloud.create(&spec(2)).await,
        Err(BackendError::Capacity(_))
    ));
    tokio::time::sleep(Duration::from_millis(1)).await;
    cloud.create(&spec(2)).await.unwrap();
    assert_eq!(cloud.vm_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn directory_children_need_recursive_delete() {
    let dir = MemoryDirectory::new("ad", "example.local", 3);
    let container = "OU=Kasm,DC=example,DC=local";
    let owner = spec(1).owner;
    let password = dir
        .create_computer(&ComputerSpec {
            name: "KASM-1".into(),
            container_dn: container.into(),
            owner,
        })
        .await
        .unwrap();
    assert!(dir.can_join(container, "kasm-1", password.expose()));
    assert!(dir.add_child(container, "KASM-1"));
    let err = dir
        .delete_computer(container, "KASM-1", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("notAllowedOnNonLeaf"), "{err}");
    dir.delete_computer(container, "KASM-1", true)
        .await
        .unwrap();
    assert_eq!(dir.record_count(), 0);
}

/// The shared controller scenario, on the in-memory cloud and directory (the provider crates
/// run it against their test servers).
#[tokio::test(start_paused = true)]
async fn the_controller_scenario_runs_on_the_memory_backends() {
    use kasm_scale_core::config::VmProviderConfig;
    use kasm_scale_core::controller::Autoscaler;
    use kasm_scale_core::testkit::{Scenario, scenario_config};
    use std::sync::Arc;

    let config = scenario_config(
        r#"
[[ldap_configs]]
name = "ad"
url = "ldaps://dc1.example.local"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "pw"

[[vm_providers]]
provider = "memory"
name = "vm"
max_instances = 10
startup_script = "{ad_join_credential} {checkin_jwt}"
boot_latency = { fixed = 0 }
checkin_delay = { fixed = 0 }
"#,
        r#"
ad_create_machine_record = true
ldap_id = "ad"
ad_computer_container_dn = "OU=Kasm,DC=example,DC=local"
"#,
    );
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 11));
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 11));
    let scaler = Autoscaler::builder(config)
        .owner_id("scenario")
        .provider(cloud.clone())
        .directory(directory.clone())
        .build()
        .unwrap();
    Scenario {
        scaler: &scaler,
        owner_id: "scenario",
        provider: cloud.as_ref(),
        directory: Some(directory.as_ref()),
        guests: cloud.as_ref(),
    }
    .run()
    .await;
    assert_eq!(cloud.vm_count(), 0);
}
