//! The integration tests of kasm-scale-azure: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod controller;
mod long_operations;
mod parts;
mod power;
mod provider;
mod resize;
mod restart;
mod resume;
mod rollout;
mod states;
