//! Step 6 of a tick, and the end of every broker call: save the records when they changed.

use std::sync::atomic::Ordering;

use tracing::Instrument;

use super::{Event, Shared};

/// Saves the records to the state store when they changed since the last save (any mutable
/// use of them marks them: see `RecordsGuard`).
pub(crate) async fn persist(shared: &Shared) {
    if !shared.dirty.load(Ordering::Relaxed) {
        return;
    }
    let _in_order = shared.save_lock.lock().await;
    let records = {
        let records = shared.records();
        // Cleared under the lock: a change after this copy marks them again.
        if !shared.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        records.clone()
    };
    let saved = super::store::bounded("save", shared.store.save(&records))
        .instrument(tracing::debug_span!(
            "persist",
            servers = records.servers.len()
        ))
        .await;
    if let Err(e) = saved {
        // Saved next time.
        shared.dirty.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "cannot save the state");
        shared.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: format!("cannot save the state: {e}"),
        });
    }
}
