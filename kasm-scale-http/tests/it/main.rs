//! The integration tests of kasm-scale-http: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

#[path = "../common/mod.rs"]
mod common;

mod broker;
mod guest;
mod not_found;
mod operations;
mod retries;
mod session_answer;
