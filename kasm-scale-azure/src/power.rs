//! Deallocate and start ("Virtual Machines - Deallocate", "- Start"): `POST
//! …/virtualMachines/{vm}/deallocate` and `…/start`, each a long-running operation (`202` with
//! `Azure-AsyncOperation` and `Location`) followed to its end within `api_operation_timeout`.
//! A stop deallocates (Azure bills a VM that is only powered off for its compute; a deallocated
//! one only for its disks). Hibernation is not offered. And the offering a create uses: the
//! size and zone of `VmSpec::offering`.
//!
//! Resize ("Virtual Machines - Update", "Resize a virtual machine"): a deallocated VM takes any
//! size of the region, with `PATCH …/virtualMachines/{vm}` of `hardwareProfile.vmSize`, a
//! long-running operation. A running VM would be restarted by it, so only a deallocated one is
//! resized (read first with its instance view); its zone cannot change ("Changing property
//! 'zones' is not allowed"), so an offering of another zone is refused before any call.

use kasm_scale_core::traits::{BackendError, StopMode, VmState};
use reqwest::Method;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::arm::VM_API_VERSION;
use crate::provider::{AzureProvider, unsafe_segment};
use crate::vm_state::{power_of, state_of};

/// A power action on a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PowerAction {
    /// `POST …/deallocate`.
    Deallocate,
    /// `POST …/start`.
    Start,
}

impl PowerAction {
    /// The last segment of its URL.
    fn segment(self) -> &'static str {
        match self {
            Self::Deallocate => "deallocate",
            Self::Start => "start",
        }
    }
}

/// The size and zone of one offering, and whether each came from an alternative (and so
/// wins over `azure_config_override`, which shapes only the config's own fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    /// `hardwareProfile.vmSize`.
    pub(crate) size: String,
    /// `zones: [zone]`, when the offering (or the config) names one.
    pub(crate) zone: Option<String>,
    /// The size was set by the alternative.
    pub(crate) size_from_alternative: bool,
    /// The zone was set by the alternative.
    pub(crate) zone_from_alternative: bool,
}

impl AzureProvider {
    /// The size and zone of offering `index`: 0 is the config's `azure_vm_size` and
    /// `azure_zone`; `i` is `alternatives[i - 1]`, each field it leaves out taken from the
    /// config. An index the config does not have is refused, naming it.
    pub(crate) fn choice(&self, index: u32) -> Result<Choice, BackendError> {
        let c = &self.config;
        let base = Choice {
            size: c.azure_vm_size.clone(),
            zone: c.azure_zone.clone(),
            size_from_alternative: false,
            zone_from_alternative: false,
        };
        if index == 0 {
            return Ok(base);
        }
        let Some(a) = usize::try_from(index - 1)
            .ok()
            .and_then(|i| c.alternatives.get(i))
        else {
            return Err(BackendError::InvalidRequest(format!(
                "{}: offering {index} does not exist: the config has offerings 0 to {} (alternatives has {} entries)",
                c.name,
                c.alternatives.len(),
                c.alternatives.len()
            )));
        };
        Ok(Choice {
            size: a.azure_vm_size.clone().unwrap_or(base.size),
            zone: a.azure_zone.clone().or(base.zone),
            size_from_alternative: a.azure_vm_size.is_some(),
            zone_from_alternative: a.azure_zone.is_some(),
        })
    }

    /// `stop`: deallocates the VM, followed to its end within the operation budget.
    pub(crate) async fn stop_vm(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        if mode == StopMode::Hibernate {
            return Err(BackendError::InvalidRequest(format!(
                "{}: cannot hibernate {vm_id}: kasm-scale does not hibernate Azure VMs (a stop deallocates)",
                self.config.name
            )));
        }
        self.power_within(vm_id, PowerAction::Deallocate).await
    }

    /// `start`: starts the VM, followed to its end within the operation budget.
    pub(crate) async fn start_vm(&self, vm_id: &str) -> Result<(), BackendError> {
        self.power_within(vm_id, PowerAction::Start).await
    }

