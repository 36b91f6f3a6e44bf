//! [`AutoscalerBuilder`]: everything an [`Autoscaler`] needs, checked at `build()`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::backend::{Guard, RetryPolicy};
use super::events::{ControllerError, Events, SetupError};
use super::guarded::Guarded;
use super::guarded::STORE_TIMEOUT;
use super::role::Clock;
use super::state::State;
use super::tasks::{Randomness, Tasks};
use super::{Autoscaler, Shared};
use crate::config::{ApiLimits, Config, DEFAULT_API_CALL_TIMEOUT, DEFAULT_API_CONCURRENCY};
use crate::memory::MemoryStore;
use crate::template::Template;
use crate::token::TokenKeys;
use crate::traits::StateStore;
use crate::traits::{DirectoryService, VmProvider};

/// The configuration and the backends, as the builder checked them: what a step reads and
/// never changes.
pub(crate) struct Setup {
    /// The configuration it runs.
    pub config: Arc<Config>,
    /// The id written into every owner marker.
    pub owner_id: String,
    /// One provider per VM provider config, each wrapped once in its [`Guarded`] decorator.
    pub providers: HashMap<String, Arc<dyn VmProvider>>,
    /// One directory per LDAP config used, each wrapped once in its [`Guarded`] decorator.
    pub directories: HashMap<String, Arc<dyn DirectoryService>>,
    /// The providers and directories as given (unwrapped), by name: a reload keeps those whose
    /// configuration did not change, and wraps them again with its limits.
    pub raw_providers: HashMap<String, Arc<dyn VmProvider>>,
    /// See `raw_providers`.
    pub raw_directories: HashMap<String, Arc<dyn DirectoryService>>,
    /// The builder's overrides of the backends' limits.
    pub limits: Limits,
    /// The check-in keys were given to the builder (not read from the configuration): a reload
    /// keeps them unless it brings others.
    pub tokens_given: bool,
    /// Every auto-scale config's current generation, by name.
    pub generations: HashMap<String, crate::config::Generation>,
    /// The parsed startup scripts, by VM provider config.
    pub templates: HashMap<String, Template>,
    /// The check-in token keys.
    pub tokens: TokenKeys,
    /// How long the first reconcile is waited for: one call's timeout, the longest of any
    /// backend's.
    pub first_reconcile_wait: Duration,
    /// The controller's randomness (server ids; the decorators' jitter).
    pub rng: Arc<Randomness>,
    /// Time between ticks in [`Autoscaler::run`].
    pub tick_interval: Duration,
    /// How long an orphan may exist before it is removed.
    pub orphan_grace: Duration,
    /// How long an adopted server's sessions may stay unknown.
    pub unknown_sessions_timeout: Duration,
    /// How long a request may wait for a slot.
    pub queue_timeout: Duration,
    /// Reconcile every this many ticks.
    pub reconcile_every: u64,
}

/// What the builder was told about backend limits (it wins over each configuration's `api_*`
/// fields): kept, so that a reload wraps new backends the same way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    concurrency: Option<usize>,
    rate_limits: HashMap<String, f64>,
    call_timeout: Option<Duration>,
    retry: RetryPolicy,
}

impl Limits {
    /// The guard of backend `name`, whose configuration says `configured` (its `api_*` fields).
    pub(crate) fn guard(
        &self,
        name: &str,
        configured: Option<ApiLimits>,
        rng: &Arc<Randomness>,
    ) -> Guard {
        let concurrency = self
            .concurrency
            .or(configured.map(|c| c.concurrency as usize))
            .unwrap_or(DEFAULT_API_CONCURRENCY as usize);
        let rate = self
            .rate_limits
            .get(name)
            .copied()
            .or(configured.and_then(|c| c.rate_limit_per_second));
        let timeout = self
            .call_timeout
            .or(configured.map(|c| c.call_timeout))
            .unwrap_or(Duration::from_secs(u64::from(DEFAULT_API_CALL_TIMEOUT)));
        Guard::new(name, concurrency, rate, timeout, self.retry, rng.clone())
    }

    /// `provider` wrapped in its decorator, with the limits `config` gives it.
    pub(crate) fn provider(
        &self,
        config: &Config,
        provider: Arc<dyn VmProvider>,
        rng: &Arc<Randomness>,
    ) -> Arc<Guarded<dyn VmProvider>> {
        let name = provider.name().to_owned();
        let configured = config.vm_provider(&name).map(|p| p.api_limits());
        Arc::new(Guarded::new(provider, self.guard(&name, configured, rng)))
    }

