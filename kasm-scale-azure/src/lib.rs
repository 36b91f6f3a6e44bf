//! kasm-scale on Azure Resource Manager (work in progress): [`AzureCredential`] gets and caches
//! OAuth2 client-credentials tokens for a service principal on the configured cloud
//! ([`CloudEndpoints`]); [`ResourceManager`] sends ARM REST requests with a pinned api-version
//! ([`COMPUTE_API_VERSION`], [`NETWORK_API_VERSION`]), classifies errors, handles throttling and
//! follows long-running operations. The `VmProvider` builds on them.

mod arm;
mod auth;

pub use arm::{Answer, COMPUTE_API_VERSION, NETWORK_API_VERSION, ResourceManager, classify};
pub use auth::{AzureCredential, CloudEndpoints};
