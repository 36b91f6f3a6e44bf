//! Stop (deallocate) and start on the ARM test server: the conformance suite, both followed as
//! long-running operations, allocation failures of creates and starts as `Capacity`, the
//! offerings' sizes and zones, and the fallback create that replaces the failed VM another
//! offering left.

use crate::support;

use std::time::Duration;

use hyper::Method;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::{vm_provider_stop_start_contract, vm_spec as spec};
use kasm_scale_core::traits::{BackendError, StopMode, VmProvider, VmState};
use serde_json::Value;
use support::resources::{Fault, Shortage, ShortageCode};
use support::{ArmServer, config_toml};

/// A config of resource group `kasm` with zone 1 and two alternatives: `Standard_D4s_v5` in
/// zone 2, and the config's size in zone 3.
const OFFERINGS: &str = r#"azure_resource_group = "kasm"
azure_zone = "1"
[[alternatives]]
azure_vm_size = "Standard_D4s_v5"
azure_zone = "2"
[[alternatives]]
azure_zone = "3"
"#;

fn provider_with(server: &ArmServer, extra: &str) -> AzureProvider {
    let config: AzureVmConfig = toml::from_str(&config_toml(&server.url, extra)).unwrap();
    AzureProvider::builder(config).build().unwrap()
}

fn provider(server: &ArmServer) -> AzureProvider {
    provider_with(server, "azure_resource_group = \"kasm\"")
}

/// Quick polls: `Retry-After: 0` (the provider then polls every 50 ms).
fn fast_polls(server: &ArmServer) {
    server.state.lock().unwrap().store.retry_after = 0;
}

/// The requests from the `from`-th on: (method, lower-case path, body).
fn requests_since(server: &ArmServer, from: usize) -> Vec<(Method, String, Value)> {
    let state = server.state.lock().unwrap();
    state.store.requests[from..]
        .iter()
        .map(|(m, p, _, b)| (m.clone(), p.to_ascii_lowercase(), b.clone()))
        .collect()
}

fn request_count(server: &ArmServer) -> usize {
    server.state.lock().unwrap().store.requests.len()
}

/// The stored VM resource by id.
fn stored(server: &ArmServer, vm_id: &str) -> Option<Value> {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .get(&vm_id.to_ascii_lowercase())
        .cloned()
}

fn vms_stored(server: &ArmServer) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == "microsoft.compute/virtualmachines")
        .count()
}

#[tokio::test]
async fn the_stop_start_contract_holds_on_the_arm_test_server() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let p = provider(&server);
    let caps = p.capabilities();
    assert!(caps.stop_start && !caps.hibernate, "{caps:?}");
    vm_provider_stop_start_contract(&p, "azure-power-contract", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn deallocate_and_start_are_followed_as_long_running_operations() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    server.state.lock().unwrap().store.power_lro_delay = Some(Duration::from_millis(600));
    let p = provider(&server);
    let vm = p.create(&spec("azure-lro", 1, "x")).await.unwrap();
    let id = vm.vm_id.clone();
    let lower = id.to_ascii_lowercase();

    for (action, during, after, power) in [
        (
            "deallocate",
            VmState::Stopping,
            VmState::Stopped,
            "PowerState/deallocated",
        ),
        (
            "start",
            VmState::Pending,
            VmState::Running,
            "PowerState/running",
        ),
    ] {
        let from = request_count(&server);
        let (done, mid) = tokio::join!(
            async {
                match action {
                    "deallocate" => p.stop(&id, StopMode::Stop).await,
                    _ => p.start(&id).await,
                }
            },
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                p.get(&id).await
            }
        );
        done.unwrap();
        assert_eq!(
            mid.unwrap().unwrap().state,
            during,
            "{action}: while it runs"
        );
        // Returned only once the operation ended: the VM is there already.
        assert_eq!(p.get(&id).await.unwrap().unwrap().state, after, "{action}");
        assert_eq!(
            server.state.lock().unwrap().store.power[&lower],
            power,
            "{action}"
        );
        let seen = requests_since(&server, from);
        let posts: Vec<&String> = seen
            .iter()
            .filter(|(m, _, _)| m == Method::POST)
            .map(|(_, p, _)| p)
            .collect();
        assert_eq!(posts, [&format!("{lower}/{action}")], "{action}: one POST");
        let polls = seen
            .iter()
            .filter(|(m, p, _)| m == Method::GET && p.contains("/operations/"))
            .count();
        assert!(
            polls >= 3,
            "{action}: the operation was polled to its end ({polls} polls)"
        );
    }

    // Hibernation is not offered: refused, nothing sent.
    let from = request_count(&server);
    let refused = p.stop(&id, StopMode::Hibernate).await;
    assert!(
        matches!(&refused, Err(BackendError::InvalidRequest(m)) if m.contains("hibernate")),
        "{refused:?}"
    );
    assert_eq!(
        request_count(&server),
        from,
        "nothing sent for a hibernation"
    );
}

