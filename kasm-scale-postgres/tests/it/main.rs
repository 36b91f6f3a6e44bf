//! The integration tests of kasm-scale-postgres: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

mod common;

mod db_faults;
mod drains;
mod failover;
mod lease;
mod partition;
mod restart;
mod store;
mod url_rules;
mod warm_takeover;
