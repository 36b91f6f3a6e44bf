//! No leaked parts: destroy checks its scope and owner before deleting anything, tries every
//! part and names what is left; parts left without their VM are listed as leftovers (by owner)
//! and removed.

use crate::support;

use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::vm_spec as spec;
use kasm_scale_core::traits::{BackendError, VmProvider};
use serde_json::json;
use support::resources::{Fault, SUBSCRIPTION};
use support::{ArmServer, config_toml};

fn provider(server: &ArmServer, extra: &str) -> AzureProvider {
    let text = format!("azure_resource_group = \"kasm\"\n{extra}");
    let config: AzureVmConfig = toml::from_str(&config_toml(&server.url, &text)).unwrap();
    AzureProvider::builder(config).build().unwrap()
}

/// The disk outlives its VM (`deleteOption: Detach`), so destroy must delete it itself.
const DETACHED_DISK: &str = r#"azure_config_override = '{"properties": {"storageProfile": {"osDisk": {"deleteOption": "Detach"}}}}'"#;

fn fault(method: hyper::Method, part: &str, status: u16, code: &str) -> Fault {
    Fault {
        method: Some(method),
        path_contains: part.to_ascii_lowercase(),
        status,
        code: code.into(),
        retry_after: None,
    }
}

fn exists(server: &ArmServer, id: &str) -> bool {
    server
        .state
        .lock()
        .unwrap()
        .store
        .resources
        .contains_key(&id.to_ascii_lowercase())
}

fn deletes(server: &ArmServer) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|r| r.0 == hyper::Method::DELETE)
        .count()
}

fn rg(group: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers")
}

#[tokio::test]
async fn destroy_tries_every_part_and_names_the_parts_left() {
    let server = ArmServer::start().await;
    let p = provider(&server, DETACHED_DISK);
    let vm = p.create(&spec("azure-parts", 1, "x")).await.unwrap();
    let disk = format!("{}-osdisk", vm.vm_id.replace("virtualMachines", "disks"));
    assert!(exists(&server, &disk), "the detached disk exists: {disk}");
    server.state.lock().unwrap().store.faults.push(fault(
        hyper::Method::DELETE,
        "networkinterfaces/kasm-",
        500,
        "InternalServerError",
    ));
    let err = p.destroy(&vm.vm_id).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("left behind: the network interface kasm-") && m.contains("-nic")),
        "{err}"
    );
    assert!(!exists(&server, &vm.vm_id), "the VM is gone");
    assert!(
        !exists(&server, &disk),
        "the disk was deleted although the NIC delete failed before it"
    );
    p.destroy(&vm.vm_id).await.unwrap();
}

#[tokio::test]
async fn destroy_refuses_ids_outside_its_scope_and_vms_without_owner_tags() {
    let server = ArmServer::start().await;
    server.add_resource_group("other");
    let p = provider(&server, "");
    let vm = p.create(&spec("azure-scope", 1, "x")).await.unwrap();
    let name = vm.vm_id.rsplit('/').next().unwrap().to_owned();
    let before = deletes(&server);
    for id in [
        format!("{}/Microsoft.Compute/virtualMachines/{name}", rg("other")),
        format!(
            "/subscriptions/00000000-0000-0000-0000-000000000009/resourceGroups/kasm/providers/Microsoft.Compute/virtualMachines/{name}"
        ),
        format!(
            "{}/Microsoft.Network/networkInterfaces/{name}-nic",
            rg("kasm")
        ),
        format!(
            "{}/Microsoft.Compute/virtualMachines/{name}/extensions/x",
            rg("kasm")
        ),
        name.clone(),
    ] {
        let err = p.destroy(&id).await.unwrap_err();
        assert!(
            matches!(&err, BackendError::InvalidRequest(m) if m.contains("is not a virtual machine of subscription 00000000-0000-0000-0000-000000000001 resource group kasm")),
            "{id}: {err}"
        );
    }
    assert_eq!(deletes(&server), before, "nothing was deleted");
    assert!(
        exists(&server, &vm.vm_id),
        "our VM of the same name is untouched"
    );

    // A VM of the resource group that kasm-scale did not make.
    let foreign = format!("{}/Microsoft.Compute/virtualMachines/jump-host", rg("kasm"));
    server.state.lock().unwrap().store.resources.insert(
        foreign.to_ascii_lowercase(),
        json!({"id": foreign, "name": "jump-host", "type": "microsoft.compute/virtualmachines",
            "location": "eastus", "tags": {"team": "ops"},
            "properties": {"provisioningState": "Succeeded"}}),
    );
    let err = p.destroy(&foreign).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Conflict(m) if m.contains("does not carry kasm-scale's owner tags")),
        "{err}"
    );
    assert!(exists(&server, &foreign));
    assert_eq!(deletes(&server), before, "nothing was deleted");
    p.destroy(&vm.vm_id).await.unwrap();
    assert!(!exists(&server, &vm.vm_id));
}

