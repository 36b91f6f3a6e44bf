//! The records and their persistence: loading the saved state (once, before anything is
//! served), saving what changed (step 6 of a tick, and the end of every broker call), and the
//! save a broker call waits for, tried again until it lands.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;
use tracing::Instrument;

use super::events::{ControllerError, Event, Events};
use super::records::Records;
use super::{Role, Shared};
use crate::token::TokenKeys;
use crate::traits::{StateStore, StoreError};

/// The records, where they are saved, and what is not saved yet.
pub(crate) struct State {
    records: Mutex<Records>,
    /// Set by every mutable use of the records ([`RecordsGuard`]), cleared by a save: a tick
    /// that changed nothing saves nothing, without comparing 10,000 servers.
    dirty: AtomicBool,
    /// Held from taking a copy of the records to its save: saves land in order (an older copy
    /// never overwrites a newer one).
    save_lock: tokio::sync::Mutex<()>,
    /// The store (decorated: each call bounded in time and traced).
    pub store: Arc<dyn StateStore>,
    /// The saved state was loaded (once, before anything is served).
    pub loaded: OnceCell<()>,
    /// Host names the clouds and directories hold (from the last listings): new servers avoid
    /// them.
    pub taken_names: Mutex<HashSet<String>>,
    /// Names a directory refused because something else holds them (a record we do not own,
    /// which no listing of ours shows): kept for the life of the process, so that a counter in
    /// a host name pattern moves past them instead of trying them again after every listing.
    pub conflicts: Mutex<HashSet<String>>,
    /// (ours) Offerings skipped after answering "insufficient capacity" (in memory: a skip
    /// lasts minutes).
    pub skipped: super::offerings::Skipped,
}

impl State {
    /// Empty records, kept in `store`.
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        Self {
            records: Mutex::new(Records::default()),
            dirty: AtomicBool::new(false),
            save_lock: tokio::sync::Mutex::new(()),
            store,
            loaded: OnceCell::new(),
            taken_names: Mutex::new(HashSet::new()),
            skipped: super::offerings::Skipped::default(),
            conflicts: Mutex::new(HashSet::new()),
        }
    }

    /// The records, locked. Reading them leaves them clean; any mutable use marks them to be
    /// saved.
    pub fn records(&self) -> RecordsGuard<'_> {
        RecordsGuard {
            records: self.records.lock().unwrap_or_else(|e| e.into_inner()),
            dirty: &self.dirty,
        }
    }

    /// The records become `records` (as loaded), marked to be saved when `changed`.
    pub(crate) fn replace(&self, records: Records, changed: bool) {
        *self.records() = records;
        self.dirty.store(changed, Ordering::Relaxed);
    }
}

/// The locked records. Dereferencing it mutably marks them changed, so no change can miss
/// the next save (a use that ends up changing nothing only costs one save).
pub(crate) struct RecordsGuard<'a> {
    records: MutexGuard<'a, Records>,
    dirty: &'a AtomicBool,
}

impl std::ops::Deref for RecordsGuard<'_> {
    type Target = Records;

    fn deref(&self) -> &Records {
        &self.records
    }
}

impl std::ops::DerefMut for RecordsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Records {
        self.dirty.store(true, Ordering::Relaxed);
        &mut self.records
    }
}

/// Loads the saved state, once; a failed load is tried again by the next call.
pub(crate) async fn load_once(
    state: &State,
    tokens: &TokenKeys,
    events: &Events,
) -> Result<(), ControllerError> {
    state
        .loaded
        .get_or_try_init(|| async {
            let saved = state.store.load().await?;
            let count = take_saved(state, tokens, events, saved);
            tracing::info!(servers = count, "saved state loaded");
            Ok::<(), ControllerError>(())
        })
        .await
        .map(|_| ())
}

/// The records become `saved` (what the store held, or nothing), checked against this
/// controller's check-in key, and count as loaded. Returns how many servers they hold.
pub(crate) fn take_saved(
    state: &State,
    tokens: &TokenKeys,
    events: &Events,
    saved: Option<Records>,
) -> usize {
    let mut records = saved.unwrap_or_default();
    let servers = records.servers.len();
    let changed = check_key(tokens, events, &mut records);
    // As saved (but for a new key id): nothing to save back.
    state.replace(records, changed);
    let _ = state.loaded.set(());
    servers
}

