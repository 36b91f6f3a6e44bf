//! What the provider reports as Azure says it: stopped, deallocated and failed VMs; operations
//! that fail with codes we do not list; compute throttling; the token's one host.

use crate::support;

use std::time::Duration;

use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::vm_spec as spec;
use kasm_scale_core::traits::{BackendError, VmProvider, VmState};
use support::resources::Fault;
use support::{ArmServer, config_toml};

fn provider(server: &ArmServer) -> AzureProvider {
    let text = config_toml(&server.url, "azure_resource_group = \"kasm\"");
    let config: AzureVmConfig = toml::from_str(&text).unwrap();
    AzureProvider::builder(config).build().unwrap()
}

fn requests(server: &ArmServer, method: &str, part: &str) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(m, path, _, _)| m.as_str() == method && path.to_ascii_lowercase().contains(part))
        .count()
}

#[tokio::test]
async fn stopped_and_deallocated_vms_are_reported_as_such() {
    let server = ArmServer::start().await;
    let p = provider(&server);
    let mut ids = Vec::new();
    for n in 1..=4 {
        ids.push(p.create(&spec("azure-power", n, "x")).await.unwrap().vm_id);
    }
    for (id, power) in ids.iter().zip([
        "PowerState/running",
        "PowerState/deallocated",
        "PowerState/stopped",
        "PowerState/deallocating",
    ]) {
        let mut state = server.state.lock().unwrap();
        state
            .store
            .power
            .insert(id.to_ascii_lowercase(), power.into());
    }
    let expected = [
        VmState::Running,
        VmState::Stopped,
        VmState::Stopped,
        VmState::Stopping,
    ];
    for (id, want) in ids.iter().zip(expected) {
        assert_eq!(p.get(id).await.unwrap().unwrap().state, want, "get {id}");
    }
    let listed = p.list("azure-power").await.unwrap();
    for (id, want) in ids.iter().zip(expected) {
        let vm = listed.iter().find(|v| &v.vm_id == id).unwrap();
        assert_eq!(vm.state, want, "list {id}");
        assert!(vm.private_ip.is_some());
    }
}

#[tokio::test]
async fn a_failed_vm_is_failed_and_an_unlisted_operation_failure_is_transient() {
    let server = ArmServer::start().await;
    let p = provider(&server);
    {
        let mut state = server.state.lock().unwrap();
        state.store.vm_create_failure = Some((
            "OSProvisioningTimedOut".into(),
            "OS Provisioning for VM 'kasm-1' did not finish in the allotted time.".into(),
        ));
        // The cleanup of the failed create cannot delete the VM: it stays, Failed.
        state.store.faults.push(Fault {
            method: Some(hyper::Method::DELETE),
            path_contains: "virtualmachines/kasm-".into(),
            status: 500,
            code: "InternalServerError".into(),
            retry_after: None,
        });
    }
    let err = p.create(&spec("azure-failed", 1, "x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("OSProvisioningTimedOut")),
        "classified by the operation's status, not its 200: {err}"
    );
    let listed = p.list("azure-failed").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, VmState::Failed);
    assert!(listed[0].state.is_dead());
    let got = p.get(&listed[0].vm_id).await.unwrap().unwrap();
    assert_eq!(got.state, VmState::Failed);
    server.state.lock().unwrap().store.vm_create_failure = None;
    p.destroy(&listed[0].vm_id).await.unwrap();
    assert!(p.list("azure-failed").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_used_up_compute_budget_holds_its_calls_back_without_sending_them() {
    let server = ArmServer::start().await;
    let p = provider(&server);
    server
        .state
        .lock()
        .unwrap()
        .store
        .compute
        .left
        .insert("Microsoft.Compute/PutVM3Min".into(), 1);
    let vm = p.create(&spec("azure-budget", 1, "x")).await.unwrap();
    let vm_puts = || requests(&server, "PUT", "virtualmachines/");
    assert_eq!(vm_puts(), 1);
    // The answer said PutVM3Min;0: the next VM PUT is not sent, the controller waits.
    let err = p.create(&spec("azure-budget", 2, "x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::RateLimited { message, retry_after: Some(d) }
            if message.contains("PutVM3Min") && *d > Duration::from_secs(170) && *d <= Duration::from_secs(180)),
        "{err:?}"
    );
    assert_eq!(vm_puts(), 1, "not sent");
    // Reads have their own budget.
    assert!(p.get(&vm.vm_id).await.unwrap().is_some());
    assert_eq!(p.list("azure-budget").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_token_goes_to_the_configured_resource_manager_only() {
    // Another host (a listener counting connections) named by ARM's nextLink.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let server = ArmServer::start().await;
    let p = provider(&server);
    for n in 1..=3 {
        p.create(&spec("azure-host", n, "x")).await.unwrap();
    }
    {
        let mut state = server.state.lock().unwrap();
        state.store.page_size = 1;
        state.store.link_base = Some(elsewhere.clone());
    }
    let err = p.list("azure-host").await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest(m)
            if m.contains(&format!("pointed at {elsewhere}, which is not the configured Resource Manager"))),
        "{err}"
    );
    // An operation URL on another host is refused the same way (the create then cleans up).
    server.state.lock().unwrap().store.page_size = 100;
    let err = p.create(&spec("azure-host", 9, "x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest(m) if m.contains("the token is not sent there")),
        "{err}"
    );
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was sent elsewhere"
    );
    task.abort();
}
