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
            // A power action (`POST …/deallocate`, `…/start`) is a write: this server takes it
            // from the PUT budget.
            "PUT" | "PATCH" | "POST" => "Put",
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

/// The value at `path` in `v`.
pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
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
/// after the VM is created"; and `zones`: a VM cannot move to another zone), by their path in
/// the body and the name ARM's error gives them.
const IMMUTABLE_VM_PROPERTIES: [(&[&str], &str); 4] = [
    (&["zones"], "zones"),
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

/// The required fields of Azure's reference for each type (a VM's NICs must exist in
/// `resources`).
pub fn validate(
    resources: &BTreeMap<String, Value>,
    kind: &str,
    body: &Value,
) -> Result<(), Reply> {
    let missing = |field: &str| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &format!(
                "The request content was invalid and could not be deserialized: Required property '{field}' not found in JSON."
            ),
        )
    };
    let require =
        |path: &[&str], field: &str| get(body, path).map(|_| ()).ok_or_else(|| missing(field));
    require(&["location"], "location")?;
    match kind {
        "microsoft.network/networkinterfaces" => {
            require(&["properties", "ipConfigurations"], "ipConfigurations")?;
            let subnet = get(body, &["properties", "ipConfigurations"])
                .and_then(|c| c.get(0))
                .and_then(|c| get(c, &["properties", "subnet", "id"]));
            if subnet.is_none() {
                return Err(arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestFormat",
                    "Subnet is required for an IP configuration.",
                ));
            }
        }
        "microsoft.compute/virtualmachines" => {
            require(&["properties", "hardwareProfile", "vmSize"], "vmSize")?;
            require(
                &["properties", "storageProfile", "imageReference"],
                "imageReference",
            )?;
            require(&["properties", "osProfile", "computerName"], "computerName")?;
            require(
                &["properties", "osProfile", "adminUsername"],
                "adminUsername",
            )?;
            let nics = get(body, &["properties", "networkProfile", "networkInterfaces"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if nics.is_empty() {
                return Err(arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "At least one network interface is required.",
                ));
            }
            for nic in nics {
                let id = nic["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                if !resources.contains_key(&id) {
                    return Err(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidResourceReference",
                        &format!("Resource {id} referenced by resource was not found."),
                    ));
                }
            }
            if let Some(data) = get(body, &["properties", "osProfile", "customData"]) {
                let len = data.as_str().map_or(0, str::len);
                if len > 87_380 {
                    return Err(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameter",
                        "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.",
                    ));
                }
            }
            let name = get(body, &["properties", "osProfile", "computerName"])
                .and_then(Value::as_str)
                .unwrap_or_default();
            let windows = get(body, &["properties", "osProfile", "windowsConfiguration"]).is_some();
            if windows && name.len() > 15 {
                return Err(arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "Windows computer name cannot be more than 15 characters long.",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
