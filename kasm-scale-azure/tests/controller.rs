//! End to end on the ARM test server: the controller fills a pool through AzureProvider, the
//! guests check in with the token from their custom data, sessions grow the pool, and the
//! surplus is deleted again with its NIC and disk.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::token_in;
use support::{ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

fn config(url: &str) -> kasm_scale_core::config::Config {
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "azure"
name = "az"
azure_subscription_id = "00000000-0000-0000-0000-000000000001"
azure_resource_group = "kasm"
azure_tenant_id = "{TENANT}"
azure_client_id = "{CLIENT_ID}"
azure_client_secret = "{CLIENT_SECRET}"
azure_region = "eastus"
max_instances = 20
azure_vm_size = "Standard_D2s_v5"
azure_os_disk_type = "Premium_LRS"
azure_image_reference = {{ publisher = "Canonical", offer = "ubuntu-24_04-lts", sku = "server", version = "latest" }}
azure_subnet = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
azure_os_username = "kasm"
azure_ssh_public_key = "ssh-ed25519 AAAA test"
azure_resource_manager_url = "{url}"
azure_authority_url = "{url}"
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "az"
connection_type = "RDP"
connection_credential_type = "SSO User Accounts"
minimum_pool_standby_sessions = 3
reusable = true
require_checkin = true
downscale_backoff = 1
"##
    );
    kasm_scale_core::load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

/// What a guest does after boot: read its custom data and check in with the token in it.
async fn guests_check_in(scaler: &Autoscaler, server: &ArmServer) -> usize {
    let mut accepted = 0;
    for s in scaler.servers() {
        let (Some(vm), ServerState::Starting) = (&s.vm_id, s.state) else {
            continue;
        };
        let data = {
            let state = server.state.lock().unwrap();
            let r = &state.store.resources[&vm.to_ascii_lowercase()];
            r["properties"]["osProfile"]["customData"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let script = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let script = String::from_utf8(script).unwrap();
        let token = token_in(&script).expect("the check-in token in the custom data");
        scaler
            .check_in(s.id, token, &CheckinStatus::running())
            .await
            .unwrap();
        accepted += 1;
    }
    accepted
}

fn count(server: &ArmServer, kind: &str) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == kind)
        .count()
}

#[tokio::test]
async fn the_controller_fills_a_pool_on_azure_and_scales_it_down_again() {
    let server = ArmServer::start().await;
    let config = config(&server.url);
    let VmProviderConfig::Azure(azure) = config.vm_providers[0].clone() else {
        panic!("an Azure provider")
    };
    let provider = Arc::new(AzureProvider::builder(azure).build().unwrap());
    let scaler = Autoscaler::builder(config)
        .provider(provider)
        .build()
        .unwrap();
    let vms = "microsoft.compute/virtualmachines";

    scaler.tick().await;

    scaler.settle().await;
    assert_eq!(count(&server, vms), 3, "{:?}", scaler.servers());
    assert_eq!(guests_check_in(&scaler, &server).await, 3);
    scaler.tick().await;
    scaler.settle().await;
    let running = |s: &Autoscaler| {
        s.servers()
            .iter()
            .filter(|x| x.state == ServerState::Running)
            .count()
    };
    assert_eq!(running(&scaler), 3);

    let mut sessions = Vec::new();
    for _ in 0..2 {
        match scaler
            .request_session("p", &SessionRequest::default())
            .await
            .unwrap()
        {
            SessionOutcome::Assigned { session, .. } => sessions.push(session),
            other => panic!("{other:?}"),
        }
    }
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(count(&server, vms), 5);
    assert_eq!(guests_check_in(&scaler, &server).await, 2);
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(running(&scaler), 5);

    for s in sessions {
        scaler.end_session(s).await.unwrap();
    }
    scaler.tick().await;
    scaler.settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(scaler.servers().len(), 3, "{:?}", scaler.servers());
    assert_eq!(count(&server, vms), 3, "deleted on Azure");
    assert_eq!(
        count(&server, "microsoft.network/networkinterfaces"),
        3,
        "with their NICs"
    );
    assert_eq!(
        count(&server, "microsoft.compute/disks"),
        3,
        "and their disks"
    );
}
