//! [`StateStoreConfig`]: where the controller keeps its records across restarts (section
//! `state_store`, ours).

use serde::{Deserialize, Serialize};

/// The kinds of state store a configuration can name.
pub const STATE_STORE_KINDS: [&str; 3] = ["memory", "file", "postgres"];

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
    /// PostgreSQL: durable, and shared by several replicas of which one leads (lease).
    Postgres(PostgresStoreConfig),
}

/// The `postgres` state store's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresStoreConfig {
    /// `postgres://user@host:port/database`, without a password (give it in `password_env` or
    /// `password_file`).
    pub url: String,
    /// An environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file holding the password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// The CA certificate (PEM) that signed the server's certificate: TLS to the database.
    /// Without it the connection is plain, which is allowed only to a loopback host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// Connections kept open (ours: 8).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Seconds a leader's lease lasts without renewal (ours: 15); renewed every third of it.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: u32,
}

fn default_pool_size() -> u32 {
    8
}

fn default_lease_ttl() -> u32 {
    15
}

/// The `file` state store's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The file (created with mode 0600 at the first save; its directory must exist).
    pub path: String,
}

/// The range of `lease_ttl` (ours): below 3 s a renewal every second third leaves no slack for a
/// slow database; above 300 s a dead leader blocks every replica for minutes.
pub const LEASE_TTL_RANGE: std::ops::RangeInclusive<u32> = 3..=300;

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