    /// `directory` wrapped in its decorator, with the limits `config` gives it.
    pub(crate) fn directory(
        &self,
        config: &Config,
        directory: Arc<dyn DirectoryService>,
        rng: &Arc<Randomness>,
    ) -> Arc<Guarded<dyn DirectoryService>> {
        let name = directory.name().to_owned();
        let configured = config
            .ldap_configs
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.api_limits());
        Arc::new(Guarded::new(directory, self.guard(&name, configured, rng)))
    }
}

/// The startup scripts of `config`, parsed, by VM provider config; every one that does not
/// parse goes into `problems`.
pub(crate) fn templates(
    config: &Config,
    problems: &mut Vec<SetupError>,
) -> HashMap<String, Template> {
    let mut templates = HashMap::new();
    for provider in &config.vm_providers {
        let Some(text) = provider.script_text() else {
            continue;
        };
        match Template::parse(text) {
            Ok(t) => {
                templates.insert(provider.name().to_owned(), t);
            }
            Err(error) => problems.push(SetupError::Script {
                provider: provider.name().to_owned(),
                error,
            }),
        }
    }
    templates
}

/// What the setup knows of one VM provider config's provider.
pub(crate) enum Given {
    /// No provider.
    Missing,
    /// A provider, with its capabilities when they count (`None`: not checked, e.g. a stale
    /// provider that is an error of its own).
    Provider(Option<crate::traits::Capabilities>),
}

/// Every auto-scale config of `config` that has no provider (`providers`), keeps a warm tier on
/// a provider that cannot stop and start VMs, or makes AD records and has no directory in
/// `directories`, into `problems`.
pub(crate) fn missing_backends(
    config: &Config,
    providers: &dyn Fn(&str) -> Given,
    directories: &dyn Fn(&str) -> bool,
    problems: &mut Vec<SetupError>,
) {
    for (_, c) in config.autoscale_configs() {
        match providers(&c.vm_provider_config_id) {
            Given::Missing => problems.push(SetupError::MissingProvider {
                config: c.autoscale_config_name.clone(),
                provider: c.vm_provider_config_id.clone(),
            }),
            Given::Provider(Some(can)) if c.warm_pool.is_some() && !can.stop_start => {
                problems.push(SetupError::NoStopStart {
                    config: c.autoscale_config_name.clone(),
                    provider: c.vm_provider_config_id.clone(),
                });
            }
            Given::Provider(_) => {}
        }
        if c.ad_create_machine_record
            && let Some(ldap) = &c.ldap_id
            && !directories(ldap)
        {
            problems.push(SetupError::MissingDirectory {
                config: c.autoscale_config_name.clone(),
                ldap: ldap.clone(),
            });
        }
    }
}

/// Builds an [`Autoscaler`]; [`AutoscalerBuilder::build`] checks that everything fits.
pub struct AutoscalerBuilder {
    config: Config,
    owner_id: String,
    providers: HashMap<String, Arc<dyn VmProvider>>,
    directories: HashMap<String, Arc<dyn DirectoryService>>,
    tokens: Option<TokenKeys>,
    limits: Limits,
    seed: Option<u64>,
    epoch: Option<Timestamp>,
    tick_interval: Duration,
    store: Arc<dyn StateStore>,
    orphan_grace: Duration,
    unknown_sessions_timeout: Duration,
    queue_timeout: Duration,
    reconcile_every: u64,
    role: super::Role,
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
            limits: Limits::default(),
            seed: None,
            epoch: None,
            tick_interval: Duration::from_secs(30),
            store: Arc::new(MemoryStore::default()),
            orphan_grace: Duration::from_secs(600),
            unknown_sessions_timeout: Duration::from_secs(3600),
            queue_timeout: Duration::from_secs(600),
            reconcile_every: 10,
            role: super::Role::Sole,
        }
    }
}

