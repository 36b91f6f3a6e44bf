//! The integration tests of kasm-scale-ldap: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

mod common;

mod controller;
mod retry;
mod samba;
mod tls;
