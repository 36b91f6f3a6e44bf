//! The controller: turns plans into VMs, AD records and check-ins, and serves the broker.
//!
//! [`Autoscaler`] holds the configuration, one [`VmProvider`] per VM provider config and one
//! [`DirectoryService`] per LDAP config it uses. One [`Autoscaler::tick`] reads top-down in one
//! function (`tick.rs`) as six steps, each a function that returns what it did. Snapshot and
//! seat borrow only the configuration and the records; observe, execute and persist take the
//! controller, because they start background work (which reports its events as it ends) or
//! save:
//!
//! 1. **observe** (`observe.rs`): refresh the servers whose VMs boot, and on the reconcile
//!    cadence list the clouds and directories in the background (`reconcile.rs`: adopt, forget
//!    and remove what they hold; forget history the configuration no longer has); returns the
//!    work it started;
//! 2. **snapshot** (`snapshot.rs`): one [`PoolSnapshot`](crate::engine::PoolSnapshot) per pool,
//!    read from the records in one pass, with its demand signal (`demand.rs`);
//! 3. **plan**: [`crate::engine::plan`] per pool, pure;
//! 4. **execute** (`execute.rs`): record the plans' servers, save them, and start their work in
//!    the background — provisioning (`provision.rs`: AD computer record → startup script
//!    rendered with every variable → `create` with the owner tags → starting → check-in →
//!    running) and destroying (`destroy.rs`: VM → AD record → record); returns what it started;
//! 5. **seat** (`queue.rs`): waiting requests take free slots, old ones expire; returns the
//!    events, which the tick tells;
//! 6. **persist** (`state.rs`): save what changed.
//!
//! Before the steps, `role.rs` says whether this tick acts (a follower only reloads what its
//! leader saved), and `state.rs` loads the saved state once; `state.rs` also holds the save a
//! broker call waits for. What the steps share is split by concern: the configuration and
//! backends (`Setup`, `builder.rs`), the records and their persistence (`State`, `state.rs`),
//! events (`Events`, `events.rs`), the clock and role (`Clock`, `role.rs`) and the background
//! work (`Tasks`, `tasks.rs`).
//!
//! Every call to a provider, directory or store goes through the decorator the builder wrapped
//! it in (`guarded.rs`, over `backend.rs`'s guard): concurrency and rate limit, timeout, retry
//! with backoff and a span, in ONE place, so the call sites are plain trait calls. Provider and
//! directory work runs in the background (`tasks.rs`), so planning and seating never wait on a
//! slow backend and one failing provider never holds up the others. A broker calls
//! [`Autoscaler::request_session`], [`Autoscaler::end_session`] and
//! [`Autoscaler::check_in_token`] (`api.rs`), and can [`Autoscaler::subscribe`] to events.
//!
//! [`VmProvider`]: crate::traits::VmProvider
//! [`DirectoryService`]: crate::traits::DirectoryService

mod affinity;
mod api;
mod backend;
mod builder;
mod demand;
mod destroy;
mod drain;
mod events;
mod execute;
mod file_store;
mod guarded;
mod observe;
mod offerings;
mod power;
mod provision;
mod queue;
mod reconcile;
mod records;
mod reload;
mod requests;
mod role;
mod rollout;
mod snapshot;
mod state;
mod status;
mod tasks;
mod tick;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast;

pub use affinity::MAX_USER;
pub use backend::RetryPolicy;
pub use builder::AutoscalerBuilder;
pub use drain::{Drain, DrainRequest, DrainTarget, MAX_DRAIN_TEXT};
pub use events::{
    CheckinStatus, ControllerError, Event, Requested, RolloutPhase, SessionOutcome, SetupError,
};
pub use file_store::{FileStore, MAX_STATE_FILE};
pub use guarded::STORE_TIMEOUT;
pub use records::{AdRecord, MAX_POWER_FAILURES, Queued, Records, ServerInfo, SessionId};
pub use reload::{Reconfiguration, Reloaded};
pub use requests::{MAX_REQUEST_ID, REQUEST_ID_TTL, RequestRecord};
pub use role::Role;
pub use rollout::GenerationStatus;
pub use status::{PoolSpend, PoolStatus, SessionStatus};

use crate::config::Config;
use crate::engine::ServerId;
use builder::Setup;
use events::Events;
use role::Clock;
use state::{RecordsGuard, State};
use tasks::Tasks;

/// The host name of server `id` (`KASM-` and the first ten hex digits of its id: 15
/// characters, NetBIOS-safe).
pub(crate) fn hostname(id: ServerId) -> String {
    format!("KASM-{}", &id.0.simple().to_string()[..10]).to_ascii_uppercase()
}

/// Everything the controller's handles and background tasks share, by concern, so that a step
/// that needs only the configuration and the records borrows only those.
pub(crate) struct Shared {
    /// The configuration and the (decorated) backends, as the builder or the last reload
    /// checked them: read it with [`Shared::setup`].
    pub live: std::sync::RwLock<Arc<Setup>>,
    /// The records and their persistence.
    pub state: State,
    /// Events for subscribers (and metrics).
    pub events: Events,
    /// The controller's time, its ticks and its role among replicas.
    pub clock: Clock,
    /// The background work running.
    pub tasks: Tasks,
}

