//! kasm-scale on Azure Resource Manager (work in progress): [`AzureCredential`] gets and caches
//! OAuth2 client-credentials tokens for a service principal on the configured cloud
//! ([`CloudEndpoints`]). The `VmProvider` on ARM's REST API builds on it.

mod auth;

pub use auth::{AzureCredential, CloudEndpoints};
