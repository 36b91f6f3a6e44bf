//! The controller: turns plans into VMs, AD records and check-ins, and serves the broker.
//!
//! [`Autoscaler`] holds the configuration, one [`VmProvider`] per VM provider config and one
//! [`DirectoryService`] per LDAP config it uses. One [`Autoscaler::tick`] reads as its steps
//! (`tick.rs`):
//!
//! 1. **observe** (`observe.rs`, `reconcile.rs`): refresh the servers whose VMs boot, and on its
//!    cadence list the clouds and directories to adopt, forget and remove what they hold;
//! 2. **snapshot** (`snapshot.rs`): one [`PoolSnapshot`](crate::engine::PoolSnapshot) per pool;
//! 3. **plan**: [`crate::engine::plan`], pure;
//! 4. **execute** (`execute.rs`): record the plan's servers and start their work —
//!    provisioning (`provision.rs`: AD computer record → startup script rendered with every
//!    variable → `create` with the owner tags → starting → check-in → running) and destroying
//!    (`destroy.rs`: VM → AD record → record);
//! 5. **seat the queue** (`queue.rs`): waiting requests take free slots; old ones expire;
//! 6. **persist** (`persist.rs`): save what changed.
//!
//! Every call to a provider or directory runs in the background (`tasks.rs`), within that
//! backend's concurrency and rate limit, bounded in time and retried in ONE place
//! (`backend.rs`), so planning and seating never wait on a slow backend and one failing
//! provider never holds up the others. A broker calls [`Autoscaler::request_session`],
//! [`Autoscaler::end_session`] and [`Autoscaler::check_in_token`] (`api.rs`), and can
//! [`Autoscaler::subscribe`] to events.

mod api;
mod backend;
mod builder;
mod demand;
mod destroy;
mod events;
mod execute;
mod file_store;
mod guarded;
mod observe;
mod persist;
mod provision;
mod queue;
mod reconcile;
mod records;
mod requests;
mod role;
mod snapshot;
mod status;
mod tasks;
mod tick;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{OnceCell, broadcast};

pub use backend::RetryPolicy;
pub use builder::AutoscalerBuilder;
pub use events::{CheckinStatus, ControllerError, Event, Requested, SessionOutcome, SetupError};
pub use file_store::{FileStore, MAX_STATE_FILE};
pub use guarded::STORE_TIMEOUT;
pub use records::{AdRecord, Queued, Records, ServerInfo, SessionId};
pub use requests::{MAX_REQUEST_ID, REQUEST_ID_TTL, RequestRecord};
pub use role::Role;
pub use status::{PoolStatus, SessionStatus};

use crate::config::Config;
use crate::engine::ServerId;
use crate::template::Template;
use crate::token::TokenKeys;
use crate::traits::{DirectoryService, StateStore, VmProvider};
use tasks::{Randomness, Tasks};

/// The host name of server `id` (`KASM-` and the first ten hex digits of its id: 15
/// characters, NetBIOS-safe).
pub(crate) fn hostname(id: ServerId) -> String {
    format!("KASM-{}", &id.0.simple().to_string()[..10]).to_ascii_uppercase()
}

/// Everything the controller's handles and background tasks share.
pub(crate) struct Shared {
    pub config: Config,
    pub owner_id: String,
    pub providers: HashMap<String, Arc<dyn VmProvider>>,
    pub directories: HashMap<String, Arc<dyn DirectoryService>>,
    pub templates: HashMap<String, Template>,
    pub tokens: TokenKeys,
    /// How long the first reconcile is waited for: one call's timeout, the longest of any
    /// backend's.
    pub first_reconcile_wait: Duration,
    pub rng: Arc<Randomness>,
    pub records: Mutex<Records>,
    /// Set by every mutable use of the records ([`RecordsGuard`]), cleared by a save: a tick
    /// that changed nothing saves nothing, without comparing 10,000 servers.
    pub dirty: AtomicBool,
    /// Held from taking a copy of the records to its save: saves land in order (an older copy
    /// never overwrites a newer one).
    pub save_lock: tokio::sync::Mutex<()>,
    pub events: broadcast::Sender<Event>,
    pub epoch: Timestamp,
    pub started: tokio::time::Instant,
    pub tick_interval: Duration,
    pub store: Arc<dyn StateStore>,
    pub orphan_grace: Duration,
    pub unknown_sessions_timeout: Duration,
    pub queue_timeout: Duration,
    pub reconcile_every: u64,
    pub ticks: std::sync::atomic::AtomicU64,
    /// The saved state was loaded (once, before anything is served).
    pub loaded: OnceCell<()>,
    /// Held by the running tick: ticks never overlap.
    pub tick_lock: tokio::sync::Mutex<()>,
    pub tasks: Tasks,
    /// When the last tick ended (tokio's clock), for [`Autoscaler::health`].
    pub last_tick: Mutex<Option<tokio::time::Instant>>,
    /// Host names the clouds and directories hold (from the last listings): new servers avoid
    /// them.
    pub taken_names: Mutex<HashSet<String>>,
    /// Whether it acts, among the replicas of its store (see `role.rs`).
    pub role: Mutex<Role>,
    /// Wakes [`Autoscaler::run`] for a tick now (on taking over).
    pub wake: tokio::sync::Notify,
}

