//! Reloading the configuration without a restart *(ours)*: [`Autoscaler::reconfigure`].
//!
//! The new configuration is checked in full first (validation, startup scripts, a provider and
//! a directory for every config that needs one, the check-in keys); one that fails is refused
//! with every problem, and the running one stays. One that passes replaces the configuration
//! and backends whole, between two ticks. What it changes takes effect from the next tick:
//!
//! - a config whose generation changed rolls its servers out (the engine's rollout rules);
//! - a config or pool that is gone drains: its servers take no new session and go when empty
//!   (their providers and directories are kept for that until they are gone), and a removed
//!   pool refuses new requests;
//! - minimums, schedules and policies steer the next plan;
//! - broker keys and check-in keys are the new ones at once (a rotated check-in key keeps
//!   verifying the tokens of the previous keys it lists).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::builder::{Setup, missing_backends, templates};
use super::events::{ControllerError, Event, SetupError};
use super::{Autoscaler, Shared};
use crate::config::Config;
use crate::token::TokenKeys;
use crate::traits::{DirectoryService, VmProvider};

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// Auto-scale configs whose generation changed: their servers are rolled out.
    pub new_generations: Vec<String>,
    /// Auto-scale configs added.
    pub configs_added: Vec<String>,
    /// Auto-scale configs removed: their servers drain.
    pub configs_removed: Vec<String>,
    /// Pools added.
    pub pools_added: Vec<String>,
    /// Pools removed: they refuse new requests and their servers drain.
    pub pools_removed: Vec<String>,
    /// VM provider configs whose provider was replaced.
    pub providers_replaced: Vec<String>,
    /// LDAP configs whose directory was replaced.
    pub directories_replaced: Vec<String>,
    /// The check-in key that signs changed.
    pub checkin_key_rotated: bool,
}

/// A reload in the making: a new configuration and the backends it brings. See
/// [`Autoscaler::reconfiguration`].
#[must_use = "a reconfiguration does nothing until applied"]
pub struct Reconfiguration<'a> {
    scaler: &'a Autoscaler,
    config: Config,
    providers: HashMap<String, Arc<dyn VmProvider>>,
    directories: HashMap<String, Arc<dyn DirectoryService>>,
    tokens: Option<TokenKeys>,
}

impl std::fmt::Debug for Reconfiguration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconfiguration")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("directories", &self.directories.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Autoscaler {
    /// Replaces the configuration with `config`, keeping the running providers and directories
    /// (their configurations must not have changed: see [`Autoscaler::reconfiguration`] to
    /// bring new ones). Waits for a running tick to end; returns what changed, or every
    /// problem, in which case nothing changed.
    pub async fn reconfigure(&self, config: Config) -> Result<Reloaded, ControllerError> {
        self.reconfiguration(config).apply().await
    }

    /// A reload of `config` that can bring new backends: a provider for each VM provider config
    /// that is new or changed, a directory for each such LDAP config (those unchanged keep
    /// theirs), and check-in keys. [`Reconfiguration::apply`] checks and applies it.
    pub fn reconfiguration(&self, config: Config) -> Reconfiguration<'_> {
        Reconfiguration {
            scaler: self,
            config,
            providers: HashMap::new(),
            directories: HashMap::new(),
            tokens: None,
        }
    }
}

