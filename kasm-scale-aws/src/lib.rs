//! kasm-scale on Amazon EC2: [`AwsProvider`] implements
//! [`VmProvider`](kasm_scale_core::traits::VmProvider) with the official AWS SDK.
//!
//! observe → plan → execute: this crate is the execute step for EC2. Every instance and its
//! volumes carry the owner tags; `create` is idempotent on the server id (the server id is the
//! `ClientToken`, and a repeated create looks the server-id tag up before it sends RunInstances
//! again, since emulators ignore client tokens). `aws_ec2_config_override` is deep-merged into the
//! RunInstances request (the keys and rules are in docs/aws.md), and
//! `retrieve_password` decrypts the Windows administrator password with the key pair.
//! Instances are launched with `InstanceInitiatedShutdownBehavior = terminate` unless the
//! override says otherwise, so a VM shut down from inside does not linger stopped.
//!
//! The warm tier: `stop` is StopInstances (with `Hibernate` for a warm tier that asks, on
//! instances launched with hibernation configured: `aws_ec2_hibernation`), `start` is
//! StartInstances. Capacity fallback: the offering of `VmSpec::offering` picks the instance
//! type and subnet of one of the config's `alternatives`; `InsufficientInstanceCapacity` (also
//! of a start), `InsufficientFreeAddressesInSubnet` and `Unsupported` (a type not offered in
//! the subnet's zone) are capacity errors, on which the controller moves to the next offering.
//!
//! Who retries: not this crate. The SDK's retries are off and every call is one attempt
//! (`create` is one RunInstances, after the server-id lookup when it repeats a server); errors
//! come back classified (`RequestLimitExceeded` and the other throttling codes as rate limited,
//! capacity, 5xx, timeouts and dropped connections as transient) and the controller's retry
//! policy retries the retryable ones.

mod attempts;
mod errors;
mod launch;
mod password;
mod power;
mod provider;
mod request;

pub use provider::{AwsProvider, AwsProviderBuilder};

/// Checks a config's `aws_ec2_config_override` on its own, as [`AwsProviderBuilder::build`]
/// does: `Err((path, reason))` with the path under the override (`aws_ec2_config_override.
/// MetadataOptions.HttpTokens`) for an unknown key, a wrong type, a value outside EC2's list or a
/// key kasm-scale sets itself.
pub fn check_override(
    config: &kasm_scale_core::config::AwsVmConfig,
) -> Result<(), (String, String)> {
    match &config.aws_ec2_config_override {
        Some(o) if !o.0.is_empty() => launch::check_override(o).map_err(|m| {
            let (path, reason) = m
                .split_once(": ")
                .unwrap_or(("aws_ec2_config_override", &m));
            (path.to_owned(), reason.to_owned())
        }),
        _ => Ok(()),
    }
}
