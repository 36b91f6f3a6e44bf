//! A controller that dies while its creates run on Azure, and the one that takes over on the
//! same saved state: it resumes those creates with startup scripts rendered again (other
//! tokens), which ARM refuses to put on an existing VM. Each server ends with exactly one VM,
//! whose guest checks in with the token its custom data carries.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus};
use kasm_scale_core::engine::ServerState;
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::token_in;
use kasm_scale_core::testkit::{SCENARIO_MINIMUM, scenario_config};
use kasm_scale_core::token::TokenKeys;
use serde_json::Value;
use support::resources::Hold;
use support::{ArmServer, config_toml};

const OWNER: &str = "azure-restart";

fn config(server: &ArmServer) -> Config {
    let provider = config_toml(&server.url, "azure_resource_group = \"kasm\"").replacen(
        "name = \"azure-test\"",
        "provider = \"azure\"\nname = \"vm\"\nstartup_script = \"#!/bin/sh\\ncurl -d token={checkin_jwt} https://{upstream_auth_address}/checkin\\n\"",
        1,
    );
    scenario_config(&format!("[[vm_providers]]\n{provider}"), "")
}

fn controller(server: &ArmServer, store: &MemoryStore, keys: &TokenKeys) -> Autoscaler {
    let config = config(server);
    let VmProviderConfig::Azure(azure) = config.vm_providers[0].clone() else {
        panic!("an Azure provider")
    };
    let provider = Arc::new(AzureProvider::builder(azure).build().unwrap());
    Autoscaler::builder(config)
        .owner_id(OWNER)
        .provider(provider)
        .store(Arc::new(store.clone()))
        .tokens(keys.clone())
        .build()
        .unwrap()
}

fn vms(server: &ArmServer) -> Vec<Value> {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == "microsoft.compute/virtualmachines")
        .cloned()
        .collect()
}

fn vm_puts(server: &ArmServer) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(m, p, _, _)| {
            m == hyper::Method::PUT && p.to_ascii_lowercase().contains("/virtualmachines/")
        })
        .count()
}

fn script_of(vm: &Value) -> String {
    let data = vm["properties"]["osProfile"]["customData"]
        .as_str()
        .unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn creates_resumed_after_a_restart_end_with_one_vm_per_server_that_checks_in() {
    let server = ArmServer::start().await;
    {
        let mut state = server.state.lock().unwrap();
        state.store.vm_lro_delay = Some(Duration::from_secs(3));
        // One server's VM PUT reaches ARM and is carried out only after the restart.
        state.store.hold = Some(Hold {
            method: hyper::Method::PUT,
            path_contains: "/virtualmachines/".into(),
            release_before: "/networkinterfaces/".into(),
        });
    }
    let store = MemoryStore::default();
    let keys = TokenKeys::generate().unwrap();
    let min = SCENARIO_MINIMUM as usize;

    // The first controller asks for the servers; it dies once every VM PUT has been sent (the
    // VMs being created, one PUT still in flight at ARM), before any create answered.
    let first = controller(&server, &store, &keys);
    first.tick().await;
    let sent = tokio::time::timeout(Duration::from_secs(20), async {
        while vm_puts(&server) < min - 1 || server.state.lock().unwrap().store.hold.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(sent.is_ok(), "the first controller sent its VM PUTs");
    let first_scripts: Vec<String> = vms(&server).iter().map(script_of).collect();
    assert_eq!(first_scripts.len(), min - 1, "one PUT is held");
    assert!(
        first
            .servers()
            .iter()
            .all(|s| s.state == ServerState::Provisioning),
        "no create answered: {:?}",
        first.servers()
    );
    drop(first);

    // The next controller, on the same saved state and keys, resumes the creates.
    let second = controller(&server, &store, &keys);
    second.tick().await;
    second.settle().await;
    let servers = second.servers();
    assert_eq!(servers.len(), min, "{servers:?}");
    let made = vms(&server);
    assert_eq!(made.len(), min, "exactly one VM per server: {made:#?}");
    for s in &servers {
        assert_eq!(s.state, ServerState::Starting, "{s:?}");
        let vm = made
            .iter()
            .find(|v| v["id"].as_str() == s.vm_id.as_deref())
            .unwrap_or_else(|| panic!("the VM of {s:?}"));
        let script = script_of(vm);
        // The guest reads its custom data: the first controller's script and token.
        let token = token_in(&script).expect("a token in the custom data");
        second
            .check_in_token(token, &CheckinStatus::running())
            .await
            .unwrap_or_else(|e| panic!("check-in of {} with its VM's token: {e}", s.id));
    }
    assert!(
        made.iter()
            .filter(|v| first_scripts.contains(&script_of(v)))
            .count()
            == min - 1,
        "the VMs made before the restart keep their custom data"
    );
    second.tick().await;
    second.settle().await;
    assert!(
        second
            .servers()
            .iter()
            .all(|s| s.state == ServerState::Running),
        "{:?}",
        second.servers()
    );
    assert_eq!(vms(&server).len(), min, "and no VM more");
}
