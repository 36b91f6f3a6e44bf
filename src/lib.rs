//! kasm-scale: auto-scale pools of remote-desktop servers on AWS and Azure the way Kasm
//! Workspaces does, for session brokers that embed it.
//!
//! observe (servers, sessions, provider inventory) → plan (pure) → execute through providers →
//! record → repeat.
//!
//! This facade re-exports [`kasm_scale_core`]; cloud providers and the Active Directory
//! directory are added behind the `aws`, `azure` and `ldap` features by their own crates.
//! An embedder's `main` needs one import, [`prelude`]; the README shows it serving a broker in
//! twenty lines, and [`backends`] builds what a configuration names.
//!
//! # Examples
//!
//! ```no_run
//! let loaded = kasm_scale::load_file("kasm-scale.toml")?;
//! for warning in &loaded.warnings {
//!     eprintln!("{warning}");
//! }
//! for (pool, config) in loaded.config.autoscale_configs() {
//!     println!("{} feeds {}", config.autoscale_config_name, pool.server_pool_name);
//! }
//! # Ok::<(), kasm_scale::ConfigError>(())
//! ```

pub use kasm_scale_core::*;

pub mod backends;

/// What an embedder's `main` uses, in one import: `use kasm_scale::prelude::*;`.
///
/// Everything in [`kasm_scale_core::prelude`] (the controller and its builder, the
/// configuration loader, the backend traits and their in-memory implementations, session
/// requests and outcomes, the error types), [`backends::from_config`] and what it builds, and
/// with the feature `http` the service's [`ServeOptions`](kasm_scale_http::ServeOptions).
pub mod prelude {
    pub use crate::backends::{Backends, BackendsError, from_config};
    pub use kasm_scale_core::prelude::*;
    #[cfg(feature = "http")]
    pub use kasm_scale_http::ServeOptions;
}

/// Amazon EC2 ([`aws::AwsProvider`]), with the feature `aws`.
#[cfg(feature = "aws")]
pub use kasm_scale_aws as aws;

/// Active Directory computer records ([`ldap::LdapDirectory`]), with the feature `ldap`.
#[cfg(feature = "ldap")]
pub use kasm_scale_ldap as ldap;

/// Azure Resource Manager ([`azure::AzureProvider`]), with the feature `azure`.
#[cfg(feature = "azure")]
pub use kasm_scale_azure as azure;

/// Kasm's guest check-in API and health probes as an axum Router ([`http::router`]), with the
/// feature `http`.
#[cfg(feature = "http")]
pub use kasm_scale_http as http;

/// PostgreSQL state shared by several replicas ([`postgres::PostgresStore`],
/// [`postgres::LeaseKeeper`]), with the feature `postgres`.
#[cfg(feature = "postgres")]
pub use kasm_scale_postgres as postgres;

/// Compiles the README's and the guides' Rust examples as doc tests (the guides' `ignore`d
/// fragments excepted: they show one call out of its context).
#[cfg(doctest)]
mod doc_pages {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/embedding.md")]
    struct Embedding;
    #[doc = include_str!("../docs/aws.md")]
    struct Aws;
    #[doc = include_str!("../docs/azure.md")]
    struct Azure;
    #[doc = include_str!("../docs/active-directory.md")]
    struct ActiveDirectory;
}
