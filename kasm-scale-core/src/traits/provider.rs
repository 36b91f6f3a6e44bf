//! [`VmProvider`]: a cloud that creates and destroys the servers' VMs.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::{BackendError, Owner};
use crate::secret::Secret;

/// What to create: everything a provider needs beyond its own config.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    /// Who owns it (becomes the owner tags), including the server id that makes `create`
    /// idempotent.
    pub owner: Owner,
    /// The server's host name (`server_hostname`), ≤ 15 characters.
    pub hostname: String,
    /// The rendered startup script (user data / custom data). Secret.
    pub startup_script: Secret,
    /// (ours) Which offering of the VM provider config to create it from
    /// ([`VmProviderConfig::offerings`](crate::config::VmProviderConfig::offerings)): 0 for the
    /// config's own instance type (size), subnet (zone); `i` for its `alternatives[i - 1]`. A
    /// provider refuses an index its config does not have (`InvalidRequest`).
    pub offering: u32,
}

/// Where a VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmState {
    /// Being created or booting.
    Pending,
    /// Running.
    Running,
    /// Being stopped (or hibernated, deallocated) or deleted.
    Stopping,
    /// Stopped, hibernated or deallocated: it still exists with its disk, name and tags (and
    /// may still cost storage), but serves no one. A server the controller stopped into its
    /// warm tier; for any other server, a guest that shut its OS down or a person who stopped
    /// it.
    Stopped,
    /// The cloud failed to create or start it (Azure `provisioningState` `Failed`); it will not
    /// serve.
    Failed,
    /// Gone (some clouds list terminated VMs for a while).
    Terminated,
}

impl VmState {
    /// Whether a VM in this state exists but will never serve a session, for a server that is
    /// not in (or on its way to or from) its warm tier: the controller destroys its server (and
    /// the VM) and replaces it.
    pub fn is_dead(self) -> bool {
        matches!(self, Self::Stopping | Self::Stopped | Self::Failed)
    }
}

/// A VM as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    /// The provider's id (EC2 instance id, Azure resource id, …).
    pub vm_id: String,
    /// Its owner, read back from its tags.
    pub owner: Owner,
    /// Where it is.
    pub state: VmState,
    /// Its private address, once known.
    pub private_ip: Option<String>,
    /// When the provider created it, if it says.
    pub created_at: Option<Timestamp>,
}

/// A part of a VM that exists without its VM (a NIC, public IP or disk left behind by a create
/// that failed half-way or a destroy that was cut short), as the provider lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    /// The provider's id of the part (Azure resource id, …): what
    /// [`VmProvider::remove_leftover`] takes.
    pub id: String,
    /// What it is, for logs and events (`networkInterface`, `publicIPAddress`, `disk`, …).
    pub kind: String,
    /// Its owner, read back from its tags.
    pub owner: Owner,
}

/// What a provider can do beyond the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The largest rendered startup script it delivers, in bytes.
    pub max_startup_script_bytes: Option<usize>,
    /// It can report a Windows administrator password.
    pub retrieve_password: bool,
    /// How long one `create` or `destroy` (and `remove_leftover`, `stop`, `start`) may take, when they follow a
    /// long-running operation of the cloud to its end (an Azure VM create or delete takes
    /// minutes) and bound their own wait by it. The controller then bounds those calls by it
    /// (plus one call timeout for the last request) instead of the single-call timeout, and
    /// frees their concurrency slot once they outlive one call timeout. `None`: they are single
    /// calls like any other.
    pub operation_timeout: Option<Duration>,
    /// (ours) It implements [`VmProvider::stop`] and [`VmProvider::start`], so its servers can
    /// keep a warm tier.
    pub stop_start: bool,
    /// (ours) Its `stop` can hibernate ([`StopMode::Hibernate`]).
    pub hibernate: bool,
    /// (ours) It implements [`VmProvider::resize`]: a stopped VM can be moved to another
    /// offering of its config in the same placement (another EC2 instance type in the same
    /// subnet, another Azure size in the same zone), so that a start refused for capacity moves
    /// to the next size at once instead of waiting for a cold build. (A wrapper that hands on
    /// its inner provider's capabilities hands on `resize` too, as it does `stop` and `start`.)
    pub resize_stopped: bool,
}

/// (ours) How [`VmProvider::stop`] stops a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StopMode {
    /// Shut down (Azure: power off and deallocate, so that compute is no longer billed).
    #[default]
    Stop,
    /// Hibernate: memory kept on disk, the next start resumes it (EC2, for instances launched
    /// with hibernation configured; [`Capabilities::hibernate`]).
    Hibernate,
}

