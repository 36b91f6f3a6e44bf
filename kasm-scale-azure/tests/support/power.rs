//! The power side of the ARM test server, written from Azure's REST reference ("Virtual
//! Machines - Deallocate", "- Start", "- Instance View"; "States and billing status of Azure
//! Virtual Machines"; the allocation-failure troubleshooting pages), never from the provider:
//!
//! - `POST …/virtualMachines/{vm}/deallocate` and `…/start` answer `202 Accepted` with
//!   `Azure-AsyncOperation`, `Location` and `Retry-After`; the VM's instance view moves through
//!   `PowerState/deallocating` → `PowerState/deallocated` and `PowerState/starting` →
//!   `PowerState/running`, its `provisioningState` `Updating` meanwhile (a deallocate or start
//!   "is considered an update"), `Succeeded` after.
//! - A deallocate of a deallocated VM and a start of a running VM succeed without changing it.
//!   The same action while it runs joins the running operation; the other one preempts it (the
//!   older operation ends `Failed` with `OperationPreempted`).
//! - A VM that does not exist: `404 ResourceNotFound`. One being deleted: `409
//!   OperationNotAllowed`.
//! - Capacity ([`Shortage`]): a size (and/or zone) a test declares short answers a create or
//!   start as ARM does: `409 SkuNotAvailable` on the request, or the operation ending `Failed`
//!   with `AllocationFailed` / `ZonalAllocationFailed` (a create leaves the VM `Failed`; a start
//!   leaves it deallocated with `provisioningState` `Failed`).
//! - `PATCH …/virtualMachines/{vm}` ("Virtual Machines - Update"; "Resize a virtual machine"):
//!   `200 OK` with the VM, `provisioningState` `Updating`, and `Azure-AsyncOperation`; the
//!   operation ends `Succeeded`. A new `hardwareProfile.vmSize` is taken whatever the power
//!   state (a deallocated VM may take any size of the region); a running VM is restarted by it,
//!   which the server records (`Store::resized_running`). A change of `zones` is refused:
//!   `400 PropertyChangeNotAllowed` ("Changing property 'zones' is not allowed.").

use hyper::StatusCode;
use serde_json::{Value, json};

use super::resources::{Finish, Reply, Store, arm_error};
use super::rules::{get, shown};

/// Which answer a [`Shortage`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortageCode {
    /// `409 SkuNotAvailable` on the PUT (or POST) itself.
    SkuNotAvailable,
    /// The operation ends `Failed` with `AllocationFailed` (the region is short).
    AllocationFailed,
    /// The operation ends `Failed` with `ZonalAllocationFailed` (the zone is short).
    ZonalAllocationFailed,
}

impl ShortageCode {
    /// ARM's error code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SkuNotAvailable => "SkuNotAvailable",
            Self::AllocationFailed => "AllocationFailed",
            Self::ZonalAllocationFailed => "ZonalAllocationFailed",
        }
    }
}

/// A size and/or zone the region is short of.
#[derive(Debug, Clone)]
pub struct Shortage {
    /// Only VMs of this size (case-insensitive); any when `None`.
    pub size: Option<String>,
    /// Only VMs in this zone; any (zonal or regional) when `None`.
    pub zone: Option<String>,
    /// Creates of such VMs fail.
    pub creates: bool,
    /// Starts of such VMs fail.
    pub starts: bool,
    /// How.
    pub code: ShortageCode,
}

impl Shortage {
    /// A shortage of `size` for creates and starts, answered with `code`.
    pub fn of_size(size: &str, code: ShortageCode) -> Shortage {
        Shortage {
            size: Some(size.into()),
            zone: None,
            creates: true,
            starts: true,
            code,
        }
    }

