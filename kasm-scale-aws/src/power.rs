//! Stop and start (`StopInstances`, with `Hibernate` when the warm tier asks and the config
//! launches with hibernation configured; `StartInstances`), and the instance type and subnet
//! of the offering a create uses.
//!
//! EC2's rules (the `StopInstances` and `StartInstances` references): a stop of a stopped
//! instance and a start of a running one succeed and report its current state; a stop or start
//! of an instance that is terminated (or shutting down) fails with `IncorrectInstanceState`, of
//! one that never existed with `InvalidInstanceID.NotFound`; a start EC2 cannot place answers
//! `InsufficientInstanceCapacity`. An instance that cannot hibernate (not launched with
//! `HibernationOptions.Configured`, or not ready to yet) answers
//! `UnsupportedHibernationConfiguration`: it is then stopped without hibernation, since a
//! stopped warm server is better than a running one.
//!
//! A stopped instance moves to another offering's instance type (`resize`) with
//! `ModifyInstanceAttribute` `InstanceType` (the reference: "the instance must be in the
//! stopped state"; otherwise `IncorrectInstanceState`). Its subnet cannot change: an offering
//! in another subnet is refused before any call.

use aws_sdk_ec2::types::{AttributeValue, InstanceState, InstanceStateChange, InstanceStateName};
use kasm_scale_core::traits::{BackendError, StopMode, VmProvider, VmState};
use tracing::Instrument;

use crate::errors::classify;
use crate::provider::AwsProvider;

/// EC2's code for a stop or start of an instance in a state that does not allow it.
const INCORRECT_STATE: &str = "IncorrectInstanceState";
/// EC2's code for a hibernation the instance does not support.
const NO_HIBERNATION: &str = "UnsupportedHibernationConfiguration";

/// A power action on an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    /// `StopInstances`, `Hibernate` as given.
    Stop { hibernate: bool },
    /// `StartInstances`.
    Start,
}

impl Power {
    fn name(self) -> &'static str {
        match self {
            Self::Stop { hibernate: true } => "hibernate",
            Self::Stop { hibernate: false } => "stop",
            Self::Start => "start",
        }
    }
}

/// The instance type and subnet an alternative sets (each `None` when it leaves the config's
/// own field, and the override's, in place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Offered {
    /// `InstanceType`.
    pub(crate) instance_type: Option<String>,
    /// `SubnetId` (and so the availability zone).
    pub(crate) subnet_id: Option<String>,
}

impl AwsProvider {
    /// What offering `index` changes in the request: nothing for 0 (the config's own fields),
    /// the fields `alternatives[index - 1]` sets otherwise. An index the config does not have
    /// is refused, naming it.
    pub(crate) fn offered(&self, index: u32) -> Result<Offered, BackendError> {
        let c = self.config();
        if index == 0 {
            return Ok(Offered::default());
        }
        let alternative = usize::try_from(index - 1)
            .ok()
            .and_then(|i| c.alternatives.get(i))
            .ok_or_else(|| {
                BackendError::InvalidRequest(format!(
                    "{}: offering {index} does not exist: the config has offerings 0 to {} (alternatives has {} entries)",
                    c.name,
                    c.alternatives.len(),
                    c.alternatives.len()
                ))
            })?;
        Ok(Offered {
            instance_type: alternative.aws_ec2_instance_type.clone(),
            subnet_id: alternative.aws_ec2_subnet_id.clone(),
        })
    }

    /// [`VmProvider::stop`]: `StopInstances`, hibernating when `mode` asks.
    pub(crate) async fn stop_vm(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        let hibernate = mode == StopMode::Hibernate;
        if hibernate && !self.config().aws_ec2_hibernation {
            return Err(BackendError::InvalidRequest(format!(
                "{}: cannot hibernate {vm_id}: its instances are launched without hibernation (set aws_ec2_hibernation)",
                self.config().name
            )));
        }
        match self.power(vm_id, Power::Stop { hibernate }).await {
            Err(BackendError::InvalidRequest(m)) if hibernate && m.starts_with(NO_HIBERNATION) => {
                tracing::warn!(
                    provider = %self.config().name,
                    vm = vm_id,
                    reason = %m,
                    "EC2 cannot hibernate the instance: stopping it instead"
                );
                self.power(vm_id, Power::Stop { hibernate: false }).await
            }
            other => other,
        }
    }

    /// [`VmProvider::start`]: `StartInstances`.
    pub(crate) async fn start_vm(&self, vm_id: &str) -> Result<(), BackendError> {
        self.power(vm_id, Power::Start).await
    }

