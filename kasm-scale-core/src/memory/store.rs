//! [`MemoryStore`]: a [`StateStore`] in this process's memory.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::controller::Records;
use crate::traits::{StateStore, StoreError};

/// A store in this process's memory: it survives dropping a controller (clone it into the next),
/// not a process restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Option<Records>>>);

impl MemoryStore {
    /// Forgets what was saved (a lost database, for tests of that case).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(records.clone());
        Ok(())
    }

    fn durable(&self) -> bool {
        false
    }
}
