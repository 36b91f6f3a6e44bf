//! kasm-scale on Azure Resource Manager: [`AzureProvider`] implements
//! [`VmProvider`](kasm_scale_core::traits::VmProvider) on ARM's REST API (no maintained Rust SDK
//! covers compute management). [`AzureCredential`] gets and caches
//! OAuth2 client-credentials tokens for a service principal on the configured cloud
//! ([`CloudEndpoints`]); [`ResourceManager`] sends ARM REST requests with a pinned api-version
//! ([`COMPUTE_API_VERSION`], [`NETWORK_API_VERSION`]), classifies errors, handles throttling and
//! follows long-running operations.

mod arm;
mod auth;
mod provider;

pub use arm::{
    Answer, COMPUTE_API_VERSION, NETWORK_API_VERSION, ResourceManager, classify, http_client,
};
pub use auth::{AzureCredential, CloudEndpoints};
pub use provider::{AzureProvider, AzureProviderBuilder};
