//! The integration tests of the facade and the `kasm-scale` command: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see the `[[test]]` entries of the crates that have one).

mod common;

mod cli_closed_stdout;
mod cli_input_files;
mod cli_plan;
mod cli_render;
mod cli_serve;
#[cfg(feature = "cli")]
mod cli_serve_reload;
#[cfg(all(feature = "cli", feature = "postgres", feature = "testkit"))]
mod cli_serve_replicas;
#[cfg(all(feature = "cli", feature = "postgres", feature = "testkit"))]
mod cli_serve_replicas_reload;
#[cfg(all(feature = "cli", feature = "aws"))]
mod cli_serve_restart;
#[cfg(all(feature = "cli", feature = "sim"))]
mod cli_simulate;
#[cfg(all(feature = "cli", feature = "sim"))]
mod cli_simulate_changes;
mod cli_validate;
mod docs_match_code;
#[cfg(all(feature = "http", feature = "testkit"))]
mod examples;
mod readme;
mod render_differential;
mod serve_build;
