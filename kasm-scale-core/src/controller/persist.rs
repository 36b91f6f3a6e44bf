//! Step 6 of a tick, and the end of every broker call: save the records when they changed.

use std::sync::atomic::Ordering;

use tracing::Instrument;

use super::{Event, Shared};
use crate::traits::StoreError;

/// Saves the records to the state store when they changed since the last save (any mutable
/// use of them marks them: see `RecordsGuard`). A controller that does not act saves nothing.
/// A store that refuses the write because another replica leads ([`StoreError::Fenced`])
/// makes it step down at once.
pub(crate) async fn persist(shared: &Shared) -> Result<(), StoreError> {
    if !shared.dirty.load(Ordering::Relaxed) && shared.save_lock.try_lock().is_ok() {
        // Clean, and no save in flight: everything is saved.
        return Ok(());
    }
    if !shared.role().acts() {
        return Err(StoreError::Fenced("this replica does not lead".into()));
    }
    // Taken before looking at the flag: a change another call's save is carrying is saved
    // (or has failed, and is marked again) when this lock is ours.
    let _in_order = shared.save_lock.lock().await;
    let records = {
        let records = shared.records();
        // Cleared under the lock: a change after this copy marks them again.
        if !shared.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        records.clone()
    };
    // Until the save has landed the records count as changed: a save that fails, times out or
    // is dropped half-way (its caller gave up) leaves them marked, and the next save writes them.
    let mut unsaved = Unsaved {
        dirty: &shared.dirty,
        landed: false,
    };
    let saved = shared
        .store
        .save(&records)
        .instrument(tracing::debug_span!(
            "persist",
            servers = records.servers.len()
        ))
        .await;
    unsaved.landed = saved.is_ok();
    drop(unsaved);
    if let Err(e) = &saved {
        tracing::error!(error = %e, "cannot save the state");
        metrics::counter!("kasm_scale_store_failures_total").increment(1);
        shared.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: format!("cannot save the state: {e}"),
        });
        if matches!(e, StoreError::Fenced(_)) {
            shared.step_down(None);
        }
    }
    saved
}

/// Held across a save: marks the records as changed again when dropped, unless the save
/// landed.
struct Unsaved<'a> {
    dirty: &'a std::sync::atomic::AtomicBool,
    landed: bool,
}

impl Drop for Unsaved<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }
}