    /// `resize`: the deallocated VM `vm_id` to offering `index`'s size, followed to its end
    /// within the operation budget.
    pub(crate) async fn resize_vm(&self, vm_id: &str, index: u32) -> Result<(), BackendError> {
        let budget = self.operation_timeout;
        let span = tracing::info_span!("azure_resize", vm = %vm_id, offering = index);
        tokio::time::timeout(budget, self.resize_once(vm_id, index).instrument(span))
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Transient(format!(
                    "cannot resize the VM {vm_id}: not done within {} s (api_operation_timeout)",
                    budget.as_secs()
                )))
            })
    }

    async fn resize_once(&self, vm_id: &str, index: u32) -> Result<(), BackendError> {
        let config = &self.config.name;
        let name = self
            .name_in_scope(vm_id, "Microsoft.Compute/virtualMachines")
            .filter(|n| unsafe_segment(n).is_none())
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "{config}: {vm_id} is not a virtual machine of resource group {}",
                    self.config.azure_resource_group
                ))
            })?;
        let choice = self.choice(index)?;
        let what = format!("cannot resize the VM {name}");
        let vm = self
            .arm
            .send(
                Method::GET,
                &format!("{}?$expand=instanceView", self.vm_path(name)),
                VM_API_VERSION,
                None,
                &what,
            )
            .await?
            .body;
        let properties = vm.get("properties");
        let provisioning = properties
            .and_then(|p| p.get("provisioningState"))
            .and_then(Value::as_str);
        let power = properties
            .and_then(|p| p.get("instanceView"))
            .and_then(power_of);
        match state_of(provisioning, power.as_deref()) {
            VmState::Stopped
                if power
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case("PowerState/deallocated")) => {}
            VmState::Stopping => {
                return Err(BackendError::Transient(format!(
                    "{what} yet: it is still being deallocated"
                )));
            }
            state => {
                return Err(BackendError::InvalidRequest(format!(
                    "{what}: only a deallocated VM is resized (a running one would restart), it is {state:?}"
                )));
            }
        }
        let zones: Vec<&str> = vm
            .get("zones")
            .and_then(Value::as_array)
            .map(|z| z.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if zones != choice.zone.as_deref().into_iter().collect::<Vec<_>>() {
            return Err(BackendError::InvalidRequest(format!(
                "{config}: cannot move {name} to offering {index}: it is in zones {zones:?}, the offering in {:?} (a VM keeps its zone)",
                choice.zone
            )));
        }
        let size = properties
            .and_then(|p| p.get("hardwareProfile"))
            .and_then(|h| h.get("vmSize"))
            .and_then(Value::as_str);
        if size.is_some_and(|s| s.eq_ignore_ascii_case(&choice.size)) {
            return Ok(());
        }
        tracing::info!(vm = name, size = %choice.size, "resizing the deallocated VM");
        let body = json!({"properties": {"hardwareProfile": {"vmSize": choice.size}}});
        let answer = self
            .arm
            .send(
                Method::PATCH,
                &self.vm_path(name),
                VM_API_VERSION,
                Some(&body),
                &what,
            )
            .await?;
        self.arm.wait(&answer, VM_API_VERSION, &what).await?;
        tracing::info!(vm = name, size = %choice.size, "resized");
        Ok(())
    }

    /// One power action within `api_operation_timeout`, in its span.
    async fn power_within(&self, vm_id: &str, action: PowerAction) -> Result<(), BackendError> {
        let budget = self.operation_timeout;
        let span = tracing::info_span!("azure_power", action = action.segment(), vm = %vm_id);
        tokio::time::timeout(budget, self.power_action(vm_id, action).instrument(span))
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Transient(format!(
                    "cannot {} the VM {vm_id}: not done within {} s (api_operation_timeout)",
                    action.segment(),
                    budget.as_secs()
                )))
            })
    }

    /// POSTs the action and follows its operation. A VM outside the configured resource group
    /// (or with a name that cannot be ours) does not exist here: `NotFound`, like a VM ARM
    /// does not know (`404 ResourceNotFound`). Allocation failures of a start (`AllocationFailed`,
    /// `ZonalAllocationFailed`, …) are `Capacity`, in the answer or at the operation's end.
    async fn power_action(&self, vm_id: &str, action: PowerAction) -> Result<(), BackendError> {
        let name = self
            .name_in_scope(vm_id, "Microsoft.Compute/virtualMachines")
            .filter(|n| unsafe_segment(n).is_none())
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "{}: {vm_id} is not a virtual machine of resource group {}",
                    self.config.name, self.config.azure_resource_group
                ))
            })?;
        let path = format!("{}/{}", self.vm_path(name), action.segment());
        let what = format!("cannot {} the VM {name}", action.segment());
        tracing::info!(
            vm = name,
            action = action.segment(),
            "sending the power action"
        );
        let answer = self
            .arm
            .send(Method::POST, &path, VM_API_VERSION, None, &what)
            .await?;
        self.arm.wait(&answer, VM_API_VERSION, &what).await?;
        tracing::info!(vm = name, action = action.segment(), "power action done");
        Ok(())
    }
}