    /// The instance type offering `index` launches with: the alternative's, else the
    /// override's `InstanceType`, else `aws_ec2_instance_type`.
    fn instance_type_of(&self, index: u32) -> Result<String, BackendError> {
        let offered = self.offered(index)?;
        Ok(offered
            .instance_type
            .or_else(|| {
                self.overrides()
                    .and_then(|o| o.get("InstanceType"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| self.config().aws_ec2_instance_type.clone()))
    }

    /// The subnet offering `index` launches in (`None`: EC2's default subnet).
    fn subnet_of(&self, index: u32) -> Result<Option<String>, BackendError> {
        let offered = self.offered(index)?;
        Ok(offered.subnet_id.or_else(|| {
            self.overrides()
                .and_then(|o| o.get("SubnetId"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .or_else(|| self.config().aws_ec2_subnet_id.clone())
        }))
    }

    /// [`VmProvider::resize`]: the stopped instance `vm_id` to offering `index`'s instance
    /// type (`DescribeInstances`, then `ModifyInstanceAttribute` unless it has that type).
    pub(crate) async fn resize_vm(&self, vm_id: &str, index: u32) -> Result<(), BackendError> {
        let name = &self.config().name;
        let (target, subnet) = (self.instance_type_of(index)?, self.subnet_of(index)?);
        let span = tracing::info_span!("aws_resize", provider = %name, vm = vm_id, offering = index, instance_type = %target);
        async {
            let answer = self
                .client()
                .describe_instances()
                .instance_ids(vm_id)
                .send()
                .await
                .map_err(classify)?;
            let instance = answer
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(vm_id))
                .ok_or_else(|| BackendError::NotFound(format!("{name}: no instance {vm_id}")))?;
            let state = instance.state().and_then(InstanceState::name);
            match state {
                Some(InstanceStateName::Stopped) => {}
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown) => {
                    return Err(BackendError::NotFound(format!(
                        "{name}: cannot resize {vm_id}: the instance is terminated"
                    )));
                }
                Some(InstanceStateName::Stopping) => {
                    return Err(BackendError::Transient(format!(
                        "{name}: cannot resize {vm_id} yet: the instance is still stopping"
                    )));
                }
                other => {
                    return Err(BackendError::InvalidRequest(format!(
                        "{name}: cannot resize {vm_id}: only a stopped instance changes its type, it is {}",
                        other.map_or("in no known state", |s| s.as_str())
                    )));
                }
            }
            if let (Some(want), Some(has)) = (subnet.as_deref(), instance.subnet_id())
                && want != has
            {
                return Err(BackendError::InvalidRequest(format!(
                    "{name}: cannot move {vm_id} to offering {index}: it is in subnet {has}, the offering in {want} (a stopped instance keeps its subnet)"
                )));
            }
            if instance.instance_type().map(|t| t.as_str()) == Some(target.as_str()) {
                return Ok(());
            }
            tracing::info!("changing the instance type");
            let result = self
                .client()
                .modify_instance_attribute()
                .instance_id(vm_id)
                .instance_type(AttributeValue::builder().value(&target).build())
                .send()
                .await
                .map(|_| ())
                .map_err(classify);
            match result {
                // Started or stopping again since it was described: the controller's retry.
                Err(BackendError::InvalidRequest(m)) if m.starts_with(INCORRECT_STATE) => {
                    Err(BackendError::Transient(format!("{name}: resize of {vm_id}: {m}")))
                }
                other => other,
            }
        }
        .instrument(span)
        .await
    }

    /// One power call in its span, its answer read by the contract's rules.
    async fn power(&self, vm_id: &str, action: Power) -> Result<(), BackendError> {
        let span = tracing::info_span!(
            "aws_power",
            provider = %self.config().name,
            action = action.name(),
            vm = vm_id
        );
        async {
            tracing::info!("sending the power action");
            let answer = match action {
                Power::Stop { hibernate } => self
                    .client()
                    .stop_instances()
                    .instance_ids(vm_id)
                    .hibernate(hibernate)
                    .send()
                    .await
                    .map(|a| a.stopping_instances().to_vec())
                    .map_err(classify),
                Power::Start => self
                    .client()
                    .start_instances()
                    .instance_ids(vm_id)
                    .send()
                    .await
                    .map(|a| a.starting_instances().to_vec())
                    .map_err(classify),
            };
            let result = match answer {
                Ok(changes) => self.changed(vm_id, action, &changes),
                Err(BackendError::InvalidRequest(m)) if m.starts_with(INCORRECT_STATE) => {
                    self.incorrect_state(vm_id, action, m).await
                }
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => tracing::info!("power action accepted"),
                Err(e) => tracing::warn!(error = %e, "power action failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// The state change EC2 reported: a terminated (or terminating) instance does not exist
    /// for the contract.
    fn changed(
        &self,
        vm_id: &str,
        action: Power,
        changes: &[InstanceStateChange],
    ) -> Result<(), BackendError> {
        let now = changes
            .iter()
            .find(|c| c.instance_id() == Some(vm_id))
            .and_then(|c| c.current_state())
            .and_then(InstanceState::name);
        match now {
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown) => {
                Err(self.gone(vm_id, action))
            }
            Some(_) => Ok(()),
            None => Err(BackendError::Transient(format!(
                "{}: {} of {vm_id}: EC2 answered without the instance's state",
                self.config().name,
                action.name()
            ))),
        }
    }

    /// `IncorrectInstanceState`: looks the instance up. Gone is `NotFound`; already where the
    /// action takes it (a stop of a stopping instance, a start of a pending one) is done; on its
    /// way elsewhere (a start of a stopping instance) is transient, for the controller's retry.
    async fn incorrect_state(
        &self,
        vm_id: &str,
        action: Power,
        message: String,
    ) -> Result<(), BackendError> {
        let state = VmProvider::get(self, vm_id).await?.map(|v| v.state);
        match (action, state) {
            (_, None | Some(VmState::Terminated)) => Err(self.gone(vm_id, action)),
            (Power::Stop { .. }, Some(VmState::Stopping | VmState::Stopped))
            | (Power::Start, Some(VmState::Pending | VmState::Running)) => Ok(()),
            _ => Err(BackendError::Transient(format!(
                "{}: {} of {vm_id}: {message}",
                self.config().name,
                action.name()
            ))),
        }
    }

    fn gone(&self, vm_id: &str, action: Power) -> BackendError {
        BackendError::NotFound(format!(
            "{}: cannot {} {vm_id}: the instance is terminated",
            self.config().name,
            action.name()
        ))
    }
}
