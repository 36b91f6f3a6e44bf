//! The rules of Azure's REST reference the test server applies, written for it (never taken from
//! the provider): the api-versions each resource type accepts, the compute throttling budgets
//! and their `x-ms-ratelimit-remaining-resource` header, what a GET shows, and the VM
//! properties that cannot change after creation.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::Value;

use super::resources::{Reply, arm_error};

/// The stable api-versions Azure's REST reference publishes for a resource type (a recent
/// selection): "Virtual Machines - Create Or Update" / "- Get" / "- Delete" for
/// `Microsoft.Compute/virtualMachines`; "Disks - Delete" / "- Update" / "- List By Resource
/// Group" (the disk resource provider's own line, e.g. `2025-01-02`) for `Microsoft.Compute/disks`;
/// "Network Interfaces - …" and "Public IP Addresses - …" for the network types.
pub fn accepted_versions(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "microsoft.compute/virtualmachines" => Some(&[
            "2023-09-01",
            "2024-03-01",
            "2024-07-01",
            "2024-11-01",
            "2025-04-01",
        ]),
        "microsoft.compute/disks" => Some(&["2023-10-02", "2024-03-02", "2025-01-02"]),
        "microsoft.network/networkinterfaces" | "microsoft.network/publicipaddresses" => Some(&[
            "2023-09-01",
            "2023-11-01",
            "2024-01-01",
            "2024-03-01",
            "2024-05-01",
            "2024-07-01",
        ]),
        _ => None,
    }
}

/// The resource type as ARM spells it in messages (`virtualMachines`).
pub fn type_name(kind: &str) -> &'static str {
    match kind {
        "microsoft.compute/virtualmachines" => "virtualMachines",
        "microsoft.compute/disks" => "disks",
        "microsoft.network/networkinterfaces" => "networkInterfaces",
        "microsoft.network/publicipaddresses" => "publicIPAddresses",
        _ => "unknown",
    }
}

/// Compute's throttling policies for VM calls (`Microsoft.Compute/PutVM3Min`, …) and what is
/// left of each; a call takes one from the policies of its method.
#[derive(Debug, Clone)]
pub struct ComputeBudgets {
    /// Policy name → calls left.
    pub left: BTreeMap<String, i64>,
}

impl Default for ComputeBudgets {
    fn default() -> Self {
        let left = [
            ("PutVM3Min", 240),
            ("PutVM30Min", 1200),
            ("GetVM3Min", 4000),
            ("GetVM30Min", 15000),
            ("DeleteVM3Min", 240),
            ("DeleteVM30Min", 1200),
        ]
        .into_iter()
        .map(|(k, v)| (format!("Microsoft.Compute/{k}"), v))
        .collect();
        ComputeBudgets { left }
    }
}

impl ComputeBudgets {
    /// The policies of a VM call by `method` (`PUT`, `GET`, `DELETE`).
    fn policies(method: &str) -> [String; 2] {
        let verb = match method {
            "PUT" | "PATCH" => "Put",
            "DELETE" => "Delete",
            _ => "Get",
        };
        [
            format!("Microsoft.Compute/{verb}VM3Min"),
            format!("Microsoft.Compute/{verb}VM30Min"),
        ]
    }

    /// Takes a call by `method` from its policies: the header to send, and whether the call
    /// is throttled (a policy had nothing left).
    pub fn take(&mut self, method: &str) -> (String, bool) {
        let names = Self::policies(method);
        let throttled = names
            .iter()
            .any(|n| self.left.get(n).copied().unwrap_or(0) <= 0);
        if !throttled {
            for n in &names {
                if let Some(v) = self.left.get_mut(n) {
                    *v -= 1;
                }
            }
        }
        let header = names
            .iter()
            .map(|n| format!("{n};{}", self.left.get(n).copied().unwrap_or(0).max(0)))
            .collect::<Vec<_>>()
            .join(",");
        (header, throttled)
    }
}

/// A resource as GET shows it: never the administrator password nor the custom data (ARM
/// keeps them to itself).
pub fn shown(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(os) = r
        .get_mut("properties")
        .and_then(|p| p.get_mut("osProfile"))
        .and_then(Value::as_object_mut)
    {
        os.remove("adminPassword");
        os.remove("customData");
    }
    r
}

/// The properties of a VM that cannot change after it is created ("Virtual Machines - Create Or
/// Update", `OSProfile`: `customData`, `computerName` and `adminUsername` "cannot be updated
/// after the VM is created"), by their path in the body and the name ARM's error gives them.
const IMMUTABLE_VM_PROPERTIES: [(&[&str], &str); 3] = [
    (&["properties", "osProfile", "customData"], "customData"),
    (&["properties", "osProfile", "computerName"], "computerName"),
    (
        &["properties", "osProfile", "adminUsername"],
        "adminUsername",
    ),
];

/// ARM's refusal of a PUT that changes one of [`IMMUTABLE_VM_PROPERTIES`] of an existing VM:
/// `409 PropertyChangeNotAllowed`, "Changing property 'customData' is not allowed." (the answer
/// Azure's compute API gives, quoted in the Azure SDK and Terraform provider issue trackers).
pub fn immutable_changed(old: &Value, new: &Value) -> Option<Reply> {
    IMMUTABLE_VM_PROPERTIES.iter().find_map(|(path, name)| {
        let at = |v| path.iter().try_fold(v, |v: &Value, k| v.get(*k));
        (at(old) != at(new)).then(|| {
            arm_error(
                StatusCode::CONFLICT,
                "PropertyChangeNotAllowed",
                &format!("Changing property '{name}' is not allowed."),
            )
        })
    })
}
