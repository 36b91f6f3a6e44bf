//! [`Guarded`]: the decorator every backend the controller calls is wrapped in, once, by the
//! builder. It implements the trait it wraps ([`VmProvider`], [`DirectoryService`],
//! [`StateStore`]), and runs each call in a `tracing` span within the backend's [`Guard`]:
//! concurrency limit, rate limit, timeout (a `create`, `destroy` or `remove_leftover` by the
//! provider's [`Capabilities::operation_timeout`] when it has one) and retry with jittered
//! backoff of the retryable errors. So the controller's call sites are plain trait calls, and
//! the limits are in one place, as in `tower`'s layers or `object_store`'s `LimitStore` and
//! `ThrottledStore`.
//!
//! It lives in the controller, not beside the traits: what it applies is the controller's
//! policy (the builder's limits and [`RetryPolicy`](super::RetryPolicy), the controller's
//! seeded randomness for the jitter).
//!
//! Span fields name the backend, the call and what it is about (server id, VM id, host name,
//! container, record count); never a startup script, a password or a token.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use super::backend::Guard;
use super::records::Records;
use crate::secret::Secret;
use crate::traits::{
    BackendError, Capabilities, ComputerRecord, ComputerSpec, DirectoryService, Leftover,
    StateStore, StopMode, StoreError, Vm, VmProvider, VmSpec,
};

/// How long one load or save may take before it fails as [`StoreError::Unavailable`] (ours): a
/// hung database must not hang the controller.
pub const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A backend whose every call runs within its [`Guard`] and in a span of its own.
#[derive(Debug)]
pub(crate) struct Guarded<B: ?Sized> {
    inner: Arc<B>,
    guard: Guard,
}

impl<B: ?Sized> Guarded<B> {
    /// `inner`, called within `guard`.
    pub(crate) fn new(inner: Arc<B>, guard: Guard) -> Self {
        Self { inner, guard }
    }

    /// The time one attempt of a call may take.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.guard.timeout()
    }
}

/// The span of one provider call.
macro_rules! vm_span {
    ($self:ident, $call:literal $(, $($field:tt)*)?) => {
        tracing::debug_span!("vm_provider", backend = %$self.guard.name(), call = $call $(, $($field)*)?)
    };
}

/// The span of one directory call.
macro_rules! directory_span {
    ($self:ident, $call:literal $(, $($field:tt)*)?) => {
        tracing::debug_span!("directory", backend = %$self.guard.name(), call = $call $(, $($field)*)?)
    };
}

#[async_trait]
impl VmProvider for Guarded<dyn VmProvider> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let span =
            vm_span!(self, "create", server = %spec.owner.server_id, hostname = %spec.hostname);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .placement("create", budget, || self.inner.create(spec))
            .instrument(span)
            .await
    }

    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        let span = vm_span!(self, "destroy", vm = vm_id);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .operation("destroy", budget, || self.inner.destroy(vm_id))
            .instrument(span)
            .await
    }

    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        let span = vm_span!(self, "stop", vm = vm_id, mode = ?mode);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .operation("stop", budget, || self.inner.stop(vm_id, mode))
            .instrument(span)
            .await
    }

    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        let span = vm_span!(self, "start", vm = vm_id);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .placement("start", budget, || self.inner.start(vm_id))
            .instrument(span)
            .await
    }

    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        let span = vm_span!(self, "resize", vm = vm_id, offering);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .operation("resize", budget, || self.inner.resize(vm_id, offering))
            .instrument(span)
            .await
    }

    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        let span = vm_span!(self, "get", vm = vm_id);
        self.guard
            .call("get", || self.inner.get(vm_id))
            .instrument(span)
            .await
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        let span = vm_span!(self, "list", owner = owner_id);
        self.guard
            .call("list", || self.inner.list(owner_id))
            .instrument(span)
            .await
    }

    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        let span = vm_span!(self, "list_leftovers", owner = owner_id);
        self.guard
            .call("list_leftovers", || self.inner.list_leftovers(owner_id))
            .instrument(span)
            .await
    }

    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        let span = vm_span!(self, "remove_leftover", part = id);
        let budget = self.inner.capabilities().operation_timeout;
        self.guard
            .operation("remove_leftover", budget, || self.inner.remove_leftover(id))
            .instrument(span)
            .await
    }

    async fn retrieve_password(&self, vm_id: &str) -> Result<Option<Secret>, BackendError> {
        let span = vm_span!(self, "retrieve_password", vm = vm_id);
        self.guard
            .call("retrieve_password", || self.inner.retrieve_password(vm_id))
            .instrument(span)
            .await
    }
}

#[async_trait]
impl DirectoryService for Guarded<dyn DirectoryService> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn domain(&self) -> &str {
        self.inner.domain()
    }

    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError> {
        let span = directory_span!(
            self,
            "create_computer",
            server = %spec.owner.server_id,
            name = %spec.name,
            container = %spec.container_dn
        );
        self.guard
            .call("create_computer", || self.inner.create_computer(spec))
            .instrument(span)
            .await
    }

    async fn delete_computer(
        &self,
        container_dn: &str,
        name: &str,
        recursive: bool,
    ) -> Result<(), BackendError> {
        let span = directory_span!(
            self,
            "delete_computer",
            name,
            container = container_dn,
            recursive
        );
        self.guard
            .call("delete_computer", || {
                self.inner.delete_computer(container_dn, name, recursive)
            })
            .instrument(span)
            .await
    }

    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError> {
        let span = directory_span!(
            self,
            "list_computers",
            owner = owner_id,
            containers = containers.len()
        );
        self.guard
            .call("list_computers", || {
                self.inner.list_computers(owner_id, containers)
            })
            .instrument(span)
            .await
    }
}

#[async_trait]
impl StateStore for Guarded<dyn StateStore> {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        let span = tracing::debug_span!("state_store", backend = %self.guard.name(), call = "load");
        self.guard
            .call("load", || self.inner.load())
            .instrument(span)
            .await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let span = tracing::debug_span!(
            "state_store",
            backend = %self.guard.name(),
            call = "save",
            servers = records.servers.len()
        );
        self.guard
            .call("save", || self.inner.save(records))
            .instrument(span)
            .await
    }

    fn durable(&self) -> bool {
        self.inner.durable()
    }
}

#[cfg(test)]
#[path = "guarded_tests.rs"]
mod tests;