impl Shared {
    /// The configuration and backends in force now. A reload replaces them whole; work that
    /// began under the previous ones keeps those it took.
    pub fn setup(&self) -> Arc<Setup> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Server `id` of `config`, created at `created_at`, is ready: its boot time for the demand
    /// history and metrics, and the event. A server started from the warm tier (its record's
    /// `woken_at` set) gives its start time instead (ours).
    pub fn ready(&self, id: ServerId, config: &str, created_at: Timestamp) {
        let now = self.clock.now();
        let woken = self
            .state
            .records()
            .servers
            .get(&id)
            .and_then(|s| s.woken_at);
        if let Some(woken_at) = woken {
            let took = now.duration_since(woken_at).as_secs_f64().max(0.0);
            demand::started(
                &self.setup().config,
                self.clock.epoch,
                &self.state,
                config,
                woken_at,
                took,
            );
            self.events.emit(Event::Ready { server: id });
            return;
        }
        let took = now.duration_since(created_at).as_secs_f64().max(0.0);
        demand::ready(
            &self.setup().config,
            self.clock.epoch,
            &self.state,
            config,
            created_at,
            took,
        );
        metrics::histogram!("kasm_scale_time_to_ready_seconds", "config" => config.to_owned())
            .record(took);
        self.events.emit(Event::Ready { server: id });
    }

    /// Keeps `error` on the server (if any) and tells subscribers.
    pub fn note_error(&self, server: Option<ServerId>, config: &str, error: String) {
        if let Some(id) = server
            && let Some(s) = self.state.records().servers.get_mut(&id)
        {
            s.last_error = Some(error.clone());
        }
        tracing::warn!(server = ?server, config, %error, "backend failure");
        self.events.emit(Event::Failed {
            server,
            config: config.into(),
            error,
        });
    }
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
///
/// # Examples
///
/// A pool that keeps two free slots, on the in-memory cloud and tokio's paused clock: the
/// first tick provisions, the servers boot, and a session request is seated at once.
///
/// ```
/// use std::sync::Arc;
///
/// use kasm_scale_core::config::VmProviderConfig;
/// use kasm_scale_core::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = load_str(
///     r#"
///     [[zones]]
///     zone_name = "default"
///     upstream_auth_address = "kasm.example.com"
///
///     [[vm_providers]]
///     provider = "memory"
///     name = "cloud"
///     max_instances = 4
///     boot_latency = { fixed = 60 }
///
///     [[pools]]
///     server_pool_name = "desktops"
///
///     [[pools.autoscale]]
///     autoscale_config_name = "desktops-cloud"
///     vm_provider_config_id = "cloud"
///     connection_type = "RDP"
///     minimum_pool_standby_sessions = 2
///     "#,
///     Format::Toml,
/// )?
/// .config;
/// let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else { unreachable!() };
/// let scaler = Autoscaler::builder(config)
///     .owner_id("broker-eu-1")
///     .provider(Arc::new(MemoryCloud::new(memory, 1)))
///     .build()?;
/// // The first tick plans two servers and creates them in the background; later ticks see
/// // them boot (60 s here) and become ready. `run` does this every tick interval.
/// for _ in 0..4 {
///     scaler.tick().await;
///     scaler.settle().await;
///     tokio::time::sleep(std::time::Duration::from_secs(30)).await;
/// }
/// assert_eq!(scaler.pools()[0].free_sessions, 2);
/// let outcome = scaler.request_session("desktops", &SessionRequest::default()).await?;
/// assert!(matches!(outcome, SessionOutcome::Assigned { .. }), "{outcome:?}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Autoscaler {
    pub(crate) shared: Arc<Shared>,
    _handle: Arc<Handle>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("owner_id", &self.shared.setup().owner_id)
            .field(
                "providers",
                &self.shared.setup().providers.keys().collect::<Vec<_>>(),
            )
            .field("servers", &self.shared.state.records().servers.len())
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
        self.shared
            .state
            .records()
            .servers
            .values()
            .cloned()
            .collect()
    }

    /// The scaling bookkeeping of auto-scale config `config` (failures, downscale clock).
    pub fn bookkeeping(&self, config: &str) -> crate::engine::Bookkeeping {
        self.shared
            .state
            .records()
            .bookkeeping
            .get(config)
            .cloned()
            .unwrap_or_default()
    }

    /// The configuration it runs now (a reload replaces it: see [`Autoscaler::reconfigure`]).
    pub fn config(&self) -> Arc<Config> {
        self.shared.setup().config.clone()
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
            .clock
            .last_tick
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Health {
            loaded: self.shared.state.loaded.initialized(),
            since_last_tick: last.map(|t| t.elapsed()),
            tick_interval: self.shared.setup().tick_interval,
            role: self.shared.clock.role(),
        }
    }

    /// The controller's time (tokio's clock from the configured epoch).
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }
}

#[cfg(test)]
mod tests;
