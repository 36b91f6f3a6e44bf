//! [`StateStore`]: where the controller keeps what the clouds and the directory cannot tell it
//! (sessions, queued requests, bookkeeping, check-in times) across restarts.

use std::fmt;

use async_trait::async_trait;

use crate::controller::Records;

/// Why a store could not load or save. The message never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached now (retry later).
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// What the store holds cannot be read back.
    #[error("saved state unreadable: {0}")]
    Corrupt(String),
    /// Another process holds the store (a second service on the same state file).
    #[error("state store in use: {0}")]
    Locked(String),
    /// Another controller holds the state (a newer leader wrote it).
    #[error("state store refused the write: {0}")]
    Fenced(String),
}

/// Keeps the controller's records across restarts. The clouds and the directory stay the source
/// of truth for what exists: after loading, the controller reconciles the records with them.
///
/// # Contract
/// `save` replaces what was saved before; `load` returns the last saved records (or `None` when
/// nothing was ever saved).
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The last saved records.
    async fn load(&self) -> Result<Option<Records>, StoreError>;
    /// Saves the records.
    async fn save(&self, records: &Records) -> Result<(), StoreError>;
    /// Whether what it saves survives this process (a file, a database: the default). A broker
    /// is answered only once its change is saved to a durable store; a store that is not
    /// durable (this process's memory) answers at once even when a save failed.
    fn durable(&self) -> bool {
        true
    }
}
