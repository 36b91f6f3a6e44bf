//! The integration tests of kasm-scale-aws: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

#[path = "../support/mod.rs"]
mod support;

mod credentials;
mod ec2;
mod ec2_controller;
mod ec2_faults;
mod ec2_idempotency;
mod ec2_offerings;
mod ec2_power;
mod ec2_resume;
mod ec2_rollout;
mod ec2_warm;
mod override_shape;