#[tokio::test]
async fn parts_left_without_their_vm_are_listed_by_owner_and_removed() {
    let server = ArmServer::start().await;
    let p = provider(&server, "");
    let detached = provider(&server, DETACHED_DISK);

    // A create refused half-way whose cleanup cannot delete the NIC.
    server.state.lock().unwrap().store.faults.extend([
        fault(
            hyper::Method::PUT,
            "virtualmachines/kasm-",
            400,
            "InvalidParameter",
        ),
        fault(
            hyper::Method::DELETE,
            "networkinterfaces/kasm-",
            500,
            "InternalServerError",
        ),
    ]);
    let err = p.create(&spec("azure-left", 1, "x")).await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
    // A destroy cut short before the (detached) disk.
    let vm2 = detached.create(&spec("azure-left", 2, "x")).await.unwrap();
    server.state.lock().unwrap().store.faults.push(fault(
        hyper::Method::DELETE,
        "disks/kasm-",
        503,
        "ServiceUnavailable",
    ));
    let err = detached.destroy(&vm2.vm_id).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("the OS disk")),
        "{err}"
    );
    // A live server's parts and another owner's leftover are not ours to remove.
    p.create(&spec("azure-left", 3, "x")).await.unwrap();
    server.state.lock().unwrap().store.faults.push(fault(
        hyper::Method::DELETE,
        "networkinterfaces/kasm-",
        500,
        "InternalServerError",
    ));
    server.state.lock().unwrap().store.faults.push(fault(
        hyper::Method::PUT,
        "virtualmachines/kasm-",
        400,
        "InvalidParameter",
    ));
    p.create(&spec("someone-else", 4, "x")).await.unwrap_err();

    let mut left = p.list_leftovers("azure-left").await.unwrap();
    left.sort_by(|a, b| a.kind.cmp(&b.kind));
    let summary: Vec<(String, u128, bool)> = left
        .iter()
        .map(|l| {
            (
                l.kind.clone(),
                l.owner.server_id.0.as_u128(),
                l.id.to_ascii_lowercase().ends_with(&format!(
                    "kasm-{}{}",
                    l.owner.server_id.0.simple(),
                    if l.kind == "disk" { "-osdisk" } else { "-nic" }
                )),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("disk".to_owned(), 2, true),
            ("networkInterface".to_owned(), 1, true)
        ],
        "{left:?}"
    );
    assert!(left.iter().all(|l| l.owner.owner_id == "azure-left"));
    for l in &left {
        p.remove_leftover(&l.id).await.unwrap();
        assert!(!exists(&server, &l.id), "{} removed", l.id);
        p.remove_leftover(&l.id).await.unwrap();
    }
    assert!(p.list_leftovers("azure-left").await.unwrap().is_empty());
    assert_eq!(p.list_leftovers("someone-else").await.unwrap().len(), 1);

    let err = p
        .remove_leftover(&format!(
            "{}/Microsoft.Network/networkInterfaces/vpn-nic",
            rg("kasm")
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
}
