//! A create resumed after a restart renders its startup script again (a new check-in token, a
//! new AD password), so its custom data differs from the first attempt's, and ARM refuses to
//! change a VM's custom data (`409 PropertyChangeNotAllowed`). The resumed create takes up the
//! VM the first attempt made — it neither fails nor makes a second one — and finishes it.

use crate::support;

use std::time::Duration;

use base64::Engine;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::vm_spec as spec;
use kasm_scale_core::traits::{SERVER_TAG, VmProvider, VmState};
use serde_json::Value;
use support::resources::Hold;
use support::{ArmServer, config_toml};

const OWNER: &str = "azure-resume";

fn provider(server: &ArmServer) -> AzureProvider {
    let text = config_toml(&server.url, "azure_resource_group = \"kasm\"");
    let config: AzureVmConfig = toml::from_str(&text).unwrap();
    AzureProvider::builder(config).build().unwrap()
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

fn custom_data(vm: &Value) -> String {
    let data = vm["properties"]["osProfile"]["customData"]
        .as_str()
        .expect("custom data");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

/// The one VM and OS disk there are, and that the disk carries the owner tags of server `n`.
fn one_finished_vm(server: &ArmServer, n: u128, script: &str) {
    let vms = of_type(server, "microsoft.compute/virtualmachines");
    assert_eq!(vms.len(), 1, "exactly one VM: {vms:#?}");
    assert_eq!(
        custom_data(&vms[0]),
        script,
        "the VM keeps the first attempt's custom data"
    );
    let disks = of_type(server, "microsoft.compute/disks");
    assert_eq!(disks.len(), 1);
    for (k, v) in spec(OWNER, n, "").owner.tags() {
        assert_eq!(
            disks[0]["tags"][&k], v,
            "the OS disk carries the owner tag {k}: {:#}",
            disks[0]
        );
    }
}

#[tokio::test]
async fn a_create_resumed_with_other_custom_data_takes_up_the_vm_of_the_first_attempt() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.vm_lro_delay = Some(Duration::from_secs(3));
    let p = provider(&server);
    // The first attempt: its VM PUT is accepted, then the process dies while it waits.
    let first = spec(OWNER, 1, "#!/bin/sh\necho token=first\n");
    let attempt = tokio::time::timeout(Duration::from_millis(2500), p.create(&first)).await;
    assert!(attempt.is_err(), "cut off while the VM was being created");
    assert_eq!(vm_puts(&server), 1);
    // Resumed after the restart: the script is rendered again, with another token.
    let resumed = spec(OWNER, 1, "#!/bin/sh\necho token=second\n");
    let vm = p.create(&resumed).await.expect("the resumed create");
    assert_eq!(vm.owner, resumed.owner);
    assert_eq!(
        vm.state,
        VmState::Running,
        "the create returns once the VM is made, as a first create does"
    );
    one_finished_vm(&server, 1, "#!/bin/sh\necho token=first\n");
    assert_eq!(vm_puts(&server), 1, "the VM is not PUT again");
}

#[tokio::test]
async fn a_create_resumed_while_the_first_attempts_put_is_in_flight_takes_up_that_vm() {
    let server = ArmServer::start().await;
    let p = provider(&server);
    // The first attempt's VM PUT reaches ARM, and its controller dies before the answer. ARM
    // carries it out late: after the resumed create has looked for the VM and found none.
    server.state.lock().unwrap().store.hold = Some(Hold {
        method: hyper::Method::PUT,
        path_contains: "/virtualmachines/".into(),
        release_before: "/networkinterfaces/".into(),
    });
    let first = spec(OWNER, 2, "#!/bin/sh\necho token=first\n");
    let attempt = tokio::time::timeout(Duration::from_secs(3), p.create(&first)).await;
    assert!(attempt.is_err(), "the first attempt never hears back");
    assert!(
        of_type(&server, "microsoft.compute/virtualmachines").is_empty(),
        "not carried out yet"
    );
    let resumed = spec(OWNER, 2, "#!/bin/sh\necho token=second\n");
    let vm = p
        .create(&resumed)
        .await
        .expect("the resumed create takes up the VM instead of failing");
    assert_eq!(vm.owner, resumed.owner);
    assert_eq!(vm.state, VmState::Running);
    one_finished_vm(&server, 2, "#!/bin/sh\necho token=first\n");
    let nics = of_type(&server, "microsoft.network/networkinterfaces");
    assert_eq!(nics.len(), 1, "its network interface is kept");
    // It is a server like any other: destroy leaves nothing.
    p.destroy(&vm.vm_id).await.unwrap();
    assert!(p.list(OWNER).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_vm_of_another_server_under_the_name_is_not_taken_up() {
    let server = ArmServer::start().await;
    let p = provider(&server);
    let vm = p.create(&spec(OWNER, 3, "x")).await.unwrap();
    // Someone retagged it for another server: its name is ours, its owner is not.
    {
        let mut state = server.state.lock().unwrap();
        let r = state
            .store
            .resources
            .get_mut(&vm.vm_id.to_ascii_lowercase())
            .unwrap();
        r["tags"][SERVER_TAG] = serde_json::json!(uuid::Uuid::from_u128(4).to_string());
    }
    let err = p.create(&spec(OWNER, 3, "y")).await.unwrap_err();
    assert!(
        err.to_string().contains("belongs to server"),
        "refused, naming why: {err}"
    );
    assert_eq!(
        of_type(&server, "microsoft.compute/virtualmachines").len(),
        1,
        "and left alone"
    );
}
