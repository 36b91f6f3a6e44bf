//! The controller: turns plans into VMs, AD records and check-ins, and serves the broker.
//!
//! [`Autoscaler`] holds the configuration, one [`VmProvider`] per VM provider config and one
//! [`DirectoryService`] per LDAP config it uses. Each [`Autoscaler::tick`] refreshes the servers
//! it is waiting for, plans every pool with [`crate::engine::plan`] and carries the actions out:
//! provisioning a server is record → AD computer record (when enabled) → startup script rendered
//! with all its variables → `create` with the owner tags → starting → check-in → running;
//! destroying is provider destroy → AD record delete → record removed. Calls to each provider run
//! under its own concurrency and rate limits with retries, so one failing provider never delays
//! the others. A broker calls [`Autoscaler::request_session`], [`Autoscaler::end_session`] and
//! [`Autoscaler::check_in`], and can [`Autoscaler::subscribe`] to events.

mod exec;
mod limits;
mod reconcile;
mod records;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::broadcast;

pub use limits::RetryPolicy;
pub use records::{AdRecord, Records, ServerInfo, SessionId};
pub use store::{MemoryStore, StateStore};

use crate::config::{Config, ConfigError};
use crate::engine::{ServerId, ServerState, SessionRequest, assign};
use crate::template::Template;
use crate::token::{TokenError, TokenKeys};
use crate::traits::{DirectoryService, VmProvider};
use limits::Limits;

/// Something that happened, for brokers and dashboards.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A server is being created.
    Provisioning {
        /// The server.
        server: ServerId,
        /// Its auto-scale config.
        config: String,
    },
    /// Its VM exists and boots.
    Starting {
        /// The server.
        server: ServerId,
    },
    /// It is ready for sessions.
    Ready {
        /// The server.
        server: ServerId,
    },
    /// It is gone.
    Destroyed {
        /// The server.
        server: ServerId,
        /// Why it went.
        reason: String,
    },
    /// Something failed; the server (if any) keeps the message as its last error.
    Failed {
        /// The server, if the failure concerns one.
        server: Option<ServerId>,
        /// Its auto-scale config.
        config: String,
        /// What went wrong.
        error: String,
    },
    /// A queued request got a server.
    SessionAssigned {
        /// The request's id.
        session: SessionId,
        /// The server.
        server: ServerId,
    },
}

/// What a guest reports with its check-in token (Kasm's `set_server_status` body).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub struct CheckinStatus {
    /// `running` when the server is ready; anything else while it is getting there.
    pub status: String,
    /// Free text.
    #[serde(default)]
    pub status_message: String,
    /// Percent done, as text.
    #[serde(default)]
    pub status_progress: String,
}

impl CheckinStatus {
    /// `running` (100%).
    pub fn running() -> Self {
        Self {
            status: "running".into(),
            status_message: String::new(),
            status_progress: "100".into(),
        }
    }

    fn describe(&self) -> String {
        let mut text = self.status.clone();
        if !self.status_progress.is_empty() {
            text += &format!(" ({}%)", self.status_progress);
        }
        if !self.status_message.is_empty() {
            text += &format!(": {}", self.status_message);
        }
        text
    }
}

