//! Step 6 of a tick, and the end of every broker call: save the records when they changed.

use tracing::Instrument;

use super::{Event, Shared};

/// Saves the records to the state store when they changed since the last save.
pub(crate) async fn persist(shared: &Shared) {
    let records = {
        let now = shared.records();
        let mut saved = shared.saved.lock().unwrap_or_else(|e| e.into_inner());
        if saved.as_ref() == Some(&*now) {
            return;
        }
        let copy = now.clone();
        *saved = Some(copy.clone());
        copy
    };
    let saved = super::store::bounded("save", shared.store.save(&records))
        .instrument(tracing::debug_span!(
            "persist",
            servers = records.servers.len()
        ))
        .await;
    if let Err(e) = saved {
        // Saved next time: forget that this copy was saved.
        *shared.saved.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::error!(error = %e, "cannot save the state");
        shared.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: format!("cannot save the state: {e}"),
        });
    }
}
