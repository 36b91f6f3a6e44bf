//! Deleting a server's resources without leaking any: `destroy` checks that the id is a VM of
//! the configured subscription and resource group (and that an existing VM carries kasm-scale's
//! owner tags) before deleting anything, then tries every part (VM, NIC, public IP, OS disk)
//! even when one fails and names the parts left; `list_leftovers` finds owner-tagged parts whose
//! VM is gone, for the controller to remove after its grace period.

use std::collections::BTreeSet;

use kasm_scale_core::traits::{BackendError, Leftover};
use reqwest::Method;
use serde_json::Value;

use crate::arm::{DISK_API_VERSION, NETWORK_API_VERSION, VM_API_VERSION};
use crate::provider::{AzureProvider, Names, is_our_vm_name};
use crate::vm_state::owner_of;

/// The separate parts of a VM: resource type, api-version, kind (as [`Leftover::kind`]) and the
/// suffix kasm-scale gives their names.
const PARTS: [(&str, &str, &str, &str); 3] = [
    (
        "Microsoft.Network/networkInterfaces",
        NETWORK_API_VERSION,
        "networkInterface",
        "-nic",
    ),
    (
        "Microsoft.Network/publicIPAddresses",
        NETWORK_API_VERSION,
        "publicIPAddress",
        "-ip",
    ),
    (
        "Microsoft.Compute/disks",
        DISK_API_VERSION,
        "disk",
        "-osdisk",
    ),
];

/// `e`'s class with `text` as its message.
fn with_text(e: &BackendError, text: String) -> BackendError {
    match e {
        BackendError::NotFound(_) => BackendError::NotFound(text),
        BackendError::RateLimited { retry_after, .. } => BackendError::RateLimited {
            message: text,
            retry_after: *retry_after,
        },
        BackendError::Capacity(_) => BackendError::Capacity(text),
        BackendError::Quota(_) => BackendError::Quota(text),
        BackendError::Auth(_) => BackendError::Auth(text),
        BackendError::Permission(_) => BackendError::Permission(text),
        BackendError::Conflict(_) => BackendError::Conflict(text),
        BackendError::Transient(_) => BackendError::Transient(text),
        _ => BackendError::InvalidRequest(text),
    }
}

impl AzureProvider {
    /// Deletes the VM and every part created for it (the delete options take the NIC, IP and
    /// disk with the VM; they are deleted by name too, for a create or destroy that stopped
    /// half-way). Every part is tried even when one fails; the error names the parts left and
    /// has the class of the first failure.
    pub(crate) async fn remove(&self, names: &Names) -> Result<(), BackendError> {
        let parts = [
            (self.vm_path(&names.vm), VM_API_VERSION, "the VM", &names.vm),
            (
                self.nic_path(&names.nic),
                NETWORK_API_VERSION,
                "the network interface",
                &names.nic,
            ),
            (
                self.ip_path(&names.ip),
                NETWORK_API_VERSION,
                "the public IP",
                &names.ip,
            ),
            (
                self.disk_path(&names.disk),
                DISK_API_VERSION,
                "the OS disk",
                &names.disk,
            ),
        ];
        let mut failed = Vec::new();
        for (path, version, label, name) in &parts {
            let what = format!("cannot delete {label} {name}");
            if let Err(e) = self.delete(path, version, &what).await {
                failed.push((format!("{label} {name}"), e));
            }
        }
        let Some((_, first)) = failed.first() else {
            return Ok(());
        };
        let left: Vec<String> = failed
            .iter()
            .map(|(part, e)| format!("{part} ({e})"))
            .collect();
        Err(with_text(
            first,
            format!("{}: left behind: {}", names.vm, left.join("; ")),
        ))
    }

    /// `destroy`: the scope and owner checks, then [`AzureProvider::remove`].
    pub(crate) async fn destroy_checked(&self, vm_id: &str) -> Result<(), BackendError> {
        let c = &self.config;
        let Some(name) = self.name_in_scope(vm_id, "Microsoft.Compute/virtualMachines") else {
            return Err(BackendError::InvalidRequest(format!(
                "{}: {vm_id} is not a virtual machine of subscription {} resource group {}; nothing deleted",
                c.name, c.azure_subscription_id, c.azure_resource_group
            )));
        };
        match self
            .arm
            .send(
                Method::GET,
                vm_id,
                VM_API_VERSION,
                None,
                "cannot read the VM",
            )
            .await
        {
            Ok(answer) => {
                if owner_of(&answer.body).is_none() {
                    return Err(BackendError::Conflict(format!(
                        "{}: the VM {name} does not carry kasm-scale's owner tags; nothing deleted",
                        c.name
                    )));
                }
            }
            // Gone: only parts named as kasm-scale names them can be left to delete.
            Err(BackendError::NotFound(_)) if !is_our_vm_name(name) => return Ok(()),
            Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.remove(&Names::of(name)).await
    }

    /// The NICs, public IPs and disks tagged for `owner_id` whose VM (named after the server
    /// id of their tags) does not exist.
    pub(crate) async fn leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        let vms: BTreeSet<String> = self
            .pages(
                "Microsoft.Compute/virtualMachines",
                VM_API_VERSION,
                "cannot list VMs",
            )
            .await?
            .iter()
            .filter_map(|v| Some(v.get("name")?.as_str()?.to_ascii_lowercase()))
            .collect();
        let mut left = Vec::new();
        for (kind, version, label, _) in PARTS {
            let what = format!("cannot list {kind}");
            for part in self.pages(kind, version, &what).await? {
                let Some(owner) = owner_of(&part) else {
                    continue;
                };
                if owner.owner_id != owner_id || attached(&part) {
                    continue;
                }
                let vm = Names::for_server(owner.server_id).vm.to_ascii_lowercase();
                if vms.contains(&vm) {
                    continue;
                }
                let Some(id) = part.get("id").and_then(Value::as_str) else {
                    continue;
                };
                left.push(Leftover {
                    id: id.to_owned(),
                    kind: label.to_owned(),
                    owner,
                });
            }
        }
        Ok(left)
    }

    /// Deletes one part listed by [`AzureProvider::leftovers`]: only a NIC, public IP or disk
    /// of the configured resource group named as kasm-scale names them.
    pub(crate) async fn remove_part(&self, id: &str) -> Result<(), BackendError> {
        for (kind, version, label, suffix) in PARTS {
            let Some(name) = self.name_in_scope(id, kind) else {
                continue;
            };
            let ours = name
                .strip_suffix(suffix)
                .is_some_and(|vm| is_our_vm_name(&vm.to_ascii_lowercase()));
            if !ours {
                break;
            }
            return self
                .delete(id, version, &format!("cannot delete the {label} {name}"))
                .await;
        }
        Err(BackendError::InvalidRequest(format!(
            "{}: {id} is not a network interface, public IP or disk made by kasm-scale in resource group {}; not deleted",
            self.config.name, self.config.azure_resource_group
        )))
    }
}

/// Whether ARM says the part is in use: a NIC's `virtualMachine`, a disk's `managedBy`, a
/// public IP's `ipConfiguration`.
fn attached(part: &Value) -> bool {
    let p = part.get("properties");
    let set = |k: &str| p.and_then(|p| p.get(k)).is_some_and(|v| !v.is_null());
    set("virtualMachine")
        || set("ipConfiguration")
        || part.get("managedBy").is_some_and(|v| !v.is_null())
}
