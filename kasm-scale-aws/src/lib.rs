//! kasm-scale on Amazon EC2: [`AwsProvider`] implements
//! [`VmProvider`](kasm_scale_core::traits::VmProvider) with the official AWS SDK.
//!
//! observe → plan → execute: this crate is the execute step for EC2. Every instance and its
//! volumes carry the owner tags; `create` is idempotent on the server id (the server id is the
//! `ClientToken`, and a repeated create looks the server-id tag up before it sends RunInstances
//! again, since emulators ignore client tokens). `aws_ec2_config_override` is deep-merged into the
//! RunInstances request (the keys and rules are in the README, "On AWS"), and
//! `retrieve_password` decrypts the Windows administrator password with the key pair.

mod attempts;
mod errors;
mod launch;
mod password;
mod provider;

pub use provider::{AwsProvider, AwsProviderBuilder};