/// What [`Autoscaler::request_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// A server takes the session now.
    Assigned {
        /// The session.
        session: SessionId,
        /// The server.
        server: ServerId,
    },
    /// No server has room: the request waits (an [`Event::SessionAssigned`] follows).
    Queued {
        /// The request (and later the session).
        session: SessionId,
    },
}

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// No pool of that name.
    #[error("unknown pool `{0}`")]
    UnknownPool(String),
    /// No session of that id.
    #[error("unknown session {0:?}")]
    UnknownSession(SessionId),
    /// The check-in token was refused.
    #[error("check-in refused: {0}")]
    Token(#[from] TokenError),
    /// The builder was given something unusable.
    #[error("invalid autoscaler setup: {0}")]
    Setup(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub(crate) struct Shared {
    pub config: Config,
    pub owner_id: String,
    pub providers: HashMap<String, Arc<dyn VmProvider>>,
    pub directories: HashMap<String, Arc<dyn DirectoryService>>,
    pub templates: HashMap<String, Template>,
    pub tokens: TokenKeys,
    pub limits: HashMap<String, Limits>,
    pub retry: RetryPolicy,
    pub rng: Mutex<ChaCha8Rng>,
    pub records: Mutex<Records>,
    pub events: broadcast::Sender<Event>,
    pub epoch: Timestamp,
    pub started: tokio::time::Instant,
    pub tick_interval: Duration,
    pub store: Arc<dyn StateStore>,
    pub orphan_grace: Duration,
    pub reconcile_every: u64,
    pub ticks: std::sync::atomic::AtomicU64,
    /// What was saved last, to save only changes.
    pub saved: Mutex<Option<records::Records>>,
}

impl Shared {
    /// Wall-clock time on tokio's clock: correct on a paused clock too.
    pub fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        self.epoch + SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX)
    }

    pub fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// The auto-scaler a broker embeds. Cheap to clone (all clones share one controller).
#[derive(Clone)]
pub struct Autoscaler {
    pub(crate) shared: Arc<Shared>,
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

/// Builds an [`Autoscaler`]; [`AutoscalerBuilder::build`] checks that everything fits.
pub struct AutoscalerBuilder {
    config: Config,
    owner_id: String,
    providers: HashMap<String, Arc<dyn VmProvider>>,
    directories: HashMap<String, Arc<dyn DirectoryService>>,
    tokens: Option<TokenKeys>,
    concurrency: usize,
    rate_limits: HashMap<String, f64>,
    retry: RetryPolicy,
    seed: u64,
    epoch: Option<Timestamp>,
    tick_interval: Duration,
    store: Arc<dyn StateStore>,
    orphan_grace: Duration,
    reconcile_every: u64,
}

impl Autoscaler {
    /// A builder for `config` (already validated, e.g. by [`crate::load_file`]).
    pub fn builder(config: Config) -> AutoscalerBuilder {
        AutoscalerBuilder {
            config,
            owner_id: "kasm-scale".into(),
            providers: HashMap::new(),
            directories: HashMap::new(),
            tokens: None,
            concurrency: 8,
            rate_limits: HashMap::new(),
            retry: RetryPolicy::default(),
            seed: 0,
            epoch: None,
            tick_interval: Duration::from_secs(30),
            store: Arc::new(MemoryStore::default()),
            orphan_grace: Duration::from_secs(600),
            reconcile_every: 10,
        }
    }

    /// Every server, with its state and last error.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.shared.records().servers.values().cloned().collect()
    }

    /// The scaling bookkeeping of auto-scale config `config` (failures, downscale clock).
    pub fn bookkeeping(&self, config: &str) -> crate::engine::Bookkeeping {
        exec::bookkeeping(&self.shared, config)
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The controller's time (tokio's clock from the configured epoch).
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Asks for a session in `pool`: a ready server with room takes it now, or the request waits
    /// (and with aggressive scaling the next tick provisions for it).
    pub async fn request_session(
        &self,
        pool: &str,
        request: &SessionRequest,
    ) -> Result<SessionOutcome, ControllerError> {
        let outcome = self.request_session_now(pool, request)?;
        exec::persist(&self.shared).await;
        Ok(outcome)
    }

    fn request_session_now(
        &self,
        pool: &str,
        request: &SessionRequest,
    ) -> Result<SessionOutcome, ControllerError> {
        if self.shared.config.pool(pool).is_none() {
            return Err(ControllerError::UnknownPool(pool.into()));
        }
        let mut records = self.shared.records();
        records.next_session += 1;
        let session = SessionId(records.next_session);
        let snapshot = exec::snapshot(&self.shared, &records, pool);
        match assign(&snapshot, request) {
            Some(server) => {
                exec::seat(&mut records, session, server);
                Ok(SessionOutcome::Assigned { session, server })
            }
            None => {
                records
                    .queued
                    .entry(pool.to_owned())
                    .or_default()
                    .push_back(session);
                Ok(SessionOutcome::Queued { session })
            }
        }
    }

    /// Ends a session (or withdraws a queued request).
    pub async fn end_session(&self, session: SessionId) -> Result<(), ControllerError> {
        self.end_session_now(session)?;
        exec::persist(&self.shared).await;
        Ok(())
    }

    fn end_session_now(&self, session: SessionId) -> Result<(), ControllerError> {
        let mut records = self.shared.records();
        if let Some(server) = records.sessions.remove(&session) {
            if let Some(s) = records.servers.get_mut(&server) {
                s.sessions = s.sessions.saturating_sub(1);
            }
            return Ok(());
        }
        for queue in records.queued.values_mut() {
            if let Some(i) = queue.iter().position(|q| *q == session) {
                queue.remove(i);
                return Ok(());
            }
        }
        Err(ControllerError::UnknownSession(session))
    }

    /// A server reports its status with the token its startup script received (Kasm's
    /// `set_server_status`). Status `running` makes it ready for sessions; any other status
    /// (`starting`, progress messages) is kept as its reported status. Repeating a check-in is
    /// harmless. Returns the server.
    pub async fn check_in(
        &self,
        server: ServerId,
        token: &str,
        status: &CheckinStatus,
    ) -> Result<ServerId, ControllerError> {
        let now = self.shared.now();
        let live = |id: ServerId| {
            self.shared
                .records()
                .servers
                .get(&id)
                .is_some_and(|s| s.state != ServerState::Destroying)
        };
        self.shared.tokens.verify(token, now, server, live)?;
        let became_ready = {
            let mut records = self.shared.records();
            let Some(s) = records.servers.get_mut(&server) else {
                return Err(TokenError::WrongServer(server).into());
            };
            s.reported_status = Some(status.describe());
            let running = status.status.eq_ignore_ascii_case("running");
            let ready = running && s.checked_in_at.is_none() && s.state == ServerState::Starting;
            if running {
                s.checked_in_at.get_or_insert(now);
            }
            if ready {
                s.state = ServerState::Running;
            }
            ready
        };
        if became_ready {
            self.shared.emit(Event::Ready { server });
            exec::serve_queue(&self.shared);
        }
        exec::persist(&self.shared).await;
        Ok(server)
    }

    /// One reconcile cycle: refresh, plan every pool, carry the plans out, serve queued requests.
    pub async fn tick(&self) {
        exec::tick(&self.shared).await;
    }

    /// Ticks every tick interval until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.tick().await;
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.shared.tick_interval) => {}
            }
        }
    }
}

