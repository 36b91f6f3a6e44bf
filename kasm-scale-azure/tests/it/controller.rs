//! End to end on the ARM test server: the shared controller scenario (`testkit::Scenario`)
//! through AzureProvider — the pool fills, the guests check in with the token from their custom
//! data, sessions grow the pool, the surplus is deleted with its NIC and disk.

use crate::support;

use std::sync::Arc;

use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::testkit::{Scenario, scenario_config};
use support::{ArmGuests, ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

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
async fn the_controller_scenario_runs_on_azure() {
    let server = ArmServer::start().await;
    let url = &server.url;
    let config = scenario_config(
        &format!(
            r##"
[[vm_providers]]
provider = "azure"
name = "vm"
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
"##
        ),
        "",
    );
    let VmProviderConfig::Azure(azure) = config.vm_providers[0].clone() else {
        panic!("an Azure provider")
    };
    let provider = Arc::new(AzureProvider::builder(azure).build().unwrap());
    let owner = "azure-end-to-end";
    let scaler = Autoscaler::builder(config)
        .owner_id(owner)
        .provider(provider.clone())
        .build()
        .unwrap();
    Scenario {
        scaler: &scaler,
        owner_id: owner,
        provider: provider.as_ref(),
        directory: None,
        guests: &ArmGuests(&server),
    }
    .run()
    .await;
    for kind in [
        "microsoft.compute/virtualmachines",
        "microsoft.network/networkinterfaces",
        "microsoft.network/publicipaddresses",
        "microsoft.compute/disks",
    ] {
        assert_eq!(count(&server, kind), 0, "no {kind} is left on Azure");
    }
}
