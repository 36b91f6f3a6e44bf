//! [`StateStoreConfig`]: where the controller keeps its records across restarts (section
//! `state_store`, ours).

use serde::{Deserialize, Serialize};

/// The kinds of state store a configuration can name.
pub const STATE_STORE_KINDS: [&str; 2] = ["memory", "file"];

/// Where the controller keeps what the clouds and the directory cannot tell it (sessions, the
/// queue, bookkeeping). Without the section: `memory`, which dies with the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StateStoreConfig {
    /// In the process's memory: a restart forgets sessions and the queue (the clouds' VMs are
    /// adopted with unknown sessions). A struct variant so that a stray field is refused.
    Memory {},
    /// A JSON file, replaced atomically on every change (one process per file).
    File(FileStoreConfig),
}

/// The `file` state store's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The file (created with mode 0600 at the first save; its directory must exist).
    pub path: String,
}

impl Default for StateStoreConfig {
    fn default() -> Self {
        Self::Memory {}
    }
}

impl StateStoreConfig {
    /// Whether what it holds survives a restart of the process.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::Memory {})
    }
}