#[tokio::test]
async fn allocation_failures_of_a_create_are_capacity_and_leave_no_vm() {
    for code in [
        ShortageCode::SkuNotAvailable,
        ShortageCode::AllocationFailed,
        ShortageCode::ZonalAllocationFailed,
    ] {
        let server = ArmServer::start().await;
        fast_polls(&server);
        let p = provider(&server);
        server.state.lock().unwrap().store.shortages =
            vec![Shortage::of_size("Standard_D2s_v5", code)];
        let result = p.create(&spec("azure-short", 1, "x")).await;
        assert!(
            matches!(&result, Err(BackendError::Capacity(m)) if m.contains(code.as_str())),
            "{code:?}: {result:?}"
        );
        assert_eq!(
            vms_stored(&server),
            0,
            "{code:?}: the failed VM was removed"
        );
    }
}

#[tokio::test]
async fn an_allocation_failure_of_a_start_is_capacity_and_the_vm_stays_stopped() {
    for code in [
        ShortageCode::AllocationFailed,
        ShortageCode::ZonalAllocationFailed,
        ShortageCode::SkuNotAvailable,
    ] {
        let server = ArmServer::start().await;
        fast_polls(&server);
        let p = provider(&server);
        let id = p.create(&spec("azure-start", 1, "x")).await.unwrap().vm_id;
        p.stop(&id, StopMode::Stop).await.unwrap();
        server.state.lock().unwrap().store.shortages = vec![Shortage {
            creates: false,
            ..Shortage::of_size("Standard_D2s_v5", code)
        }];
        let result = p.start(&id).await;
        assert!(
            matches!(&result, Err(BackendError::Capacity(m)) if m.contains(code.as_str())),
            "{code:?}: {result:?}"
        );
        let vm = p.get(&id).await.unwrap().unwrap();
        assert_eq!(vm.state, VmState::Stopped, "{code:?}: still there, stopped");
        assert_eq!(
            p.list("azure-start").await.unwrap()[0].state,
            VmState::Stopped,
            "{code:?}: listed stopped"
        );
        // Capacity is back: the same VM starts.
        server.state.lock().unwrap().store.shortages.clear();
        p.start(&id).await.unwrap();
        assert_eq!(p.get(&id).await.unwrap().unwrap().state, VmState::Running);
    }
}

#[tokio::test]
async fn each_offering_puts_its_size_and_zone_and_an_unknown_one_is_refused() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let p = provider_with(&server, OFFERINGS);
    for (n, offering, size, zone) in [
        (1, 0, "Standard_D2s_v5", "1"),
        (2, 1, "Standard_D4s_v5", "2"),
        (3, 2, "Standard_D2s_v5", "3"),
    ] {
        let mut one = spec("azure-offer", n, "x");
        one.offering = offering;
        let from = request_count(&server);
        let vm = p.create(&one).await.unwrap();
        let put = requests_since(&server, from)
            .into_iter()
            .find(|(m, path, _)| m == Method::PUT && path.contains("/virtualmachines/"))
            .expect("a VM PUT");
        assert_eq!(
            put.2["properties"]["hardwareProfile"]["vmSize"], size,
            "offering {offering}"
        );
        assert_eq!(
            put.2["zones"],
            serde_json::json!([zone]),
            "offering {offering}"
        );
        assert_eq!(
            stored(&server, &vm.vm_id).unwrap()["zones"],
            serde_json::json!([zone])
        );
    }
    let mut unknown = spec("azure-offer", 4, "x");
    unknown.offering = 3;
    let from = request_count(&server);
    let refused = p.create(&unknown).await;
    assert!(
        matches!(&refused, Err(BackendError::InvalidRequest(m)) if m.contains("offering 3")),
        "{refused:?}"
    );
    assert_eq!(request_count(&server), from, "nothing sent for it");

    // A config without a zone makes regional VMs.
    let regional = provider(&server);
    let from = request_count(&server);
    regional.create(&spec("azure-offer", 5, "x")).await.unwrap();
    let put = requests_since(&server, from)
        .into_iter()
        .find(|(m, path, _)| m == Method::PUT && path.contains("/virtualmachines/"))
        .expect("a VM PUT");
    assert!(put.2.get("zones").is_none(), "{}", put.2);
}

