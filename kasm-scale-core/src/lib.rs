//! kasm-scale core: auto-scaling of remote-desktop server pools the way Kasm Workspaces does it.
//!
//! observe (servers, sessions, provider inventory) → plan (pure) → execute through providers →
//! record → repeat. This crate holds everything cloud-neutral; the provider crates implement the
//! cloud and directory traits.
//!
//! The names an embedder uses are re-exported here and gathered in [`prelude`]:
//! [`Autoscaler`] (built with [`Autoscaler::builder`]), [`load_file`], the backend traits
//! [`VmProvider`], [`DirectoryService`] and [`StateStore`], and their in-memory implementations.
//!
//! - [`config`]: the Kasm-compatible configuration model, loading and validation.
//! - [`controller`]: the [`Autoscaler`] and its records.
//! - [`engine`]: the pure planner (what to create and destroy, where a session goes).
//! - [`traits`]: the backend traits a cloud, a directory or a state store implements.
//! - [`memory`]: the in-memory cloud, directory and store.
//! - [`template`]: Kasm's startup-script template language.
//! - [`token`]: the signed check-in tokens.
//! - [`secret`]: the redacting [`Secret`] type.
//!
//! # Examples
//!
//! ```
//! use kasm_scale_core::prelude::*;
//!
//! // A configuration problem names its path and why.
//! let Err(ConfigError::Invalid { problems }) =
//!     load_str("[[vm_providers]]\nprovider = \"memory\"\nname = \"cloud\"\n", Format::Toml)
//! else {
//!     panic!("max_instances is required");
//! };
//! assert_eq!(problems[0].path, "vm_providers[0].max_instances");
//! ```
//!
//! [`Autoscaler`] has a whole pool kept warm on the in-memory cloud.

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
pub use controller::{
    Autoscaler, AutoscalerBuilder, CheckinStatus, ControllerError, Event, FileStore, PoolSpend,
    PoolStatus, Requested, Role, SessionId, SessionOutcome, SessionStatus, SetupError,
};
pub use engine::{ServerId, SessionRequest};
pub use input::{MAX_INPUT_FILE_BYTES, read_input_file};
pub use memory::{MemoryCloud, MemoryDirectory, MemoryStore};
pub use secret::Secret;
pub use traits::{
    BackendError, DirectoryService, StateStore, StoreError, Vm, VmProvider, VmSpec, VmState,
};

/// What an embedder's `main` uses, in one import: `use kasm_scale_core::prelude::*;`.
///
/// The controller and its builder, the configuration loader, the three backend traits with
/// what a provider takes and returns, their in-memory implementations, a session request and
/// its outcome, [`Secret`], and the error types.
pub mod prelude {
    pub use crate::config::{Config, ConfigError, Format, load_file, load_str};
    pub use crate::controller::{
        Autoscaler, AutoscalerBuilder, ControllerError, Event, SessionId, SessionOutcome,
        SetupError,
    };
    pub use crate::engine::{ServerId, SessionRequest};
    pub use crate::memory::{MemoryCloud, MemoryDirectory, MemoryStore};
    pub use crate::secret::Secret;
    pub use crate::traits::{
        BackendError, Capabilities, DirectoryService, Leftover, Owner, StateStore, StoreError, Vm,
        VmProvider, VmSpec, VmState,
    };
}
