//! kasm-scale on Amazon EC2: [`AwsProvider`] implements
//! [`VmProvider`](kasm_scale_core::traits::VmProvider) with the official AWS SDK.
//!
//! observe → plan → execute: this crate is the execute step for EC2. Every instance and its
//! volumes carry the owner tags; `create` is idempotent on the server id (the server id is the
//! `ClientToken`, and the server-id tag is looked up first, since emulators ignore client tokens).

mod errors;
mod launch;
mod password;
mod provider;

pub use provider::{AwsProvider, AwsProviderBuilder};