impl Reconfiguration<'_> {
    /// The provider for the VM provider config it names (built from the new configuration).
    pub fn provider(mut self, provider: Arc<dyn VmProvider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// The directory for the LDAP config it names (built from the new configuration).
    pub fn directory(mut self, directory: Arc<dyn DirectoryService>) -> Self {
        self.directories
            .insert(directory.name().to_owned(), directory);
        self
    }

    /// The check-in keys (default: the new configuration's `checkin_token`, read again, files
    /// and environment included; without one, the running keys stay).
    pub fn tokens(mut self, keys: TokenKeys) -> Self {
        self.tokens = Some(keys);
        self
    }

    /// Checks the new configuration in full and, when it passes, puts it in force between two
    /// ticks. Refused: every problem is logged, evented ([`Event::ReloadRefused`]) and counted
    /// (`kasm_scale_reloads_total{result="refused"}`), and returned; nothing changed.
    pub async fn apply(self) -> Result<Reloaded, ControllerError> {
        let shared = self.scaler.shared.clone();
        // Between two ticks: a tick reads one configuration from its start to its end.
        let _between_ticks = shared.clock.tick_lock.lock().await;
        let span = tracing::info_span!("reload", pools = self.config.pools.len());
        let _entered = span.enter();
        match prepare(&shared, self) {
            Ok((setup, changes)) => {
                put_in_force(&shared, setup, &changes);
                tracing::info!(?changes, "configuration reloaded");
                metrics::counter!("kasm_scale_reloads_total", "result" => "applied").increment(1);
                shared.events.emit(Event::Reconfigured {
                    changes: changes.clone(),
                });
                Ok(changes)
            }
            Err(e) => {
                let problems = problems(&e);
                tracing::error!(problems = ?problems, "configuration refused: the running one stays");
                metrics::counter!("kasm_scale_reloads_total", "result" => "refused").increment(1);
                shared.events.emit(Event::ReloadRefused { problems });
                Err(e)
            }
        }
    }
}

/// Every problem of a refused reload, one per line of its message.
fn problems(e: &ControllerError) -> Vec<String> {
    match e {
        ControllerError::Setup(list) => list.iter().map(ToString::to_string).collect(),
        ControllerError::Config(crate::ConfigError::Invalid { problems }) => problems
            .iter()
            .filter(|p| p.severity == crate::config::Severity::Error)
            .map(ToString::to_string)
            .collect(),
        other => vec![other.to_string()],
    }
}

/// The new setup, checked, and what it changes; or every problem.
fn prepare(
    shared: &Shared,
    next: Reconfiguration<'_>,
) -> Result<(Setup, Reloaded), ControllerError> {
    let old = shared.setup();
    let config = next.config;
    crate::config::validate(&config)?;
    let mut problems = Vec::new();
    let templates = templates(&config, &mut problems);
    let records = shared.state.records();
    // Providers: given, or kept where their configuration is unchanged; those of removed
    // configs are kept while their servers live (they destroy them).
    let mut raw_providers = next.providers.clone();
    let mut providers = HashMap::new();
    let mut replaced = Vec::new();
    // Named once as stale, not again as missing.
    let mut stale: Vec<String> = Vec::new();
    let mut first_reconcile_wait = old.first_reconcile_wait;
    for (name, raw) in &old.raw_providers {
        if raw_providers.contains_key(name) {
            continue;
        }
        let (before, after) = (old.config.vm_provider(name), config.vm_provider(name));
        let used = config
            .autoscale_configs()
            .any(|(_, c)| &c.vm_provider_config_id == name);
        if after.is_some() && before != after {
            if used {
                problems.push(SetupError::StaleProvider {
                    provider: name.clone(),
                });
                stale.push(name.clone());
            }
            continue;
        }
        if after.is_some() || records.servers.values().any(|s| &s.provider == name) {
            raw_providers.insert(name.clone(), raw.clone());
            if let Some(guarded) = old.providers.get(name) {
                providers.insert(name.clone(), guarded.clone());
            }
        }
    }
    for (name, raw) in &next.providers {
        replaced.push(name.clone());
        let guarded = old.limits.provider(&config, raw.clone(), &old.rng);
        first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
        providers.insert(name.clone(), guarded as Arc<dyn VmProvider>);
    }
    // Directories: the same rules, by LDAP config.
    let mut raw_directories = next.directories.clone();
    let mut directories = HashMap::new();
    let mut directories_replaced = Vec::new();
    let ldap = |c: &Config, name: &str| c.ldap_configs.iter().find(|l| l.name == name).cloned();
    for (name, raw) in &old.raw_directories {
        if raw_directories.contains_key(name) {
            continue;
        }
        let (before, after) = (ldap(&old.config, name), ldap(&config, name));
        let used = config.autoscale_configs().any(|(_, c)| {
            c.ad_create_machine_record && c.ldap_id.as_deref() == Some(name.as_str())
        });
        if after.is_some() && before != after {
            if used {
                problems.push(SetupError::StaleDirectory { ldap: name.clone() });
                stale.push(name.clone());
            }
            continue;
        }
        let held = records
            .servers
            .values()
            .any(|s| s.ad.as_ref().is_some_and(|ad| &ad.ldap == name));
        if after.is_some() || held {
            raw_directories.insert(name.clone(), raw.clone());
            if let Some(guarded) = old.directories.get(name) {
                directories.insert(name.clone(), guarded.clone());
            }
        }
    }
    for (name, raw) in &next.directories {
        directories_replaced.push(name.clone());
        let guarded = old.limits.directory(&config, raw.clone(), &old.rng);
        first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
        directories.insert(name.clone(), guarded as Arc<dyn DirectoryService>);
    }
    drop(records);
    missing_backends(
        &config,
        &|p| providers.contains_key(p) || stale.iter().any(|s| s == p),
        &|l| directories.contains_key(l) || stale.iter().any(|s| s == l),
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(ControllerError::Setup(problems));
    }
    let tokens_given = old.tokens_given || next.tokens.is_some();
    let tokens = match (next.tokens, &config.checkin_token) {
        (Some(keys), _) => keys,
        (None, _) if old.tokens_given => old.tokens.clone(),
        (None, Some(section)) => TokenKeys::from_config(section)?,
        (None, None) => old.tokens.clone(),
    };
    let generations = super::snapshot::generations(&config);
    let changes = changes(
        &old,
        &config,
        &generations,
        &tokens,
        replaced,
        directories_replaced,
    );
    let setup = Setup {
        generations,
        config: Arc::new(config),
        owner_id: old.owner_id.clone(),
        providers,
        directories,
        raw_providers,
        raw_directories,
        limits: old.limits.clone(),
        tokens_given,
        templates,
        tokens,
        first_reconcile_wait,
        rng: old.rng.clone(),
        tick_interval: old.tick_interval,
        orphan_grace: old.orphan_grace,
        unknown_sessions_timeout: old.unknown_sessions_timeout,
        queue_timeout: old.queue_timeout,
        reconcile_every: old.reconcile_every,
    };
    Ok((setup, changes))
}

