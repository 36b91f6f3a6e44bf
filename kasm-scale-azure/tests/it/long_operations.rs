//! Azure's long-running operations through the controller: a VM create or delete takes minutes
//! on Azure (the test server's VM operations take several times the call timeout here: 6 s
//! against `api_call_timeout = 2`), far beyond one call's timeout. Each is one operation,
//! followed to its end within its own budget (`api_operation_timeout`): never cut off by the
//! call timeout, retried and converged by a later attempt.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::{Autoscaler, Event};
use kasm_scale_core::engine::ServerState;
use kasm_scale_core::testkit::{SCENARIO_MINIMUM, scenario_config};
use kasm_scale_core::traits::VmProvider;
use serde_json::Value;
use support::{ArmServer, config_toml};

/// How long the test server's VM creates and deletes run.
const VM_OPERATION: Duration = Duration::from_secs(6);

fn requests(server: &ArmServer, method: &str, part: &str) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(m, p, _, _)| m.as_str() == method && p.to_ascii_lowercase().contains(part))
        .count()
}

fn of_type(server: &ArmServer, kind: &str) -> Vec<Value> {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn vm_creates_and_deletes_longer_than_the_call_timeout_are_one_operation_each() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.vm_lro_delay = Some(VM_OPERATION);
    let provider_toml = config_toml(
        &server.url,
        "azure_resource_group = \"kasm\"\napi_call_timeout = 2\napi_concurrency = 1",
    )
    .replacen(
        "name = \"azure-test\"",
        "provider = \"azure\"\nname = \"vm\"",
        1,
    );
    let config = scenario_config(&format!("[[vm_providers]]\n{provider_toml}"), "");
    let VmProviderConfig::Azure(azure) = config.vm_providers[0].clone() else {
        panic!("an Azure provider")
    };
    let provider = Arc::new(AzureProvider::builder(azure).build().unwrap());
    let scaler = Autoscaler::builder(config)
        .owner_id("azure-long")
        .provider(provider.clone())
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let puts_when_first_made: Arc<Mutex<Option<usize>>> = Arc::default();
    let collector = {
        let (seen, first, state) = (
            seen.clone(),
            puts_when_first_made.clone(),
            server.state.clone(),
        );
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if matches!(event, Event::Starting { .. }) {
                    let puts = state
                        .lock()
                        .unwrap()
                        .store
                        .requests
                        .iter()
                        .filter(|(m, p, _, _)| {
                            m == hyper::Method::PUT
                                && p.to_ascii_lowercase().contains("/virtualmachines/")
                        })
                        .count();
                    first.lock().unwrap().get_or_insert(puts);
                }
                seen.lock().unwrap().push(event);
            }
        })
    };

    // The pool fills: each create waits for its VM, minutes on Azure.
    let began = tokio::time::Instant::now();
    scaler.tick().await;
    scaler.settle().await;
    let min = SCENARIO_MINIMUM as usize;
    let servers = scaler.servers();
    assert_eq!(servers.len(), min, "{servers:?}");
    assert!(
        servers
            .iter()
            .all(|s| s.state == ServerState::Starting && s.vm_id.is_some()),
        "{servers:?}"
    );
    assert!(began.elapsed() >= VM_OPERATION, "the creates waited");
    assert_eq!(
        requests(&server, "PUT", "/virtualmachines/"),
        min,
        "one PUT per VM"
    );
    // The one call slot (`api_concurrency = 1`) is given back while a create waits on Azure.
    assert_eq!(
        *puts_when_first_made.lock().unwrap(),
        Some(min),
        "every VM PUT was sent before the first VM was made"
    );
    let vms = of_type(&server, "microsoft.compute/virtualmachines");
    assert_eq!(vms.len(), min);
    for vm in &vms {
        assert_eq!(vm["properties"]["provisioningState"], "Succeeded", "{vm:#}");
    }
    let disks = of_type(&server, "microsoft.compute/disks");
    assert_eq!(disks.len(), min);
    for disk in &disks {
        assert_eq!(
            disk["tags"]["kasm-scale:owner"], "azure-long",
            "the create went on to tag the OS disk: {disk:#}"
        );
    }

    // The VMs are deallocated behind the controller's back: it destroys them. Each VM delete
    // takes minutes too.
    let old: Vec<String> = servers.iter().filter_map(|s| s.vm_id.clone()).collect();
    {
        let mut state = server.state.lock().unwrap();
        for id in &old {
            state
                .store
                .power
                .insert(id.to_ascii_lowercase(), "PowerState/deallocated".into());
        }
    }
    scaler.tick().await;
    scaler.settle().await;
    for id in &old {
        let name = id.rsplit('/').next().unwrap().to_ascii_lowercase();
        assert_eq!(
            requests(&server, "DELETE", &format!("/virtualmachines/{name}")),
            1,
            "the delete of {name} is one operation, sent once"
        );
        assert_eq!(provider.get(id).await.unwrap(), None, "{name} is gone");
    }
    let left = scaler.servers();
    assert!(
        left.iter()
            .all(|s| s.vm_id.as_ref().is_none_or(|v| !old.contains(v))),
        "their servers are gone: {left:?}"
    );

    collector.abort();
    let failures: Vec<Event> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Failed { .. }))
        .cloned()
        .collect();
    assert!(failures.is_empty(), "nothing failed: {failures:?}");
    let destroyed = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Destroyed { .. }))
        .count();
    assert_eq!(destroyed, min);
}

#[tokio::test]
async fn an_operation_past_api_operation_timeout_fails_as_transient_and_the_next_create_takes_up_its_vm()
 {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.vm_lro_delay = Some(Duration::from_secs(4));
    let text = config_toml(
        &server.url,
        "azure_resource_group = \"kasm\"\napi_operation_timeout = 2",
    );
    let config: kasm_scale_core::config::AzureVmConfig = toml::from_str(&text).unwrap();
    let p = AzureProvider::builder(config).build().unwrap();
    assert_eq!(
        p.capabilities().operation_timeout,
        Some(Duration::from_secs(2)),
        "the controller is told the budget"
    );
    let s = kasm_scale_core::testkit::vm_spec("azure-budget", 1, "x");
    let began = tokio::time::Instant::now();
    let err = p.create(&s).await.unwrap_err();
    assert!(
        matches!(&err, kasm_scale_core::traits::BackendError::Transient(m)
            if m.contains("not done within 2 s (api_operation_timeout)")),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    // The VM goes on being made; the controller's retry takes it up once it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let vm = p.create(&s).await.unwrap();
    assert_eq!(
        of_type(&server, "microsoft.compute/virtualmachines").len(),
        1
    );
    assert_eq!(requests(&server, "PUT", "/virtualmachines/"), 1);
    assert_eq!(vm.owner, s.owner);
}
