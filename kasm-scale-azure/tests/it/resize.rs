//! Resize of a deallocated VM to another offering's size on the ARM test server: the
//! conformance suite's resize part, one `PATCH` of `hardwareProfile.vmSize` followed as a
//! long-running operation, never of a running VM, never to another zone, and a start refused
//! for the old size succeeding on the new one.

use crate::support;

use std::time::Duration;

use hyper::Method;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::{vm_provider_resize_contract, vm_spec as spec, wait_for_state};
use kasm_scale_core::traits::{BackendError, StopMode, VmProvider, VmState};
use support::resources::{Shortage, ShortageCode};
use support::{ArmServer, config_toml};

/// Zone 1; offering 1 is `Standard_D4s_v5` in zone 1, offering 2 the config's size in zone 2.
const OFFERINGS: &str = r#"azure_resource_group = "kasm"
azure_zone = "1"
[[alternatives]]
azure_vm_size = "Standard_D4s_v5"
[[alternatives]]
azure_zone = "2"
"#;

const LIMIT: Duration = Duration::from_secs(20);

fn provider(server: &ArmServer) -> AzureProvider {
    let config: AzureVmConfig = toml::from_str(&config_toml(&server.url, OFFERINGS)).unwrap();
    AzureProvider::builder(config).build().unwrap()
}

fn size_of(server: &ArmServer, vm_id: &str) -> String {
    let state = server.state.lock().unwrap();
    state.store.resources[&vm_id.to_ascii_lowercase()]["properties"]["hardwareProfile"]["vmSize"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn patches(server: &ArmServer) -> Vec<serde_json::Value> {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(m, p, _, _)| *m == Method::PATCH && p.contains("virtualMachines"))
        .map(|(_, _, _, b)| b.clone())
        .collect()
}

#[tokio::test]
async fn the_resize_contract_holds_and_a_running_vm_is_never_resized() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.retry_after = 0;
    let p = provider(&server);
    assert!(p.capabilities().resize_stopped);
    let vm = vm_provider_resize_contract(&p, "azure-resize-contract", 1, LIMIT).await;
    assert_eq!(size_of(&server, &vm), "Standard_D4s_v5");
    assert_eq!(
        patches(&server),
        vec![serde_json::json!({"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}})],
        "one PATCH of the size alone; the repeat found the size set"
    );
    assert!(
        server
            .state
            .lock()
            .unwrap()
            .store
            .resized_running
            .is_empty(),
        "no running VM was resized (Azure would restart it)"
    );

    // Deallocated again: back to offering 0; offering 2 (zone 2) is refused unsent.
    p.stop(&vm, StopMode::Stop).await.unwrap();
    wait_for_state(&p, &vm, &[VmState::Stopped], LIMIT, "deallocated").await;
    p.resize(&vm, 0).await.unwrap();
    assert_eq!(size_of(&server, &vm), "Standard_D2s_v5");
    let elsewhere = p.resize(&vm, 2).await;
    assert!(
        matches!(&elsewhere, Err(BackendError::InvalidRequest(m)) if m.contains("keeps its zone")),
        "{elsewhere:?}"
    );
    assert_eq!(patches(&server).len(), 2);
}

#[tokio::test]
async fn a_start_refused_for_its_size_succeeds_after_a_resize_to_the_next() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.retry_after = 0;
    let p = provider(&server);
    let vm = p.create(&spec("azure-resize-short", 1, "x")).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Running], LIMIT, "created").await;
    p.stop(&vm.vm_id, StopMode::Stop).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Stopped], LIMIT, "deallocated").await;
    server
        .state
        .lock()
        .unwrap()
        .store
        .shortages
        .push(Shortage::of_size(
            "Standard_D2s_v5",
            ShortageCode::ZonalAllocationFailed,
        ));
    let refused = p.start(&vm.vm_id).await;
    assert!(
        matches!(refused, Err(BackendError::Capacity(_))),
        "{refused:?}"
    );
    // The failed start leaves it deallocated (provisioningState Failed): it still resizes.
    p.resize(&vm.vm_id, 1).await.unwrap();
    p.start(&vm.vm_id).await.unwrap();
    wait_for_state(
        &p,
        &vm.vm_id,
        &[VmState::Running],
        LIMIT,
        "started on D4s_v5",
    )
    .await;
    assert_eq!(size_of(&server, &vm.vm_id), "Standard_D4s_v5");
}
