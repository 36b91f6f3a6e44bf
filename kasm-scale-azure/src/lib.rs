//! kasm-scale on Azure Resource Manager: [`AzureProvider`] implements
//! [`VmProvider`](kasm_scale_core::traits::VmProvider) on ARM's REST API (no maintained Rust SDK
//! covers compute management). [`AzureCredential`] gets and caches
//! OAuth2 client-credentials tokens for a service principal on the configured cloud
//! ([`CloudEndpoints`]); inside the crate, the Resource Manager client sends ARM REST requests
//! with the api-version of their resource type (`2024-07-01` for VMs, `2025-01-02` for managed
//! disks, `2024-05-01` for NICs and public IPs; operations are polled at the URL ARM gives),
//! sends the token to the configured Resource Manager only, classifies errors, paces calls on
//! ARM's remaining request budgets (`x-ms-ratelimit-remaining-*`) and follows long-running
//! operations.
//!
//! Who retries: not this crate. Every ARM request is one attempt and comes back classified (429
//! → rate limited with ARM's `Retry-After`; 5xx, timeouts and connection failures → transient;
//! allocation failures → capacity); the controller's retry policy retries the retryable ones.
//! Inside a call, only a token refused with 401 is renewed once, and long-running operations are
//! polled to their end; a failed poll ends the call with its error. A repeated or resumed
//! `create` of a server finds its VM by name (also when an earlier attempt's PUT lands while
//! it runs) and takes it up as it is: ARM refuses to change a VM's custom data.
//!
//! Long-running operations: a VM create (NIC, VM, OS disk tags) or delete is one operation of
//! minutes, bounded by `api_operation_timeout` (30 minutes by default), each request by
//! `api_call_timeout`. The provider reports that budget in
//! [`Capabilities::operation_timeout`](kasm_scale_core::traits::Capabilities::operation_timeout),
//! so that the controller bounds `create` and `destroy` by it, not by one call's timeout.
//!
//! Stop and start (the warm tier): `stop` deallocates (`POST …/deallocate`: a VM that is only
//! powered off is still billed for its compute) and `start` starts (`POST …/start`), each a
//! long-running operation followed to its end within the same budget; hibernation is not
//! offered. `get` and `list` read the power state from the instance view: `deallocated` and
//! `stopped` are stopped (also when a start that failed for capacity left the VM `Failed`),
//! `deallocating` and `stopping` are stopping, `starting` is pending. Allocation failures
//! (`AllocationFailed`, `ZonalAllocationFailed`, `SkuNotAvailable`, the `Overconstrained…`
//! codes) of a create or start are capacity errors.
//!
//! Offerings: `VmSpec::offering` `i` creates the VM with the size and zone of
//! `alternatives[i - 1]` (0: `azure_vm_size` and `azure_zone`; a field an alternative leaves
//! out is the config's). A create that finds a `Failed` VM of its server (an earlier attempt,
//! maybe on another offering, whose cleanup did not go through) removes it and its parts
//! before making it again: a VM cannot change its zone.

mod adopt;
mod arm;
mod auth;
mod overrides;
mod parts;
mod power;
mod provider;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;
mod vm_state;

pub use auth::{AzureCredential, CloudEndpoints};
pub use provider::{AzureProvider, AzureProviderBuilder};