/// Compares the check-in key that signed the saved servers' tokens with this controller's, says
/// so when they differ (those servers' check-ins will be refused), and records this one's.
/// Returns whether the records changed.
pub(crate) fn check_key(tokens: &TokenKeys, events: &Events, records: &mut Records) -> bool {
    let ours = tokens.key_id();
    match records.token_key_id.as_deref() {
        Some(saved) if saved == ours => return false,
        // Rotated with an overlap: the previous key still verifies their tokens.
        Some(saved) if tokens.knows_key(saved) => {
            tracing::info!(
                saved,
                ours,
                "check-in key rotated: the saved key verifies, this one signs"
            );
        }
        Some(saved) => {
            let error = format!(
                "the saved servers' check-in tokens were signed by key {saved}, this controller \
                 has key {ours}: their check-ins will be refused (give every replica and every \
                 restart the same checkin_token key)"
            );
            tracing::error!(saved, ours, "check-in key changed");
            events.emit(Event::Failed {
                server: None,
                config: "checkin_token".into(),
                error,
            });
        }
        None => {}
    }
    records.token_key_id = Some(ours.to_owned());
    true
}
/// Saves the records to the state store when they changed since the last save (any mutable
/// use of them marks them: see `RecordsGuard`). A controller that does not act saves nothing.
/// A store that refuses the write because another replica leads ([`StoreError::Fenced`])
/// makes it step down at once.
pub(crate) async fn persist(shared: &Shared) -> Result<(), StoreError> {
    if !shared.state.dirty.load(Ordering::Relaxed) && shared.state.save_lock.try_lock().is_ok() {
        // Clean, and no save in flight: everything is saved.
        return Ok(());
    }
    if !shared.clock.role().acts() {
        return Err(StoreError::Fenced("this replica does not lead".into()));
    }
    // Taken before looking at the flag: a change another call's save is carrying is saved
    // (or has failed, and is marked again) when this lock is ours.
    let _in_order = shared.state.save_lock.lock().await;
    let records = {
        let records = shared.state.records();
        // Cleared under the lock: a change after this copy marks them again.
        if !shared.state.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        records.clone()
    };
    // Until the save has landed the records count as changed: a save that fails, times out or
    // is dropped half-way (its caller gave up) leaves them marked, and the next save writes them.
    let mut unsaved = Unsaved {
        dirty: &shared.state.dirty,
        landed: false,
    };
    let saved = shared
        .state
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
        shared.events.emit(Event::Failed {
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

/// The end of a broker call: saves what it changed.
///
/// - A store that refuses the write because another replica leads fails the call
///   ([`ControllerError::NotLeader`]): this replica has stepped down and its change is not the
///   leader's.
/// - A store that cannot be reached and is not durable ([`StateStore::durable`]), for a
///   controller alone on it ([`Role::Sole`]): the change is kept in memory for the next save
///   and the call succeeds (the failure is logged, counted and evented).
/// - A durable store that cannot be reached: the save is tried again until it lands (a caller
///   that gives up meanwhile leaves the change for the next save), or, for the leader of
///   replicas, until it steps down (its lease keeper stops it before the lease expires); then
///   the call fails with `NotLeader` and the change dies with this leader's records (the next
///   leader loads the database's). A broker is never told of a change the store may not hold.
pub(crate) async fn saved(shared: &Shared) -> Result<(), ControllerError> {
    let mut wait = std::time::Duration::from_millis(50);
    loop {
        match persist(shared).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Fenced(_)) => return Err(ControllerError::NotLeader { leader: None }),
            // Nothing durable to wait for.
            Err(_) if shared.clock.role() == Role::Sole && !shared.state.store.durable() => {
                return Ok(());
            }
            Err(_) if !shared.clock.role().acts() => {
                return Err(ControllerError::NotLeader { leader: None });
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}