/// A cloud that creates and destroys VMs for servers.
///
/// # Contract
/// - `create` is idempotent on `spec.owner.server_id`: when a VM for that server already exists
///   (a retry after a lost answer, or after a restart), it is returned instead of a second one.
/// - Every VM carries the owner tags of [`Owner::tags`], so that [`VmProvider::list`] finds it
///   and a restarted controller can adopt it.
/// - `destroy` of a VM that does not exist (or is already terminated) is `Ok`.
/// - `list` returns every VM of `owner_id` that is not terminated, across all pages.
/// - `get` returns `Ok(None)` for a VM that does not exist.
/// - (ours, optional: [`Capabilities::stop_start`]) `stop` and `start` are idempotent: a stop of
///   a stopped (or stopping) VM and a start of a running (or pending) VM are `Ok`; both of a VM
///   that does not exist are `NotFound`. A stopped VM keeps its disk, name, tags and AD record;
///   `get` and `list` report it [`VmState::Stopped`] (after [`VmState::Stopping`]) and, once
///   started again, `Pending` then `Running`. A start that the cloud refuses for capacity is
///   [`BackendError::Capacity`]. When the cloud runs them as long-running operations (Azure's
///   deallocate and start), they follow them to the end within
///   [`Capabilities::operation_timeout`], as `create` does.
/// - Errors are classified ([`BackendError`]) and never contain secrets.
/// - One attempt per call: the controller is the only retry layer. It bounds each call in time
///   (a `create` or `destroy` by [`Capabilities::operation_timeout`] when one is given),
///   paces calls and retries retryable errors (rate limits after their `retry_after`, capacity,
///   transient faults) with jittered backoff. An implementation does not retry a failed request
///   itself; inside one call it may re-authenticate once after its credentials were refused,
///   poll a long-running operation to its end, replace a dead pooled connection once, and look
///   the server-id tag up before a repeated `create`.
///
/// # Examples
///
/// `examples/custom_provider.rs` writes a provider for a made-up cloud over HTTP; the
/// conformance suite (`testkit::vm_provider_contract`, feature `testkit`) checks this contract
/// against a real backend. Handing a provider to the controller:
///
/// ```
/// use std::sync::Arc;
///
/// use kasm_scale_core::config::VmProviderConfig;
/// use kasm_scale_core::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = load_str(
///     r#"
///     [[vm_providers]]
///     provider = "memory"
///     name = "cloud"
///     max_instances = 4
///     "#,
///     Format::Toml,
/// )?
/// .config;
/// let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else { unreachable!() };
/// let provider: Arc<dyn VmProvider> = Arc::new(MemoryCloud::new(memory, 7));
/// assert_eq!(provider.name(), "cloud"); // the config's name: the controller routes by it
/// let scaler = Autoscaler::builder(config).owner_id("broker-eu-1").provider(provider).build()?;
/// # let _ = scaler;
/// # Ok(())
/// # }
/// ```
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait VmProvider: Send + Sync + fmt::Debug {
    /// The VM provider config name this provider serves.
    fn name(&self) -> &str;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Creates (or finds) the VM of `spec.owner.server_id`.
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError>;

    /// Destroys a VM and what was created with it.
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError>;

    /// One VM by id.
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError>;

    /// Every live VM owned by `owner_id`.
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError>;

    /// Every part owned by `owner_id` whose VM does not exist (see [`Leftover`]). The
    /// controller lists them on its reconcile cadence and removes each one that is still listed
    /// after the orphan grace period and belongs to no server being created. The default (a
    /// cloud whose VMs own no separate parts) lists none.
    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        let _ = owner_id;
        Ok(Vec::new())
    }

    /// Removes one part listed by [`VmProvider::list_leftovers`]; removing a part that no
    /// longer exists is `Ok`. The default refuses (it lists none).
    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        Err(BackendError::InvalidRequest(format!(
            "{}: this provider lists no leftovers, so it cannot remove {id}",
            self.name()
        )))
    }

    /// (ours) Stops a VM (shut down or hibernated, `mode`), keeping its disk, name and tags:
    /// see the contract. The default refuses ([`Capabilities::stop_start`] is false).
    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        let _ = mode;
        Err(BackendError::InvalidRequest(format!(
            "{}: this provider cannot stop {vm_id}",
            self.name()
        )))
    }

    /// (ours) Starts a stopped VM again: see the contract. The default refuses
    /// ([`Capabilities::stop_start`] is false).
    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        Err(BackendError::InvalidRequest(format!(
            "{}: this provider cannot start {vm_id}",
            self.name()
        )))
    }

    /// (ours) Moves a stopped VM to offering `offering` of its config (its instance type or
    /// size; [`VmProviderConfig::offerings`](crate::config::VmProviderConfig::offerings)),
    /// keeping its disk, name, tags and AD record. The controller asks only for an offering in
    /// the VM's placement ([`VmProviderConfig::same_placement`](crate::config::VmProviderConfig::same_placement)).
    /// Contract: moving a VM to the offering it has is `Ok`; a VM that does not exist is
    /// `NotFound`; one still stopping is `Transient`; one that runs, or an offering the config
    /// does not have or that is placed elsewhere, is `InvalidRequest`. The default refuses
    /// ([`Capabilities::resize_stopped`] is false).
    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        Err(BackendError::InvalidRequest(format!(
            "{}: this provider cannot move {vm_id} to offering {offering}",
            self.name()
        )))
    }

    /// The Windows administrator password of a VM, when the provider can tell it
    /// ([`Capabilities::retrieve_password`]): `Ok(None)` while the cloud has not made it
    /// available yet (EC2 takes a few minutes after boot). The default refuses.
    async fn retrieve_password(&self, vm_id: &str) -> Result<Option<Secret>, BackendError> {
        Err(BackendError::InvalidRequest(format!(
            "{}: this provider cannot retrieve the password of {vm_id}",
            self.name()
        )))
    }
}
