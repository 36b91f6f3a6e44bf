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

use super::builder::{Given, Setup, missing_backends, templates};
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

impl Autoscaler {
    /// Tells that a reload was refused with `problems` before it reached
    /// [`Reconfiguration::apply`] (a file that does not parse, a certificate that does not
    /// match, a rule of the program's own): logged, evented ([`Event::ReloadRefused`]) and
    /// counted (`kasm_scale_reloads_total{result="refused"}`) as `apply`'s own refusals are.
    /// Nothing changes.
    pub fn reload_refused(&self, problems: Vec<String>) {
        tracing::error!(problems = ?problems, "configuration refused: the running one stays");
        metrics::counter!("kasm_scale_reloads_total", "result" => "refused").increment(1);
        self.shared.events.emit(Event::ReloadRefused { problems });
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
        let scaler = self.scaler.clone();
        let shared = self.scaler.shared.clone();
        // What the new configuration keeps depends on the servers: they are loaded first.
        self.scaler.start().await?;
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
                scaler.reload_refused(e.problems());
                Err(e)
            }
        }
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
    moved_configs(&config, &records, &mut problems);
    // Providers: given, or kept where their configuration is unchanged; those that servers
    // still name are kept while they live (they destroy them).
    let provider_changed = |name: &str| {
        config
            .vm_provider(name)
            .map(|after| old.config.vm_provider(name) != Some(after))
    };
    let provider_used = |name: &str| {
        config
            .autoscale_configs()
            .any(|(_, c)| c.vm_provider_config_id == name)
    };
    let provider_held = |name: &str| records.servers.values().any(|s| s.provider == name);
    let mut stale = Vec::new();
    let (raw_providers, mut providers) = carry(
        Backends {
            raw: &old.raw_providers,
            guarded: &old.providers,
            given: &next.providers,
        },
        Rules {
            changed: &provider_changed,
            used: &provider_used,
            held: &provider_held,
        },
        &mut stale,
    );
    for name in &stale {
        problems.push(SetupError::StaleProvider {
            provider: name.clone(),
        });
    }
    for name in next.providers.keys() {
        if provider_held(name)
            && let (Some(before), Some(after)) =
                (old.config.vm_provider(name), config.vm_provider(name))
            && let Some(field) = moved_scope(before, after)
        {
            problems.push(SetupError::ProviderMoved {
                provider: name.clone(),
                field,
            });
        }
    }
    let mut first_reconcile_wait = old.first_reconcile_wait;
    let mut replaced: Vec<String> = next.providers.keys().cloned().collect();
    for (name, raw) in &next.providers {
        let guarded = old.limits.provider(&config, raw.clone(), &old.rng);
        first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
        providers.insert(name.clone(), guarded as Arc<dyn VmProvider>);
    }
    // Directories: the same rules, by LDAP config.
    let ldap = |c: &Config, name: &str| c.ldap_configs.iter().find(|l| l.name == name).cloned();
    let directory_changed =
        |name: &str| ldap(&config, name).map(|after| ldap(&old.config, name) != Some(after));
    let directory_used = |name: &str| {
        config
            .autoscale_configs()
            .any(|(_, c)| c.ad_create_machine_record && c.ldap_id.as_deref() == Some(name))
    };
    let directory_held = |name: &str| {
        records
            .servers
            .values()
            .any(|s| s.ad.as_ref().is_some_and(|ad| ad.ldap == name))
    };
    let mut stale_directories = Vec::new();
    let (raw_directories, mut directories) = carry(
        Backends {
            raw: &old.raw_directories,
            guarded: &old.directories,
            given: &next.directories,
        },
        Rules {
            changed: &directory_changed,
            used: &directory_used,
            held: &directory_held,
        },
        &mut stale_directories,
    );
    for name in &stale_directories {
        problems.push(SetupError::StaleDirectory { ldap: name.clone() });
    }
    let mut directories_replaced: Vec<String> = next.directories.keys().cloned().collect();
    for (name, raw) in &next.directories {
        let guarded = old.limits.directory(&config, raw.clone(), &old.rng);
        first_reconcile_wait = first_reconcile_wait.max(guarded.timeout());
        directories.insert(name.clone(), guarded as Arc<dyn DirectoryService>);
    }
    stale.extend(stale_directories);
    replaced.sort();
    directories_replaced.sort();
    drop(records);
    missing_backends(
        &config,
        &|p| match providers.get(p) {
            Some(p) => Given::Provider(Some(p.capabilities())),
            None if stale.iter().any(|s| s == p) => Given::Provider(None),
            None => Given::Missing,
        },
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
    let mut expired = Vec::new();
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
    {
        let mut records = shared.state.records();
        // A new generation starts with a clean slate: the old one's failures do not hold back
        // its canary.
        for name in &changes.new_generations {
            if let Some(bk) = records.bookkeeping.get_mut(name) {
                bk.consecutive_failures = 0;
                bk.last_failure_at = None;
            }
        }
        // Requests waiting in a removed pool can never be seated: they end now.
        let now = shared.clock.now();
        for pool in &changes.pools_removed {
            for q in records.queued.remove(pool).unwrap_or_default() {
                records.users.remove(&q.session);
                expired.push(Event::RequestExpired {
                    session: q.session,
                    pool: pool.clone(),
                    waited_seconds: (now - q.since).get_seconds(),
                });
            }
        }
        records.acted_generations = setup
            .generations
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
    }
    if changes.checkin_key_rotated {
        let mut records = shared.state.records();
        super::state::check_key(&setup.tokens, &shared.events, &mut records);
    }
    *shared.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(setup);
    shared.events.tell(expired);
}

