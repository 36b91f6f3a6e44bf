//! kasm-scale core: auto-scaling of remote-desktop server pools the way Kasm Workspaces does it.
//!
//! observe (servers, sessions, provider inventory) → plan (pure) → execute through providers →
//! record → repeat. This crate holds everything cloud-neutral; the provider crates implement the
//! cloud and directory traits.
//!
//! - [`config`]: the Kasm-compatible configuration model, loading and validation.
//! - [`secret`]: the redacting [`Secret`] type.

pub mod config;
pub mod controller;
pub mod engine;
pub mod input;
pub mod memory;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod template;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod token;
pub mod traits;

pub use config::{Config, ConfigError, Format, Loaded, Problem, Severity, load_file, load_str};
pub use input::{MAX_INPUT_FILE_BYTES, read_input_file};
pub use secret::Secret;