impl Shared {
    /// Wall-clock time on tokio's clock: correct on a paused clock too.
    pub fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        self.epoch + SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX)
    }

    /// The records, locked. Reading them leaves them clean; any mutable use marks them to be
    /// saved.
    pub fn records(&self) -> RecordsGuard<'_> {
        RecordsGuard {
            records: self.records.lock().unwrap_or_else(|e| e.into_inner()),
            dirty: &self.dirty,
        }
    }

    /// Tells subscribers, and counts the event for metrics (`kasm_scale_*_total`).
    pub fn emit(&self, event: Event) {
        count(&event);
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Server `id` of `config`, created at `created_at`, is ready: the event, and its time to
    /// ready for metrics.
    pub fn ready(&self, id: ServerId, config: &str, created_at: Timestamp) {
        let took = self.now().duration_since(created_at).as_secs_f64().max(0.0);
        demand::ready(self, config, created_at, took);
        metrics::histogram!("kasm_scale_time_to_ready_seconds", "config" => config.to_owned())
            .record(took);
        self.emit(Event::Ready { server: id });
    }

    /// Keeps `error` on the server (if any) and tells subscribers.
    pub fn note_error(&self, server: Option<ServerId>, config: &str, error: String) {
        if let Some(id) = server
            && let Some(s) = self.records().servers.get_mut(&id)
        {
            s.last_error = Some(error.clone());
        }
        tracing::warn!(server = ?server, config, %error, "backend failure");
        self.emit(Event::Failed {
            server,
            config: config.into(),
            error,
        });
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

/// Counts an event for metrics: one counter per kind, labelled by config, cause or pool.
fn count(event: &Event) {
    use metrics::counter;
    match event {
        Event::Provisioning { config, cause, .. } => counter!(
            "kasm_scale_provisions_total",
            "config" => config.clone(),
            "cause" => cause_name(Some(*cause))
        )
        .increment(1),
        Event::Destroyed { cause, .. } => {
            counter!("kasm_scale_destroys_total", "cause" => cause_name(*cause)).increment(1)
        }
        Event::Failed { config, .. } => {
            counter!("kasm_scale_failures_total", "config" => config.clone()).increment(1)
        }
        Event::Ready { .. } => counter!("kasm_scale_servers_ready_total").increment(1),
        Event::Adopted { .. } => counter!("kasm_scale_adopted_total").increment(1),
        Event::RequestExpired { pool, .. } => {
            counter!("kasm_scale_requests_expired_total", "pool" => pool.clone()).increment(1)
        }
        Event::SessionsLost { sessions, .. } => {
            counter!("kasm_scale_sessions_lost_total").increment(sessions.len() as u64)
        }
        _ => {}
    }
}

/// A cause as its snake_case name (`dead` when the plan did not ask: the VM died, vanished or
/// its config was removed).
fn cause_name(cause: Option<crate::engine::Cause>) -> String {
    cause
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "dead".into())
}

/// What a readiness probe needs to know (see [`Autoscaler::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The saved state was loaded (broker calls are served).
    pub loaded: bool,
    /// Time since the last tick ended; `None` before the first.
    pub since_last_tick: Option<Duration>,
    /// The configured tick interval.
    pub tick_interval: Duration,
    /// Its role among the replicas of its store.
    pub role: Role,
}

impl Health {
    /// Loaded, acting (alone or as the leader), and ticked within three tick intervals (at
    /// least 30 s): a controller whose loop stalled, or a follower, is not ready.
    pub fn is_ready(&self) -> bool {
        let limit = (self.tick_interval * 3).max(Duration::from_secs(30));
        self.loaded && self.role.acts() && self.since_last_tick.is_some_and(|t| t <= limit)
    }
}

/// Stops the background tasks when the last [`Autoscaler`] handle goes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.tasks.abort_all();
    }
}

/// The auto-scaler a broker embeds. Cheap to clone (all clones share one controller); dropping
/// the last clone stops its background work.
#[derive(Clone)]
pub struct Autoscaler {
    pub(crate) shared: Arc<Shared>,
    _handle: Arc<Handle>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("owner_id", &self.shared.owner_id)
            .field(
                "providers",
                &self.shared.providers.keys().collect::<Vec<_>>(),
            )
            .field("servers", &self.shared.records().servers.len())
            .finish_non_exhaustive()
    }
}

impl Autoscaler {
    pub(crate) fn from_shared(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        Self {
            _handle: Arc::new(Handle(shared.clone())),
            shared,
        }
    }

    /// Every server, with its state and last error.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.shared.records().servers.values().cloned().collect()
    }

    /// The scaling bookkeeping of auto-scale config `config` (failures, downscale clock).
    pub fn bookkeeping(&self, config: &str) -> crate::engine::Bookkeeping {
        self.shared
            .records()
            .bookkeeping
            .get(config)
            .cloned()
            .unwrap_or_default()
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Whether the controller serves: its saved state is loaded, and how long ago its last tick
    /// ended (for a readiness probe).
    pub fn health(&self) -> Health {
        let last = *self
            .shared
            .last_tick
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Health {
            loaded: self.shared.loaded.initialized(),
            since_last_tick: last.map(|t| t.elapsed()),
            tick_interval: self.shared.tick_interval,
            role: self.shared.role(),
        }
    }

    /// The controller's time (tokio's clock from the configured epoch).
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }
}

#[cfg(test)]
mod tests;