/// The running backends of one kind, and those a reload brings.
struct Backends<'a, B: ?Sized> {
    raw: &'a HashMap<String, Arc<B>>,
    guarded: &'a HashMap<String, Arc<B>>,
    given: &'a HashMap<String, Arc<B>>,
}

/// What a reload says of a backend by name.
struct Rules<'a> {
    /// Configured in the new configuration: `Some(whether its section changed)`.
    changed: &'a dyn Fn(&str) -> Option<bool>,
    /// An auto-scale config of the new configuration uses it.
    used: &'a dyn Fn(&str) -> bool,
    /// A recorded server names it (it destroys that server).
    held: &'a dyn Fn(&str) -> bool,
}

/// The running backends a reload keeps, as given (unwrapped) and decorated, plus the given
/// ones as given: each running one not replaced is kept when its section is unchanged, or
/// when a server still names it (a removed or unused one destroys its servers); one whose
/// section changed and that a config uses goes into `stale` (it would go on working the old
/// way).
fn carry<B: ?Sized>(
    running: Backends<'_, B>,
    rules: Rules<'_>,
    stale: &mut Vec<String>,
) -> (HashMap<String, Arc<B>>, HashMap<String, Arc<B>>) {
    let mut raw = running.given.clone();
    let mut guarded = HashMap::new();
    for (name, backend) in running.raw {
        if running.given.contains_key(name) {
            continue;
        }
        let keep = match (rules.changed)(name) {
            Some(false) => true,
            Some(true) if (rules.used)(name) => {
                stale.push(name.clone());
                false
            }
            _ => (rules.held)(name),
        };
        if keep {
            raw.insert(name.clone(), backend.clone());
            if let Some(g) = running.guarded.get(name) {
                guarded.insert(name.clone(), g.clone());
            }
        }
    }
    (raw, guarded)
}

/// The fields of a VM provider config that say where its VMs are: changed, a provider built
/// from the new section no longer finds the VMs the old one made.
pub const PROVIDER_SCOPE_FIELDS: &[&str] = &[
    "aws_region",
    "aws_endpoint_url",
    "azure_subscription_id",
    "azure_resource_group",
    "azure_tenant_id",
    "azure_resource_manager_url",
];

/// The first scope field ([`PROVIDER_SCOPE_FIELDS`]) that differs between two sections of one
/// VM provider config.
fn moved_scope(
    before: &crate::config::VmProviderConfig,
    after: &crate::config::VmProviderConfig,
) -> Option<String> {
    let fields = |p: &crate::config::VmProviderConfig| serde_json::to_value(p).unwrap_or_default();
    let (before, after) = (fields(before), fields(after));
    PROVIDER_SCOPE_FIELDS
        .iter()
        .find(|f| before.get(**f) != after.get(**f))
        .map(|f| (*f).to_owned())
}

/// Every auto-scale config of `config` that is in another pool than its recorded servers, into
/// `problems`: the engine keys servers by config name, so a config's servers must stay in
/// its pool.
fn moved_configs(
    config: &Config,
    records: &super::records::Records,
    problems: &mut Vec<SetupError>,
) {
    for (pool, c) in config.autoscale_configs() {
        let name = &c.autoscale_config_name;
        let elsewhere = records
            .servers
            .values()
            .filter(|s| s.config == *name && s.pool != pool.server_pool_name);
        let mut from = None;
        let mut servers = 0u32;
        for s in elsewhere {
            from.get_or_insert_with(|| s.pool.clone());
            servers += 1;
        }
        if let Some(from) = from {
            problems.push(SetupError::ConfigMoved {
                config: name.clone(),
                from,
                to: pool.server_pool_name.clone(),
                servers,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(extra: &str) -> crate::config::VmProviderConfig {
        let text = format!(
            "[[vm_providers]]\nprovider = \"aws\"\nname = \"vm\"\nmax_instances = 4\n\
             aws_region = \"eu-west-1\"\naws_ec2_ami_id = \"ami-1\"\n\
             aws_ec2_instance_type = \"t3.medium\"\n{extra}"
        );
        crate::load_str(&text, crate::Format::Toml)
            .unwrap()
            .config
            .vm_providers
            .remove(0)
    }

    #[test]
    fn a_region_or_endpoint_is_a_move_an_image_is_not() {
        let base = aws("");
        assert_eq!(moved_scope(&base, &base), None);
        let image = aws("").clone();
        let mut image_text = serde_json::to_value(&image).unwrap();
        image_text["aws_ec2_ami_id"] = "ami-2".into();
        let image: crate::config::VmProviderConfig = serde_json::from_value(image_text).unwrap();
        assert_eq!(moved_scope(&base, &image), None);
        let mut region = serde_json::to_value(&base).unwrap();
        region["aws_region"] = "us-east-2".into();
        let region: crate::config::VmProviderConfig = serde_json::from_value(region).unwrap();
        assert_eq!(moved_scope(&base, &region).as_deref(), Some("aws_region"));
        let endpoint = aws("aws_endpoint_url = \"https://ec2.example.com\"");
        assert_eq!(
            moved_scope(&base, &endpoint).as_deref(),
            Some("aws_endpoint_url")
        );
    }
}
