//! Every backend a configuration names, built in one call: [`from_config`].
//!
//! One [`VmProvider`] per `vm_providers` entry, one [`DirectoryService`] per LDAP config an
//! auto-scale config uses to create AD computer records, and the `state_store`. A kind this build
//! lacks (`aws`, `azure`, `ldap`, `postgres` are features) is an error that names the entry and
//! the feature to build with. `kasm-scale serve` builds its backends here.
//!
//! # Examples
//!
//! ```no_run
//! use kasm_scale::prelude::*;
//!
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! let config = load_file("kasm-scale.toml")?.config;
//! let backends = kasm_scale::backends::from_config(&config).await?;
//! let scaler = backends
//!     .attach(Autoscaler::builder(config).owner_id("my-broker"))
//!     .build()?;
//! # let _ = scaler;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::time::Duration;

use kasm_scale_core::config::{Config, LdapConfig, StateStoreConfig, VmProviderConfig};
use kasm_scale_core::controller::{AutoscalerBuilder, FileStore, Role};
use kasm_scale_core::memory::{MemoryCloud, MemoryStore};
use kasm_scale_core::traits::{DirectoryService, StateStore, VmProvider};

/// Why [`from_config`] could not build a backend. The message names the configuration entry
/// and never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendsError {
    /// A `vm_providers` entry could not be built (or this build lacks its kind).
    #[error("vm provider `{name}`: {reason}")]
    Provider {
        /// The entry's `name`.
        name: String,
        /// Why.
        reason: String,
    },
    /// An `ldap_configs` entry could not be built (or this build lacks Active Directory).
    #[error("ldap config `{name}`: {reason}")]
    Directory {
        /// The entry's `name`.
        name: String,
        /// Why.
        reason: String,
    },
    /// The `state_store` could not be opened (or this build lacks its kind).
    #[error("state_store: {reason}")]
    Store {
        /// Why.
        reason: String,
    },
    /// The PostgreSQL store could not be set up (its message names `state_store` itself).
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(kasm_scale_postgres::ConnectError),
}

/// The backends of one configuration, ready for [`Backends::attach`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Backends {
    /// One per `vm_providers` entry, in the configuration's order.
    pub providers: Vec<Arc<dyn VmProvider>>,
    /// One per LDAP config that an auto-scale config with `ad_create_machine_record` uses.
    pub directories: Vec<Arc<dyn DirectoryService>>,
    /// The configured `state_store` (this process's memory when none is set).
    pub store: Arc<dyn StateStore>,
    /// A handle on each in-memory cloud among `providers`, by VM provider config name: a
    /// reload ([`rebuild`]) serves a changed config from the same cloud, so its VMs survive.
    pub memory_clouds: BTreeMap<String, MemoryCloud>,
    /// With a `postgres` store: the store itself and its lease's time to live, for
    /// [`Backends::keep_lease`].
    #[cfg(feature = "postgres")]
    pub postgres: Option<(Arc<kasm_scale_postgres::PostgresStore>, Duration)>,
}

impl Backends {
    /// Whether replicas share the store: the controller then starts as a follower and leads
    /// only while it holds the lease ([`Backends::keep_lease`]).
    pub fn replicated(&self) -> bool {
        #[cfg(feature = "postgres")]
        return self.postgres.is_some();
        #[cfg(not(feature = "postgres"))]
        false
    }

    /// Hands every backend to `builder`: the providers, the directories and the store, and the
    /// follower role when the store is shared.
    pub fn attach(&self, mut builder: AutoscalerBuilder) -> AutoscalerBuilder {
        for provider in &self.providers {
            builder = builder.provider(provider.clone());
        }
        for directory in &self.directories {
            builder = builder.directory(directory.clone());
        }
        builder = builder.store(self.store.clone());
        if self.replicated() {
            builder = builder.role(Role::Follower { leader: None });
        }
        builder
    }

    /// With a shared `postgres` store: starts taking part in the lease for `scaler`, which
    /// other replicas send callers to at `address`. `None` with any other store.
    #[cfg(feature = "postgres")]
    pub fn keep_lease(
        &self,
        scaler: &kasm_scale_core::controller::Autoscaler,
        address: String,
    ) -> Option<kasm_scale_postgres::LeaseKeeper> {
        let (store, ttl) = self.postgres.as_ref()?;
        let options = kasm_scale_postgres::LeaseOptions::new(*ttl, address);
        Some(kasm_scale_postgres::LeaseKeeper::start(
            scaler.clone(),
            store.clone(),
            options,
        ))
    }
}