impl AutoscalerBuilder {
    /// The id written into every owner marker: one per broker installation (default `kasm-scale`).
    pub fn owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = owner_id.into();
        self
    }

    /// Its role at start (default [`Role::Sole`](super::Role::Sole): it acts alone). A replica
    /// of a shared store starts as a follower (`Role::Follower { leader: None }`) and acts when
    /// its lease keeper calls [`Autoscaler::lead`].
    pub fn role(mut self, role: super::Role) -> Self {
        self.role = role;
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

    /// Calls in flight per provider or directory, for every backend (overrides each
    /// configuration's `api_concurrency`, default 8).
    pub fn concurrency(mut self, calls: usize) -> Self {
        self.limits.concurrency = Some(calls);
        self
    }

    /// At most `calls_per_second` calls to the provider or directory named `name` (overrides its
    /// `api_rate_limit_per_second`).
    pub fn rate_limit(mut self, name: impl Into<String>, calls_per_second: f64) -> Self {
        self.limits
            .rate_limits
            .insert(name.into(), calls_per_second);
        self
    }

    /// How long one call to any backend may take before it fails as transient (overrides each
    /// configuration's `api_call_timeout`, default 30 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.limits.call_timeout = Some(timeout);
        self
    }

    /// Retries of retryable backend errors (the only retry layer).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.limits.retry = policy;
        self
    }

    /// Seed of the controller's randomness (server ids, jitter), for reproducible simulations
    /// and tests. Without it, server ids are UUID v4 from the operating system, unique across
    /// processes and restarts: never set a seed in production.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
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

    /// How long an adopted server whose sessions are unknown
    /// ([`ServerInfo::sessions_unknown`](super::ServerInfo::sessions_unknown)) waits for the
    /// broker's report ([`Autoscaler::report_sessions`](super::Autoscaler::report_sessions))
    /// before it is taken as empty and used (default 1 hour, ours): then it is scaled in like
    /// any idle server, never kept for ever.
    pub fn unknown_sessions_timeout(mut self, timeout: Duration) -> Self {
        self.unknown_sessions_timeout = timeout;
        self
    }

    /// How long a session request may wait for a slot before it is dropped with
    /// [`Event::RequestExpired`](super::Event::RequestExpired) (default 10 minutes, ours).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
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
    /// records), that every startup script parses, and builds the controller. Nothing is
    /// loaded or called yet: the saved state is loaded by [`Autoscaler::start`], which every
    /// broker call and tick runs first.
    pub fn build(self) -> Result<Autoscaler, ControllerError> {
        crate::config::validate(&self.config)?;
        let mut problems = Vec::new();
        let templates = templates(&self.config, &mut problems);
        missing_backends(
            &self.config,
            &|p| match self.providers.get(p) {
                Some(p) => Given::Provider(Some(p.capabilities())),
                None => Given::Missing,
            },
            &|l| self.directories.contains_key(l),
            &mut problems,
        );
        if self.owner_id.trim().is_empty() {
            problems.push(SetupError::EmptyOwnerId);
        }
        if !problems.is_empty() {
            return Err(ControllerError::Setup(problems));
        }
        let tokens = match (&self.tokens, &self.config.checkin_token) {
            (Some(t), _) => t.clone(),
            (None, Some(section)) => TokenKeys::from_config(section)?,
            (None, None) => TokenKeys::generate()?,
        };
        // Every backend is wrapped once: its calls are limited, bounded, retried and traced
        // in its decorator, and the controller's call sites are plain calls.
        let rng = Arc::new(Randomness::new(self.seed));
        let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
        let mut first_reconcile_wait = Duration::ZERO;
        for (name, provider) in &self.providers {
            let guarded = self.limits.provider(&self.config, provider.clone(), &rng);
            first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
            providers.insert(name.clone(), guarded);
        }
        let mut directories: HashMap<String, Arc<dyn DirectoryService>> = HashMap::new();
        for (name, directory) in &self.directories {
            let guarded = self.limits.directory(&self.config, directory.clone(), &rng);
            first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
            directories.insert(name.clone(), guarded);
        }
        // The store: bounded in time, one attempt per call (a save that fails is tried again by
        // the next save, and a broker call waits for its own: see `saved`).
        let store_guard = Guard::new(
            "state_store",
            usize::MAX,
            None,
            STORE_TIMEOUT,
            RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            rng.clone(),
        );
        let store: Arc<dyn StateStore> = Arc::new(Guarded::new(self.store.clone(), store_guard));
        let shared = Shared {
            live: std::sync::RwLock::new(Arc::new(Setup {
                owner_id: self.owner_id,
                providers,
                directories,
                raw_providers: self.providers,
                raw_directories: self.directories,
                limits: self.limits,
                tokens_given: self.tokens.is_some(),
                generations: super::snapshot::generations(&self.config),
                templates,
                tokens,
                first_reconcile_wait,
                rng,
                tick_interval: self.tick_interval,
                orphan_grace: self.orphan_grace,
                unknown_sessions_timeout: self.unknown_sessions_timeout,
                queue_timeout: self.queue_timeout,
                reconcile_every: self.reconcile_every,
                config: Arc::new(self.config),
            })),
            state: State::new(store),
            events: Events::new(4096),
            clock: Clock::new(self.epoch.unwrap_or_else(Timestamp::now), self.role),
            tasks: Tasks::default(),
        };
        Ok(Autoscaler::from_shared(shared))
    }
}
