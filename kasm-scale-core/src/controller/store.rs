//! [`StateStore`]: where the controller keeps what the clouds and the directory cannot tell it
//! (sessions, queued requests, bookkeeping, check-in times) across restarts.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::records::Records;

/// Keeps the controller's records across restarts. The clouds and the directory stay the source
/// of truth for what exists: after loading, the controller reconciles the records with them.
///
/// # Contract
/// `save` replaces what was saved before; `load` returns the last saved records (or `None`).
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The last saved records.
    async fn load(&self) -> Result<Option<Records>, String>;
    /// Saves the records.
    async fn save(&self, records: &Records) -> Result<(), String>;
}

/// A store in this process's memory: it survives dropping a controller (clone it into the next),
/// not a process restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Option<Records>>>);

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Option<Records>, String> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn save(&self, records: &Records) -> Result<(), String> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(records.clone());
        Ok(())
    }
}
