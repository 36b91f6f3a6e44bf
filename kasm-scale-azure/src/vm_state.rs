//! What an ARM VM resource says about the VM: its owner (from its tags) and its state, from
//! `provisioningState` and the power state of its instance view (`PowerState/running`,
//! `PowerState/stopped`, `PowerState/deallocated`, …; "Virtual Machines - Instance View").

use std::collections::BTreeMap;

use kasm_scale_core::traits::{Owner, VmState};
use serde_json::Value;

/// The owner read back from a resource's tags, when it carries all of them.
pub(crate) fn owner_of(resource: &Value) -> Option<Owner> {
    let tags: BTreeMap<String, String> = resource
        .get("tags")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    Owner::from_tags(&tags)
}

/// The `PowerState/…` code of an instance view (`{"statuses": [{"code": …}]}`), if any.
pub(crate) fn power_of(instance_view: &Value) -> Option<String> {
    instance_view
        .get("statuses")?
        .as_array()?
        .iter()
        .filter_map(|s| s.get("code")?.as_str())
        .find(|c| c.starts_with("PowerState/"))
        .map(str::to_owned)
}

/// A VM's state from its `provisioningState` and the power state of its instance view:
/// `Failed` → failed, unless it is deallocated or stopped (a start that failed, for capacity
/// say, leaves the VM deallocated and `Failed`: it keeps its disk and can be started again) →
/// stopped; `Deleting` → stopping; powered `stopped`/`deallocated` → stopped,
/// `stopping`/`deallocating` → stopping; `Succeeded` (or `Updating`) and running → running;
/// anything else (creating, starting, no power state yet) → pending. A `Succeeded` VM without
/// an instance view is taken as running.
pub(crate) fn state_of(provisioning: Option<&str>, power: Option<&str>) -> VmState {
    let power = power.map(str::to_ascii_lowercase);
    let off = matches!(
        power.as_deref(),
        Some("powerstate/stopped" | "powerstate/deallocated")
    );
    match provisioning {
        Some(p) if p.eq_ignore_ascii_case("Failed") && off => return VmState::Stopped,
        Some(p) if p.eq_ignore_ascii_case("Failed") => return VmState::Failed,
        Some(p) if p.eq_ignore_ascii_case("Deleting") => return VmState::Stopping,
        _ => {}
    }
    match power.as_deref() {
        Some("powerstate/stopped" | "powerstate/deallocated") => VmState::Stopped,
        Some("powerstate/stopping" | "powerstate/deallocating") => VmState::Stopping,
        Some("powerstate/running") | None
            if matches!(provisioning, Some("Succeeded" | "Updating")) =>
        {
            VmState::Running
        }
        _ => VmState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_and_power_states_map_to_vm_states() {
        for (provisioning, power, expected) in [
            (Some("Failed"), Some("PowerState/running"), VmState::Failed),
            (Some("Failed"), None, VmState::Failed),
            (
                Some("Failed"),
                Some("PowerState/deallocated"),
                VmState::Stopped,
            ),
            (Some("Failed"), Some("PowerState/stopped"), VmState::Stopped),
            (Some("Failed"), Some("PowerState/starting"), VmState::Failed),
            (Some("Deleting"), None, VmState::Stopping),
            (
                Some("Succeeded"),
                Some("PowerState/deallocated"),
                VmState::Stopped,
            ),
            (
                Some("Succeeded"),
                Some("PowerState/stopped"),
                VmState::Stopped,
            ),
            (
                Some("Updating"),
                Some("PowerState/deallocating"),
                VmState::Stopping,
            ),
            (
                Some("Succeeded"),
                Some("PowerState/stopping"),
                VmState::Stopping,
            ),
            (
                Some("Succeeded"),
                Some("PowerState/running"),
                VmState::Running,
            ),
            (Some("Succeeded"), None, VmState::Running),
            (
                Some("Creating"),
                Some("PowerState/starting"),
                VmState::Pending,
            ),
            (
                Some("Succeeded"),
                Some("PowerState/starting"),
                VmState::Pending,
            ),
            (None, None, VmState::Pending),
        ] {
            assert_eq!(
                state_of(provisioning, power),
                expected,
                "{provisioning:?} {power:?}"
            );
        }
    }
}