/// Builds every backend `config` names. Connects to PostgreSQL when the store is `postgres`;
/// clouds and directories are contacted only when the controller first uses them.
pub async fn from_config(config: &Config) -> Result<Backends, BackendsError> {
    let mut providers = Vec::with_capacity(config.vm_providers.len());
    let mut memory_clouds = BTreeMap::new();
    for provider in &config.vm_providers {
        providers.push(built(provider, &mut memory_clouds).await?);
    }
    let directories = directories(config)?;
    let backends = Backends {
        providers,
        directories,
        store: Arc::new(MemoryStore::default()),
        memory_clouds,
        #[cfg(feature = "postgres")]
        postgres: None,
    };
    state_store(config, backends).await
}

/// The provider of `config`; an in-memory cloud is the one of `memory_clouds` of that name
/// when there is one (serving `config` from now on, its VMs kept), and is kept there.
async fn built(
    config: &VmProviderConfig,
    memory_clouds: &mut BTreeMap<String, MemoryCloud>,
) -> Result<Arc<dyn VmProvider>, BackendsError> {
    let VmProviderConfig::Memory(m) = config else {
        return vm_provider(config).await;
    };
    let cloud = match memory_clouds.get(&m.name) {
        Some(existing) => existing.with_config(m.clone()),
        None => MemoryCloud::new(m.clone(), rand_seed()),
    };
    memory_clouds.insert(m.name.clone(), cloud.with_config(m.clone()));
    Ok(Arc::new(cloud))
}

/// What a reload needs built: a provider for each VM provider config that is new or changed,
/// a directory for each used LDAP config that is new or changed (see [`rebuild`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Rebuilt {
    /// The new providers, each named by its VM provider config.
    pub providers: Vec<Arc<dyn VmProvider>>,
    /// The new directories, each named by its LDAP config.
    pub directories: Vec<Arc<dyn DirectoryService>>,
}

