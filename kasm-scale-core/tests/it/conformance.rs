//! The in-memory cloud and directory pass the conformance suite, and the behaviour only they
//! have (latency, failures, throttling, capacity, child objects) works as configured.

use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::config::{Distribution, MemoryAlternative, MemoryVmConfig, Outage};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, STOP_LATENCY};
use kasm_scale_core::testkit::{
    directory_contract, vm_provider_contract, vm_provider_resize_contract,
    vm_provider_stop_start_contract,
};
use kasm_scale_core::traits::{
    BackendError, ComputerSpec, DirectoryService, Owner, StopMode, VmProvider, VmSpec, VmState,
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
async fn memory_cloud_passes_the_stop_start_conformance_suite() {
    let limit = Duration::from_secs(600);
    let cloud = MemoryCloud::new(config(), 1);
    assert!(cloud.capabilities().stop_start);
    vm_provider_stop_start_contract(&cloud, "power", limit).await;
    // With throttling and failing stops and starts: the suite retries what is retryable.
    let mut flaky = config();
    flaky.rate_limit_per_second = Some(2.0);
    flaky.stop_failure_rate = 0.5;
    flaky.start_failure_rate = 0.5;
    flaky.start_latency = Distribution::Uniform([60.0, 120.0]);
    vm_provider_stop_start_contract(&MemoryCloud::new(flaky, 2), "power", limit).await;
}

#[tokio::test(start_paused = true)]
async fn memory_cloud_moves_a_stopped_vm_to_another_offering() {
    let mut c = config();
    c.alternatives = vec![MemoryAlternative {
        name: Some("larger".into()),
        capacity: None,
        outages: Vec::new(),
        price_per_hour: None,
        stopped_price_per_hour: None,
    }];
    let cloud = MemoryCloud::new(c.clone(), 1);
    let vm = vm_provider_resize_contract(&cloud, "resize", 1, Duration::from_secs(600)).await;
    assert_eq!(
        cloud.offering_of(&vm),
        Some(1),
        "it runs on the offering it was moved to"
    );
    let missing = cloud.resize(&vm, 2).await;
    assert!(
        matches!(missing, Err(BackendError::InvalidRequest(ref m)) if m.contains("offering 2")),
        "{missing:?}"
    );
    // Thrown by the rate limit, as every call: the suite's retries cover it.
    c.rate_limit_per_second = Some(2.0);
    vm_provider_resize_contract(
        &MemoryCloud::new(c, 2),
        "resize",
        1,
        Duration::from_secs(600),
    )
    .await;
}

/// Stop or start through the provider's API (the cloud's own `stop` is a guest shutdown).
async fn stop(cloud: &MemoryCloud, vm_id: &str) -> Result<(), BackendError> {
    VmProvider::stop(cloud, vm_id, StopMode::Stop).await
}

async fn state(cloud: &MemoryCloud, vm_id: &str) -> Option<VmState> {
    cloud.get(vm_id).await.unwrap().map(|v| v.state)
}

fn on(offering: u32, n: u128) -> VmSpec {
    VmSpec {
        offering,
        ..spec(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_started_vm_boots_for_the_start_latency_and_its_guest_checks_in_again() {
    let mut c = config();
    c.start_latency = Distribution::Fixed(90.0);
    c.checkin_delay = Distribution::Fixed(15.0);
    let cloud = MemoryCloud::new(c, 7);
    let vm = cloud.create(&spec(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert_eq!(cloud.due_checkins().len(), 1, "the first boot's check-in");
    stop(&cloud, &vm.vm_id).await.unwrap();
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Stopping));
    assert_eq!(
        cloud.next_event(),
        Some(tokio::time::Instant::now() + STOP_LATENCY)
    );
    tokio::time::sleep(STOP_LATENCY).await;
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Stopped));
    assert_eq!(cloud.stopped_count(), 1);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(cloud.due_checkins().is_empty(), "a stopped guest is silent");

    cloud.start(&vm.vm_id).await.unwrap();
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Pending));
    tokio::time::sleep(Duration::from_millis(89_999)).await;
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Pending));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Running));
    assert!(
        cloud.due_checkins().is_empty(),
        "not before its check-in delay"
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    let again = cloud.due_checkins();
    assert_eq!(again.len(), 1, "it checks in again after the start");
    assert_eq!(again[0].vm_id, vm.vm_id);
    assert_eq!(again[0].startup_script.expose(), "token-1");
    assert!(cloud.due_checkins().is_empty(), "once per boot");
    assert_eq!(cloud.stopped_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_guest_that_never_checks_in_does_not_after_a_start_either() {
    let mut c = config();
    c.never_checkin_rate = 1.0;
    let cloud = MemoryCloud::new(c, 7);
    let vm = cloud.create(&spec(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    stop(&cloud, &vm.vm_id).await.unwrap();
    tokio::time::sleep(STOP_LATENCY).await;
    cloud.start(&vm.vm_id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Running));
    assert!(cloud.due_checkins().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stop_and_start_fail_transiently_at_their_rates() {
    let mut c = config();
    c.stop_failure_rate = 1.0;
    c.start_failure_rate = 1.0;
    let cloud = MemoryCloud::new(c.clone(), 7);
    let vm = cloud.create(&spec(1)).await.unwrap();
    let e = stop(&cloud, &vm.vm_id).await.unwrap_err();
    assert!(
        matches!(e, BackendError::Transient(_)) && e.is_retryable(),
        "{e}"
    );
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Pending));
    assert!(cloud.due_checkins().is_empty());
    cloud.stop(&vm.vm_id); // its guest shuts down
    let e = cloud.start(&vm.vm_id).await.unwrap_err();
    assert!(matches!(e, BackendError::Transient(_)), "{e}");
    assert_eq!(state(&cloud, &vm.vm_id).await, Some(VmState::Stopped));
    // A stop of a stopped VM and a start of a running one change nothing and do not fail.
    stop(&cloud, &vm.vm_id).await.unwrap();
    // Half the calls fail, each drawn on its own.
    c.stop_failure_rate = 0.5;
    c.start_failure_rate = 0.5;
    let cloud = MemoryCloud::new(c, 8);
    let vm = cloud.create(&spec(1)).await.unwrap();
    let (mut stops, mut starts) = (0, 0);
    for _ in 0..200 {
        if stop(&cloud, &vm.vm_id).await.is_err() {
            stops += 1;
            continue;
        }
        tokio::time::sleep(STOP_LATENCY).await;
        while cloud.start(&vm.vm_id).await.is_err() {
            starts += 1;
        }
        cloud.start(&vm.vm_id).await.unwrap();
    }
    assert!((60..=140).contains(&stops), "{stops} of 200 stops failed");
    assert!(starts > 40, "{starts} starts failed");
}

#[tokio::test(start_paused = true)]
async fn a_start_of_a_vm_that_is_still_stopping_is_retryable_and_of_a_gone_one_not_found() {
    let cloud = MemoryCloud::new(config(), 7);
    let vm = cloud.create(&spec(1)).await.unwrap();
    stop(&cloud, &vm.vm_id).await.unwrap();
    let e = cloud.start(&vm.vm_id).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("still stopping"), "{e}");
    cloud.destroy(&vm.vm_id).await.unwrap();
    assert!(matches!(
        cloud.start(&vm.vm_id).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        stop(&cloud, &vm.vm_id).await,
        Err(BackendError::NotFound(_))
    ));
}

fn two_offerings() -> MemoryVmConfig {
    let mut c = config();
    c.capacity = Some(1);
    c.alternatives = vec![MemoryAlternative {
        name: Some("zone-b".into()),
        capacity: Some(1),
        outages: Vec::new(),
        price_per_hour: None,
        stopped_price_per_hour: None,
    }];
    c
}

#[tokio::test(start_paused = true)]
async fn each_offering_has_its_own_capacity_and_a_stopped_vm_holds_none() {
    let cloud = MemoryCloud::new(two_offerings(), 1);
    let a = cloud.create(&on(0, 1)).await.unwrap();
    let e = cloud.create(&on(0, 2)).await.unwrap_err();
    assert!(matches!(e, BackendError::Capacity(_)), "{e}");
    assert!(e.to_string().contains("`primary`"), "{e}");
    let b = cloud.create(&on(1, 3)).await.unwrap();
    assert_eq!(cloud.offering_of(&b.vm_id), Some(1));
    assert_eq!(cloud.offering_of(&a.vm_id), Some(0));
    let e = cloud.create(&on(1, 4)).await.unwrap_err();
    assert!(e.to_string().contains("`zone-b`"), "{e}");
    let e = cloud.create(&on(2, 5)).await.unwrap_err();
    assert!(matches!(e, BackendError::InvalidRequest(_)), "{e}");
    assert!(e.to_string().contains("offering 2"), "{e}");

    // A stopping VM still holds its place; a stopped one does not.
    stop(&cloud, &a.vm_id).await.unwrap();
    assert!(matches!(
        cloud.create(&on(0, 2)).await,
        Err(BackendError::Capacity(_))
    ));
    tokio::time::sleep(STOP_LATENCY).await;
    let c = cloud.create(&on(0, 2)).await.unwrap();
    // Its start now finds the offering full, as an EC2 start can.
    let e = cloud.start(&a.vm_id).await.unwrap_err();
    assert!(matches!(e, BackendError::Capacity(_)), "{e}");
    assert_eq!(state(&cloud, &a.vm_id).await, Some(VmState::Stopped));
    cloud.destroy(&c.vm_id).await.unwrap();
    cloud.start(&a.vm_id).await.unwrap();
    assert_eq!(state(&cloud, &a.vm_id).await, Some(VmState::Pending));
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_one_offering_refuses_its_creates_and_starts_only() {
    let mut c = two_offerings();
    c.capacity = None;
    c.alternatives[0].capacity = None;
    c.alternatives[0].outages = vec![Outage {
        start: 100.0,
        duration: 50.0,
    }];
    let cloud = MemoryCloud::new(c, 1);
    let b = cloud.create(&on(1, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(90)).await;
    stop(&cloud, &b.vm_id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await; // 100 s: the outage
    for result in [
        cloud.create(&on(1, 2)).await.map(|_| ()),
        cloud.start(&b.vm_id).await,
    ] {
        let e = result.unwrap_err();
        assert!(matches!(e, BackendError::Capacity(_)), "{e}");
        assert!(e.to_string().contains("`zone-b`") && e.to_string().contains("outage"));
    }
    cloud.create(&on(0, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(50)).await;
    cloud.start(&b.vm_id).await.unwrap();
    cloud.create(&on(1, 2)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn usage_counts_running_and_stopped_time_per_offering_and_prices_it() {
    let mut c = two_offerings();
    c.capacity = None;
    c.alternatives[0].capacity = None;
    c.price_per_hour = Some(1.0);
    c.stopped_price_per_hour = Some(0.1);
    c.alternatives[0].price_per_hour = Some(3.0);
    let hour = Duration::from_secs(3600);
    let cloud = MemoryCloud::new(c, 1);
    let a = cloud.create(&on(0, 1)).await.unwrap();
    tokio::time::sleep(hour - STOP_LATENCY).await;
    // Running (pending, then running, then stopping) 1 h, then stopped 2 h.
    stop(&cloud, &a.vm_id).await.unwrap();
    tokio::time::sleep(STOP_LATENCY + 2 * hour).await;
    let u = cloud.usage();
    assert_eq!(u.offerings[&0].running, hour);
    assert_eq!(u.offerings[&0].stopped, 2 * hour);
    let cost = cloud.cost().unwrap();
    assert!((cost.running - 1.0).abs() < 1e-9, "{cost:?}");
    assert!((cost.stopped - 0.2).abs() < 1e-9, "{cost:?}");
    assert!((cost.total() - 1.2).abs() < 1e-9);

    // A started VM runs again; a destroyed one costs nothing more.
    cloud.start(&a.vm_id).await.unwrap();
    let b = cloud.create(&on(1, 2)).await.unwrap();
    tokio::time::sleep(hour / 2).await;
    cloud.destroy(&a.vm_id).await.unwrap();
    cloud.destroy(&b.vm_id).await.unwrap();
    tokio::time::sleep(10 * hour).await;
    let u = cloud.usage();
    assert_eq!(u.offerings[&0].running, hour + hour / 2);
    assert_eq!(u.offerings[&0].stopped, 2 * hour);
    assert_eq!(u.offerings[&1].running, hour / 2);
    assert_eq!(u.stopped(), 2 * hour);
    // Offering 1's stopped price is the config's; it has no stopped time anyway.
    let cost = cloud.cost().unwrap();
    assert!((cost.total() - (1.5 + 0.2 + 1.5)).abs() < 1e-9, "{cost:?}");
    // The same usage without prices: no cost, not 0.
    let unpriced = MemoryCloud::new(config(), 1);
    unpriced.create(&spec(1)).await.unwrap();
    tokio::time::sleep(hour).await;
    assert_eq!(unpriced.cost(), None);
    assert_eq!(unpriced.usage().running(), hour);
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