    /// Whether a VM (its body) is of this shortage's size and zone.
    fn covers(&self, vm: &Value) -> bool {
        let size = get(vm, &["properties", "hardwareProfile", "vmSize"]).and_then(Value::as_str);
        let zones: Vec<&str> = vm
            .get("zones")
            .and_then(Value::as_array)
            .map(|z| z.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.size
            .as_deref()
            .is_none_or(|s| size.is_some_and(|v| v.eq_ignore_ascii_case(s)))
            && self.zone.as_deref().is_none_or(|z| zones.contains(&z))
    }

    /// ARM's message for this code.
    pub fn message(&self) -> String {
        match self.code {
            ShortageCode::SkuNotAvailable => String::new(),
            ShortageCode::AllocationFailed => "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at https://aka.ms/allocation-guidance".into(),
            ShortageCode::ZonalAllocationFailed => "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at https://aka.ms/allocation-guidance".into(),
        }
    }

    /// The `409 SkuNotAvailable` refusal of a request for `vm`.
    pub fn refusal(&self, vm: &Value) -> Reply {
        let size = get(vm, &["properties", "hardwareProfile", "vmSize"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        arm_error(
            StatusCode::CONFLICT,
            "SkuNotAvailable",
            &format!(
                "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: {size}' is currently not available in location 'eastus'. Please try another size or deploy to a different location or different zone. See https://aka.ms/azureskunotavailable for details."
            ),
        )
    }
}

/// The name of a VM from its lower-case id.
fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

impl Store {
    /// The first shortage covering `vm`, for a create (`creating`) or a start.
    pub fn shortage(&self, vm: &Value, creating: bool) -> Option<Shortage> {
        self.shortages
            .iter()
            .find(|s| (if creating { s.creates } else { s.starts }) && s.covers(vm))
            .cloned()
    }

    /// `POST …/deallocate` or `…/start` (`action`) of the VM `id` (lower case).
    pub(super) fn power_action(
        &mut self,
        base: &str,
        id: &str,
        action: &str,
        version: &str,
    ) -> Reply {
        let Some(vm) = self.resources.get(id).cloned() else {
            let rg = id.split('/').nth(4).unwrap_or_default();
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!(
                    "The Resource 'Microsoft.Compute/virtualMachines/{}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                    name_of(id)
                ),
            );
        };
        let provisioning = vm["properties"]["provisioningState"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if provisioning.eq_ignore_ascii_case("Deleting") {
            return arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                &format!(
                    "Operation '{action}' is not allowed on VM '{}' since the VM is marked for deletion. You can only retry the Delete operation (or wait for an ongoing one to complete).",
                    name_of(id)
                ),
            );
        }
        let namespace = "microsoft.compute";
        // A power operation of this VM still running: joined when it is the same action,
        // preempted by the other one.
        let running = self.operations.iter().find_map(|(op, o)| {
            let of_vm = match &o.finish {
                Finish::Deallocated(r) | Finish::Started(r) | Finish::StartFails(r, ..) => r == id,
                _ => false,
            };
            (of_vm && !o.finished).then(|| (op.clone(), o.finish.clone(), o.version.clone()))
        });
        if let Some((op, finish, op_version)) = running {
            let same = matches!(
                (&finish, action),
                (Finish::Deallocated(_), "deallocate")
                    | (Finish::Started(_) | Finish::StartFails(..), "start")
            );
            if same && op_version == version {
                let (op, location) = self.operation_urls(base, namespace, &op, version);
                return (
                    StatusCode::ACCEPTED,
                    self.started(op, Some(location)),
                    Value::Null,
                );
            }
            let o = self.operations.get_mut(&op).expect("the running operation");
            o.finish = Finish::Preempted;
            o.finished = true;
        }
        let power = self.power.get(id).cloned().unwrap_or_default();
        let finish = match action {
            "deallocate" => {
                if power != "PowerState/deallocated" {
                    self.power
                        .insert(id.to_owned(), "PowerState/deallocating".into());
                }
                Finish::Deallocated(id.to_owned())
            }
            _ if power == "PowerState/running" => Finish::Started(id.to_owned()),
            _ => {
                let short = self.shortage(&vm, false);
                if let Some(s) = &short
                    && s.code == ShortageCode::SkuNotAvailable
                {
                    return s.refusal(&vm);
                }
                self.power
                    .insert(id.to_owned(), "PowerState/starting".into());
                match short {
                    Some(s) => {
                        Finish::StartFails(id.to_owned(), s.code.as_str().into(), s.message())
                    }
                    None => Finish::Started(id.to_owned()),
                }
            }
        };
        if let Some(r) = self.resources.get_mut(id) {
            r["properties"]["provisioningState"] = json!("Updating");
        }
        let (op, location) = self.start_operation(base, namespace, version, finish);
        (
            StatusCode::ACCEPTED,
            self.started(op, Some(location)),
            Value::Null,
        )
    }

    /// The end of a power operation (`finish`) of VM `id`.
    pub(super) fn power_settled(&mut self, id: &str, finish: &Finish) {
        let (power, provisioning) = match finish {
            Finish::Deallocated(_) => ("PowerState/deallocated", "Succeeded"),
            Finish::Started(_) => ("PowerState/running", "Succeeded"),
            _ => ("PowerState/deallocated", "Failed"),
        };
        if let Some(r) = self.resources.get_mut(id) {
            r["properties"]["provisioningState"] = json!(provisioning);
            self.power.insert(id.to_owned(), power.into());
        }
    }

    /// `PATCH` of the VM `id` (lower case): its tags and size.
    pub(super) fn update_vm(&mut self, base: &str, id: &str, body: &Value, version: &str) -> Reply {
        let Some(vm) = self.resources.get(id) else {
            return arm_error(StatusCode::NOT_FOUND, "ResourceNotFound", "not found");
        };
        if let Some(zones) = body.get("zones")
            && Some(zones) != vm.get("zones")
        {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "PropertyChangeNotAllowed",
                "Changing property 'zones' is not allowed.",
            );
        }
        let size = get(body, &["properties", "hardwareProfile", "vmSize"]).cloned();
        let running = self
            .power
            .get(id)
            .is_some_and(|p| p != "PowerState/deallocated" && p != "PowerState/stopped");
        if size.is_some() && running {
            self.resized_running.push(id.to_owned());
        }
        let r = self.resources.get_mut(id).expect("present");
        if let Some(tags) = body.get("tags") {
            r["tags"] = tags.clone();
        }
        if let Some(size) = size {
            r["properties"]["hardwareProfile"]["vmSize"] = size;
        }
        r["properties"]["provisioningState"] = json!("Updating");
        let shown = shown(r);
        let (op, _) = self.start_operation(
            base,
            "microsoft.compute",
            version,
            Finish::Updated(id.to_owned()),
        );
        (StatusCode::OK, self.started(op, None), shown)
    }
}