/// The backends a reload from `old` to `new` must bring
/// ([`Reconfiguration`](kasm_scale_core::controller::Reconfiguration)): providers and
/// directories whose configuration is unchanged are not built again (the running ones stay);
/// a changed in-memory cloud is the same cloud (of `memory_clouds`) serving its new config,
/// and a new one is added to `memory_clouds` (a handle is only ever the source of the next
/// reload's cloud, so a reload refused later leaves nothing wrong there). A changed
/// `state_store` is refused: the live state cannot move to another store. Every problem is
/// returned.
///
/// # Examples
///
/// ```no_run
/// # async fn reload(scaler: &kasm_scale::prelude::Autoscaler, backends: &mut kasm_scale::backends::Backends)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use kasm_scale::prelude::*;
///
/// let new = load_file("kasm-scale.toml")?.config;
/// let rebuilt = kasm_scale::backends::rebuild(&scaler.config(), &new, &mut backends.memory_clouds)
///     .await
///     .map_err(|problems| problems[0].to_string())?;
/// let mut reload = scaler.reconfiguration(new);
/// for provider in rebuilt.providers {
///     reload = reload.provider(provider);
/// }
/// for directory in rebuilt.directories {
///     reload = reload.directory(directory);
/// }
/// let changes = reload.apply().await?;
/// # let _ = changes;
/// # Ok(())
/// # }
/// ```
pub async fn rebuild(
    old: &Config,
    new: &Config,
    memory_clouds: &mut BTreeMap<String, MemoryCloud>,
) -> Result<Rebuilt, Vec<BackendsError>> {
    let mut problems = Vec::new();
    if old.state_store.clone().unwrap_or_default() != new.state_store.clone().unwrap_or_default() {
        problems.push(BackendsError::Store {
            reason: "changed, but a reload cannot move the live state to another store: \
                     restart the service to use the new one (or put the old section back)"
                .to_owned(),
        });
    }
    let mut providers = Vec::new();
    for provider in &new.vm_providers {
        if old.vm_provider(provider.name()) == Some(provider) {
            continue;
        }
        match built(provider, memory_clouds).await {
            Ok(p) => providers.push(p),
            Err(e) => problems.push(e),
        }
    }
    let mut directories = Vec::new();
    for ldap in used_ldap(new) {
        if old.ldap_configs.iter().any(|l| l == ldap) {
            continue;
        }
        match directory(ldap) {
            Ok(d) => directories.push(d),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(Rebuilt {
            providers,
            directories,
        })
    } else {
        Err(problems)
    }
}

/// The provider of one VM provider config, as this build supports it.
async fn vm_provider(config: &VmProviderConfig) -> Result<Arc<dyn VmProvider>, BackendsError> {
    let failed = |reason: String| BackendsError::Provider {
        name: config.name().to_owned(),
        reason,
    };
    match config {
        VmProviderConfig::Memory(m) => Ok(Arc::new(MemoryCloud::new(m.clone(), rand_seed()))),
        #[cfg(feature = "aws")]
        VmProviderConfig::Aws(c) => Ok(Arc::new(
            kasm_scale_aws::AwsProvider::builder(c.clone())
                .build()
                .await
                .map_err(|e| failed(e.to_string()))?,
        )),
        #[cfg(feature = "azure")]
        VmProviderConfig::Azure(c) => Ok(Arc::new(
            kasm_scale_azure::AzureProvider::builder(c.clone())
                .build()
                .map_err(|e| failed(e.to_string()))?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(failed(format!(
            "this build has no {kind} support (build with `--features {kind}`)",
            kind = other.kind()
        ))),
    }
}

/// The directories the auto-scale configs use, as this build supports them.
fn directories(config: &Config) -> Result<Vec<Arc<dyn DirectoryService>>, BackendsError> {
    used_ldap(config).map(directory).collect()
}

/// The LDAP configs an auto-scale config that creates AD records names.
fn used_ldap(config: &Config) -> impl Iterator<Item = &LdapConfig> {
    let used: BTreeSet<&str> = config
        .autoscale_configs()
        .filter(|(_, c)| c.ad_create_machine_record)
        .filter_map(|(_, c)| c.ldap_id.as_deref())
        .collect();
    config
        .ldap_configs
        .iter()
        .filter(move |l| used.contains(l.name.as_str()))
}

/// The directory of one LDAP config, as this build supports it.
fn directory(ldap: &LdapConfig) -> Result<Arc<dyn DirectoryService>, BackendsError> {
    #[cfg(feature = "ldap")]
    return Ok(Arc::new(
        kasm_scale_ldap::LdapDirectory::builder(ldap.clone())
            .build()
            .map_err(|e| BackendsError::Directory {
                name: ldap.name.clone(),
                reason: e.to_string(),
            })?,
    ));
    #[cfg(not(feature = "ldap"))]
    Err(BackendsError::Directory {
        name: ldap.name.clone(),
        reason: "this build has no Active Directory support (build with `--features ldap`)"
            .to_owned(),
    })
}

/// `backends` with the state store the configuration names.
#[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
async fn state_store(config: &Config, mut backends: Backends) -> Result<Backends, BackendsError> {
    backends.store = match config.state_store.clone().unwrap_or_default() {
        StateStoreConfig::File(file) => Arc::new(FileStore::new(file.path)),
        StateStoreConfig::Memory {} => Arc::new(MemoryStore::default()),
        #[cfg(feature = "postgres")]
        StateStoreConfig::Postgres(pg) => {
            let store = Arc::new(
                kasm_scale_postgres::PostgresStore::connect(&pg)
                    .await
                    .map_err(BackendsError::Postgres)?,
            );
            backends.postgres = Some((store.clone(), Duration::from_secs(u64::from(pg.lease_ttl))));
            store
        }
        #[cfg(not(feature = "postgres"))]
        StateStoreConfig::Postgres(_) => {
            return Err(BackendsError::Store {
                reason: "kind \"postgres\" needs a kasm-scale built with the `postgres` feature \
                         (cargo build --release --features postgres)"
                    .to_owned(),
            });
        }
    };
    Ok(backends)
}

/// A seed for a memory cloud's own randomness (latencies, injected failures).
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kasm_scale_core::{Autoscaler, Format, load_str};

    const TWO_CLOUDS: &str = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "first"
max_instances = 2

[[vm_providers]]
provider = "memory"
name = "second"
max_instances = 2

[[ldap_configs]]
name = "unused-ad"
url = "ldaps://dc1.example.local:636"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "not-used-here"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-first"
vm_provider_config_id = "first"
connection_type = "RDP"

[[pools.autoscale]]
autoscale_config_name = "desktops-second"
vm_provider_config_id = "second"
connection_type = "RDP"
"#;

    #[tokio::test]
    async fn every_provider_is_built_in_order_and_only_used_directories() {
        let config = load_str(TWO_CLOUDS, Format::Toml).unwrap().config;
        let backends = from_config(&config).await.unwrap();
        let names: Vec<&str> = backends.providers.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["first", "second"]);
        // The LDAP config is named by no auto-scale config that creates AD records.
        assert!(backends.directories.is_empty());
        // No `state_store`: this process's memory, which is not durable, and no lease.
        assert!(!backends.store.durable());
        assert!(!backends.replicated());
        let scaler = backends
            .attach(Autoscaler::builder(config).owner_id("test"))
            .build()
            .unwrap();
        let pools: Vec<String> = scaler.pools().into_iter().map(|p| p.pool).collect();
        assert_eq!(pools, ["desktops"]);
    }

    #[tokio::test]
    async fn a_reload_builds_only_what_changed_and_a_changed_memory_cloud_keeps_its_vms() {
        let old = load_str(TWO_CLOUDS, Format::Toml).unwrap().config;
        let mut backends = from_config(&old).await.unwrap();
        let spec = kasm_scale_core::testkit::vm_spec("test-owner", 1, "echo hi");
        backends.providers[0].create(&spec).await.unwrap();
        // Nothing changed: nothing is built.
        let same = rebuild(&old, &old, &mut backends.memory_clouds)
            .await
            .unwrap();
        assert!(same.providers.is_empty() && same.directories.is_empty());
        // `first` changed: its provider is the same cloud, with the VM made before.
        let text = TWO_CLOUDS.replacen("max_instances = 2", "max_instances = 3", 1);
        let new = load_str(&text, Format::Toml).unwrap().config;
        let rebuilt = rebuild(&old, &new, &mut backends.memory_clouds)
            .await
            .unwrap();
        let names: Vec<&str> = rebuilt.providers.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["first"]);
        let vms = rebuilt.providers[0]
            .list(&spec.owner.owner_id)
            .await
            .unwrap();
        assert_eq!(vms.len(), 1, "the changed cloud still holds its VM");
        // A changed state store is refused with the reason.
        let moved = format!(
            "{text}\n[checkin_token]\nkey = \"a-test-only-check-in-key-0123456789abcdef\"\n\n[state_store]\nkind = \"file\"\npath = \"/tmp/x.json\"\n"
        );
        let moved = load_str(&moved, Format::Toml).unwrap().config;
        let problems = rebuild(&new, &moved, &mut backends.memory_clouds)
            .await
            .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .starts_with("state_store: changed, but a reload cannot move the live state"),
            "{}",
            problems[0]
        );
    }

    #[tokio::test]
    async fn the_named_file_store_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let text = format!(
            "{TWO_CLOUDS}\n[checkin_token]\nkey = \"a-test-only-check-in-key-0123456789abcdef\"\n\n[state_store]\nkind = \"file\"\npath = {:?}\n",
            path.display().to_string()
        );
        let config = load_str(&text, Format::Toml).unwrap().config;
        let backends = from_config(&config).await.unwrap();
        assert!(backends.store.durable());
        assert!(!path.exists());
        let records = kasm_scale_core::controller::Records::default();
        backends.store.save(&records).await.unwrap();
        assert!(path.exists(), "the save went to the configured file");
        assert_eq!(backends.store.load().await.unwrap(), Some(records));
    }

    #[cfg(all(feature = "aws", feature = "ldap"))]
    #[tokio::test]
    async fn a_cloud_and_the_directory_its_config_joins_are_built() {
        let loaded = kasm_scale_core::load_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/config/aws-windows-ad.toml"
        ))
        .unwrap();
        let backends = from_config(&loaded.config).await.unwrap();
        let names: Vec<&str> = backends.providers.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["aws-eu-central"]);
        assert_eq!(backends.directories.len(), 1);
        assert_eq!(backends.directories[0].name(), "corp-ad-join");
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn an_unreachable_database_is_named_once() {
        // A closed port on loopback (no TLS needed there): the connection is refused at once.
        let text = format!(
            "{TWO_CLOUDS}\n[checkin_token]\nkey = \"a-test-only-check-in-key-0123456789abcdef\"\n\n\
             [state_store]\nkind = \"postgres\"\nurl = \"postgres://kasm@127.0.0.1:1/kasm\"\n"
        );
        let config = load_str(&text, Format::Toml).unwrap().config;
        let message = from_config(&config).await.unwrap_err().to_string();
        assert!(
            message.starts_with("state_store: cannot reach PostgreSQL"),
            "{message}"
        );
        assert_eq!(message.matches("state_store").count(), 1, "{message}");
    }
}
