//! A rolling image replacement on the ARM test server: the pool runs on one image version, a
//! reload brings another (a provider built from the new configuration), and the controller
//! replaces every VM of the old image with one of the new, keeping the pool's free slots, ending
//! no session, and deleting the old VMs with their NICs and disks.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::SessionRequest;
use kasm_scale_core::load_str;
use kasm_scale_core::testkit::check_in_starting;
use support::{ArmGuests, ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

const OLD: &str = "24.04.202610010";
const NEW: &str = "24.04.202611150";

fn config(url: &str, version: &str) -> Config {
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "azure"
name = "vm"
azure_subscription_id = "00000000-0000-0000-0000-000000000001"
azure_resource_group = "kasm"
azure_tenant_id = "{TENANT}"
azure_client_id = "{CLIENT_ID}"
azure_client_secret = "{CLIENT_SECRET}"
azure_region = "eastus"
max_instances = 10
azure_vm_size = "Standard_D2s_v5"
azure_os_disk_type = "Premium_LRS"
azure_image_reference = {{ publisher = "Canonical", offer = "ubuntu-24_04-lts", sku = "server", version = "{version}" }}
azure_subnet = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
azure_os_username = "kasm"
azure_ssh_public_key = "ssh-ed25519 AAAA test"
azure_resource_manager_url = "{url}"
azure_authority_url = "{url}"
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-azure"
vm_provider_config_id = "vm"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
reusable = true
require_checkin = true
rollout = {{ canary = 1, max_surge = "50%" }}
"##
    );
    load_str(&text, Format::Toml).unwrap().config
}

fn provider(config: &Config) -> Arc<AzureProvider> {
    let VmProviderConfig::Azure(azure) = config.vm_providers[0].clone() else {
        panic!("an Azure provider")
    };
    Arc::new(AzureProvider::builder(azure).build().unwrap())
}

/// The image version of every VM on the server, by resource id.
fn versions(server: &ArmServer) -> BTreeMap<String, String> {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .iter()
        .filter(|(_, r)| r["type"] == "microsoft.compute/virtualmachines")
        .map(|(id, r)| {
            let version = r["properties"]["storageProfile"]["imageReference"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (id.clone(), version)
        })
        .collect()
}

/// One tick; the guests of starting servers check in with the token in their custom data.
async fn step(scaler: &Autoscaler, server: &ArmServer) {
    scaler.tick().await;
    scaler.settle().await;
    check_in_starting(scaler, &ArmGuests(server)).await;
}

fn free(scaler: &Autoscaler) -> u32 {
    scaler.pools()[0].free_sessions
}

async fn until(scaler: &Autoscaler, server: &ArmServer, done: impl Fn(&Autoscaler) -> bool) {
    for _ in 0..60 {
        step(scaler, server).await;
        if done(scaler) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_image_version_replaces_every_vm_of_the_old_one() {
    let server = ArmServer::start().await;
    let old = config(&server.url, OLD);
    let scaler = Autoscaler::builder(old.clone())
        .owner_id("azure-rollout")
        .provider(provider(&old))
        .build()
        .unwrap();
    until(&scaler, &server, |s| free(s) == 2).await;
    let SessionOutcome::Assigned {
        session,
        server: busy,
    } = scaler
        .request_session("desktops", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("seated at once")
    };
    until(&scaler, &server, |s| free(s) == 2).await;
    let before = versions(&server);
    assert_eq!(before.len(), 3);
    assert!(before.values().all(|v| v == OLD), "{before:?}");

    let new = config(&server.url, NEW);
    let changes = scaler
        .reconfiguration(new.clone())
        .provider(provider(&new))
        .apply()
        .await
        .unwrap();
    assert_eq!(changes.new_generations, ["desktops-azure"]);
    let mut lowest = u32::MAX;
    for _ in 0..60 {
        step(&scaler, &server).await;
        lowest = lowest.min(free(&scaler));
        let g = &scaler.generations()[0];
        if g.outdated == 1 && g.current >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lowest >= 2,
        "free slots fell to {lowest} during the rollout"
    );
    let during = versions(&server);
    assert_eq!(
        during.values().filter(|v| *v == OLD).count(),
        1,
        "only the busy VM of the old image is left: {during:?}"
    );
    assert_eq!(
        scaler.server(busy).unwrap().sessions,
        1,
        "no session ended by us"
    );
    scaler.end_session(session).await.unwrap();
    until(&scaler, &server, |s| s.generations()[0].outdated == 0).await;
    let after = versions(&server);
    assert!(after.values().all(|v| v == NEW), "{after:?}");
    assert!(free(&scaler) >= 2);
    let rollout = scaler.generations()[0].rollout.clone().expect("a rollout");
    assert!(rollout.finished_at.is_some(), "{rollout:?}");
    // The old VMs went with their parts.
    let state = server.state.lock().unwrap();
    let nics = state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == "microsoft.network/networkinterfaces")
        .count();
    assert_eq!(nics, after.len(), "one NIC per VM left");
}