impl AutoscalerBuilder {
    /// The id written into every owner marker: one per broker installation (default `kasm-scale`).
    pub fn owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = owner_id.into();
        self
    }

    /// The provider for the VM provider config it names.
    pub fn provider(mut self, provider: Arc<dyn VmProvider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// The directory for the LDAP config it names.
    pub fn directory(mut self, directory: Arc<dyn DirectoryService>) -> Self {
        self.directories
            .insert(directory.name().to_owned(), directory);
        self
    }

    /// The check-in token keys (default: the configuration's `checkin_token`, else a fresh Ed25519
    /// key, whose tokens do not survive a restart).
    pub fn tokens(mut self, keys: TokenKeys) -> Self {
        self.tokens = Some(keys);
        self
    }

    /// Calls in flight per provider or directory (default 8).
    pub fn concurrency(mut self, calls: usize) -> Self {
        self.concurrency = calls;
        self
    }

    /// At most `calls_per_second` calls to the provider or directory named `name`.
    pub fn rate_limit(mut self, name: impl Into<String>, calls_per_second: f64) -> Self {
        self.rate_limits.insert(name.into(), calls_per_second);
        self
    }

    /// Retries of retryable backend errors.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Seed of the controller's own randomness (server ids, jitter): fixed for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The wall-clock time at which tokio's clock reads "now" when `build` runs (default: the
    /// system time), so that runs on a paused clock have a known date.
    pub fn epoch(mut self, at: Timestamp) -> Self {
        self.epoch = Some(at);
        self
    }

    /// Where the records are kept across restarts (default: a fresh [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = store;
        self
    }

    /// How long a VM or AD record with our owner marker but no server may exist before it is
    /// removed (default 10 minutes).
    pub fn orphan_grace(mut self, grace: Duration) -> Self {
        self.orphan_grace = grace;
        self
    }

    /// Reconcile with the clouds and directories every `ticks` ticks (and on the first; default 10).
    pub fn reconcile_every(mut self, ticks: u64) -> Self {
        self.reconcile_every = ticks.max(1);
        self
    }

    /// Time between ticks in [`Autoscaler::run`] (default 30 s).
    pub fn tick_interval(mut self, every: Duration) -> Self {
        self.tick_interval = every;
        self
    }

    /// Checks that every auto-scale config has its provider (and directory, when it makes AD
    /// records), that every startup script parses, and builds the controller.
    pub fn build(self) -> Result<Autoscaler, ControllerError> {
        crate::config::validate(&self.config)?;
        let mut problems = Vec::new();
        let mut templates = HashMap::new();
        for provider in &self.config.vm_providers {
            let Some(text) = provider.script_text() else {
                continue;
            };
            match Template::parse(text) {
                Ok(t) => {
                    templates.insert(provider.name().to_owned(), t);
                }
                Err(e) => problems.push(format!("startup script of `{}`: {e}", provider.name())),
            }
        }
        for (_, c) in self.config.autoscale_configs() {
            if !self.providers.contains_key(&c.vm_provider_config_id) {
                problems.push(format!(
                    "`{}` needs a provider for `{}`",
                    c.autoscale_config_name, c.vm_provider_config_id
                ));
            }
            if c.ad_create_machine_record
                && let Some(ldap) = &c.ldap_id
                && !self.directories.contains_key(ldap)
            {
                problems.push(format!(
                    "`{}` needs a directory for `{ldap}`",
                    c.autoscale_config_name
                ));
            }
        }
        if self.owner_id.trim().is_empty() {
            problems.push("owner_id must not be empty".into());
        }
        if !problems.is_empty() {
            return Err(ControllerError::Setup(problems.join("; ")));
        }
        let tokens = match (self.tokens, &self.config.checkin_token) {
            (Some(t), _) => t,
            (None, Some(section)) => TokenKeys::from_config(section)?,
            (None, None) => TokenKeys::generate()?,
        };
        let names = self.providers.keys().chain(self.directories.keys());
        let limits = names
            .map(|n| {
                (
                    n.clone(),
                    Limits::new(self.concurrency, self.rate_limits.get(n).copied()),
                )
            })
            .collect();
        let (events, _) = broadcast::channel(1024);
        let shared = Shared {
            config: self.config,
            owner_id: self.owner_id,
            providers: self.providers,
            directories: self.directories,
            templates,
            tokens,
            limits,
            retry: self.retry,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(self.seed)),
            records: Mutex::new(Records::default()),
            events,
            epoch: self.epoch.unwrap_or_else(Timestamp::now),
            started: tokio::time::Instant::now(),
            tick_interval: self.tick_interval,
            store: self.store,
            orphan_grace: self.orphan_grace,
            reconcile_every: self.reconcile_every,
            ticks: std::sync::atomic::AtomicU64::new(0),
            saved: Mutex::new(None),
        };
        Ok(Autoscaler {
            shared: Arc::new(shared),
        })
    }
}

#[cfg(test)]
mod tests;