#[tokio::test]
async fn a_fallback_create_replaces_the_failed_vm_another_offering_left() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let p = provider_with(&server, OFFERINGS);
    let mut first = spec("azure-fallback", 1, "x");
    {
        let mut state = server.state.lock().unwrap();
        state.store.shortages = vec![Shortage {
            zone: Some("1".into()),
            ..Shortage::of_size("Standard_D2s_v5", ShortageCode::ZonalAllocationFailed)
        }];
        // The failed create's cleanup cannot delete the VM: it stays, Failed, in zone 1.
        state.store.faults.push(Fault {
            method: Some(Method::DELETE),
            path_contains: "/virtualmachines/kasm-".into(),
            status: 500,
            code: "InternalServerError".into(),
            retry_after: None,
        });
    }
    let result = p.create(&first).await;
    assert!(
        matches!(&result, Err(BackendError::Capacity(m)) if m.contains("ZonalAllocationFailed")),
        "{result:?}"
    );
    let left = {
        let state = server.state.lock().unwrap();
        let vms: Vec<Value> = state
            .store
            .resources
            .values()
            .filter(|r| r["type"] == "microsoft.compute/virtualmachines")
            .cloned()
            .collect();
        assert_eq!(vms.len(), 1, "the failed VM is left");
        vms[0].clone()
    };
    assert_eq!(left["properties"]["provisioningState"], "Failed");
    assert_eq!(left["zones"], serde_json::json!(["1"]));
    let id = left["id"].as_str().unwrap().to_ascii_lowercase();

    // The same server on offering 1: the failed VM (whose zone cannot change) and its parts
    // go first, then the VM is made in zone 2 with the other size, in this one call.
    first.offering = 1;
    let from = request_count(&server);
    let vm = p.create(&first).await.unwrap();
    assert_eq!(vm.vm_id.to_ascii_lowercase(), id);
    let seen = requests_since(&server, from);
    let delete = seen
        .iter()
        .position(|(m, path, _)| m == Method::DELETE && *path == id)
        .expect("the failed VM is deleted");
    let put = seen
        .iter()
        .position(|(m, path, _)| m == Method::PUT && *path == id)
        .expect("the VM is PUT again");
    assert!(delete < put, "deleted before the new PUT: {seen:?}");
    let made = stored(&server, &id).unwrap();
    assert_eq!(made["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        made["properties"]["hardwareProfile"]["vmSize"],
        "Standard_D4s_v5"
    );
    assert_eq!(made["zones"], serde_json::json!(["2"]));
    assert_eq!(
        p.get(&vm.vm_id).await.unwrap().unwrap().state,
        VmState::Running
    );
}

#[tokio::test]
async fn a_start_or_stop_of_a_vm_deleted_meanwhile_is_not_found() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let p = provider(&server);
    let id = p.create(&spec("azure-gone", 1, "x")).await.unwrap().vm_id;
    p.stop(&id, StopMode::Stop).await.unwrap();
    // A person deletes the stopped VM in the portal.
    {
        let mut state = server.state.lock().unwrap();
        state.store.resources.remove(&id.to_ascii_lowercase());
        state.store.power.remove(&id.to_ascii_lowercase());
    }
    let started = p.start(&id).await;
    assert!(
        matches!(&started, Err(BackendError::NotFound(m)) if m.contains("ResourceNotFound")),
        "{started:?}"
    );
    let stopped = p.stop(&id, StopMode::Stop).await;
    assert!(
        matches!(stopped, Err(BackendError::NotFound(_))),
        "{stopped:?}"
    );
    // An id outside the resource group is no VM of ours: not found, nothing sent.
    let from = request_count(&server);
    let elsewhere = p
        .start(
            "/subscriptions/x/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/v",
        )
        .await;
    assert!(
        matches!(elsewhere, Err(BackendError::NotFound(_))),
        "{elsewhere:?}"
    );
    assert_eq!(request_count(&server), from);
}

#[tokio::test]
async fn a_start_during_a_deallocate_preempts_it() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let p = provider(&server);
    let id = p
        .create(&spec("azure-preempt", 1, "x"))
        .await
        .unwrap()
        .vm_id;
    server.state.lock().unwrap().store.power_lro_delay = Some(Duration::from_millis(800));
    let (stopped, started) = tokio::join!(p.stop(&id, StopMode::Stop), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.start(&id).await
    });
    started.unwrap();
    assert!(
        matches!(&stopped, Err(BackendError::Transient(m)) if m.contains("OperationPreempted")),
        "the older operation ends preempted: {stopped:?}"
    );
    assert_eq!(p.get(&id).await.unwrap().unwrap().state, VmState::Running);
}

#[tokio::test]
async fn an_override_shapes_the_configs_own_size_and_zone_but_never_an_alternatives() {
    let server = ArmServer::start().await;
    fast_polls(&server);
    let extra = format!(
        "azure_config_override = {{ zones = [\"3\"], properties = {{ hardwareProfile = {{ vmSize = \"Standard_E2s_v5\" }} }} }}\n{OFFERINGS}"
    );
    let p = provider_with(&server, &extra);
    // Offering 2 sets only its zone: its size is the config's as the override shapes it.
    for (n, offering, size, zone) in [
        (1, 0, "Standard_E2s_v5", "3"),
        (2, 1, "Standard_D4s_v5", "2"),
        (3, 2, "Standard_E2s_v5", "3"),
    ] {
        let mut one = spec("azure-override", n, "x");
        one.offering = offering;
        let vm = p.create(&one).await.unwrap();
        let made = stored(&server, &vm.vm_id).unwrap();
        assert_eq!(
            made["properties"]["hardwareProfile"]["vmSize"], size,
            "offering {offering}"
        );
        assert_eq!(
            made["zones"],
            serde_json::json!([zone]),
            "offering {offering}"
        );
    }
}