/// What `config` changes from the `old` setup's.
fn changes(
    old: &Setup,
    config: &Config,
    generations: &HashMap<String, crate::config::Generation>,
    tokens: &TokenKeys,
    mut providers_replaced: Vec<String>,
    mut directories_replaced: Vec<String>,
) -> Reloaded {
    let names = |c: &Config| -> Vec<String> {
        c.autoscale_configs()
            .map(|(_, a)| a.autoscale_config_name.clone())
            .collect()
    };
    let pools = |c: &Config| -> Vec<String> {
        c.pools.iter().map(|p| p.server_pool_name.clone()).collect()
    };
    let (before, after) = (names(&old.config), names(config));
    let (pools_before, pools_after) = (pools(&old.config), pools(config));
    providers_replaced.sort();
    directories_replaced.sort();
    Reloaded {
        new_generations: after
            .iter()
            .filter(|n| before.contains(n) && old.generations.get(*n) != generations.get(*n))
            .cloned()
            .collect(),
        configs_added: after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect(),
        configs_removed: before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect(),
        pools_added: pools_after
            .iter()
            .filter(|n| !pools_before.contains(n))
            .cloned()
            .collect(),
        pools_removed: pools_before
            .iter()
            .filter(|n| !pools_after.contains(n))
            .cloned()
            .collect(),
        providers_replaced,
        directories_replaced,
        checkin_key_rotated: tokens.key_id() != old.tokens.key_id(),
    }
}

/// Puts `setup` in force. Servers recorded before generations were get the generation of the
/// configuration they ran under, so that a changed one rolls them out too.
fn put_in_force(shared: &Shared, setup: Setup, changes: &Reloaded) {
    let old = shared.setup();
    {
        let unstamped = shared
            .state
            .records()
            .servers
            .values()
            .any(|s| s.generation.is_none());
        if unstamped {
            let mut records = shared.state.records();
            for s in records.servers.values_mut() {
                if s.generation.is_none() {
                    s.generation = old.generations.get(&s.config).copied();
                }
            }
        }
    }
    if changes.checkin_key_rotated {
        let mut records = shared.state.records();
        super::state::check_key(&setup.tokens, &shared.events, &mut records);
    }
    *shared.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(setup);
}
