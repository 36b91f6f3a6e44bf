//! The configuration document: zones, LDAP connections, VM provider configs, pools with their
//! auto-scale configs and schedules, and workspaces, cross-referenced by name.
//!
//! [`load_file`] / [`load_str`] read TOML, YAML or JSON, and validate everything: every problem is
//! reported at once, each with its path (`pools[0].autoscale[1].connection_port`) and a plain
//! reason.

mod api;
mod azure_ids;
mod bounds;
mod endpoint;
pub(crate) mod fields;
mod generation;
mod hostname;
mod ldap;
mod load;
mod offering;
mod pool;
mod provider;
mod rollout;
mod schedule;
mod scripts;
mod store;
mod token;
mod tree;
mod validate;
mod warm;
mod workspace;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use api::{
    ApiLimits, DEFAULT_API_CALL_TIMEOUT, DEFAULT_API_CONCURRENCY, DEFAULT_API_OPERATION_TIMEOUT,
};
pub use bounds::{
    MAX_API_CONCURRENCY, MAX_CALL_TIMEOUT_SECONDS, MAX_DELAY_SECONDS, MAX_INSTANCES,
    MAX_OPERATION_TIMEOUT_SECONDS, MAX_OUTAGE_SECONDS, MAX_RATE_PER_SECOND,
    MAX_SESSIONS_PER_SERVER, MAX_STANDBY_SESSIONS, MAX_WAIT_SECONDS, MIN_RATE_PER_SECOND,
};
pub use endpoint::check_endpoint;
pub use fields::{JsonObject, Tags, merge_json};
pub use generation::{
    GENERATION_SECRET_ROUNDS, Generation, SHAPING_AUTOSCALE_FIELDS, SHAPING_PROVIDER_FIELDS,
    STEERING_AUTOSCALE_FIELDS, STEERING_PROVIDER_FIELDS,
};
pub use hostname::{HEX_HEADROOM, HostnamePattern};
pub use ldap::{Dn, LdapConfig};
pub use offering::{
    AwsAlternative, AzureAlternative, DEFAULT_CAPACITY_SKIP_SECONDS, MAX_ALTERNATIVES,
    MemoryAlternative, Offering,
};
pub use pool::{
    AutoScaleConfig, ConnectionType, CredentialType, DEFAULT_SERVICE_TARGET, Placement, Pool,
    ServerPoolType, StandbyPolicy, rewrite_sso_username,
};
pub use provider::{
    AWS_EBS_VOLUME_TYPES, AWS_USER_DATA_LIMIT, AZURE_CUSTOM_DATA_LIMIT, AZURE_OS_DISK_TYPES,
    AwsVmConfig, AzureAuthority, AzureVmConfig, Distribution, MemoryVmConfig, Outage,
    PROVIDER_KINDS, VmProviderConfig,
};
pub use rollout::{RolloutPolicy, Surge};
pub use schedule::{LocalTime, Schedule, TimeZoneName, Weekday};
pub use store::{
    FileStoreConfig, LEASE_TTL_RANGE, PostgresStoreConfig, STATE_STORE_KINDS, StateStoreConfig,
};
pub use token::{BrokerApiConfig, CheckinTokenConfig, MAX_PREVIOUS_KEYS, MIN_BROKER_KEY_LEN};
pub use warm::{DEFAULT_WARM_MAX_AGE, Readiness, WarmPool};
pub use workspace::{RdpClientType, Workspace, Zone};

/// A whole configuration document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deployment zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<Zone>,
    /// LDAP / Active Directory connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ldap_configs: Vec<LdapConfig>,
    /// VM provider configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vm_providers: Vec<VmProviderConfig>,
    /// Server pools with their auto-scale configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Pool>,
    /// Pool workspaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<Workspace>,
    /// (ours) Where the check-in token key comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_token: Option<CheckinTokenConfig>,
    /// (ours) The keys of the broker API (`kasm-scale serve`'s `/api/v1/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_api: Option<BrokerApiConfig>,
    /// (ours) Where the controller keeps its records across restarts (`memory` without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_store: Option<StateStoreConfig>,
}

impl Config {
    /// The zone named `name`.
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.zone_name == name)
    }

    /// The VM provider config named `name`.
    pub fn vm_provider(&self, name: &str) -> Option<&VmProviderConfig> {
        self.vm_providers.iter().find(|p| p.name() == name)
    }

    /// The LDAP connection named `name`.
    pub fn ldap_config(&self, name: &str) -> Option<&LdapConfig> {
        self.ldap_configs.iter().find(|l| l.name == name)
    }

    /// The container where `config` creates computer records: its `ad_computer_container_dn`,
    /// or by default (ours) `CN=Computers,<search_base>` of its LDAP config, the computers
    /// container every AD domain has. `None` when neither is known (no LDAP config).
    pub fn computer_container(&self, config: &AutoScaleConfig) -> Option<String> {
        match &config.ad_computer_container_dn {
            Some(dn) => Some(dn.clone()),
            None => {
                let ldap = self.ldap_config(config.ldap_id.as_deref()?)?;
                Some(format!("CN=Computers,{}", ldap.search_base))
            }
        }
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.server_pool_name == name)
    }

    /// Every auto-scale config with the pool it feeds.
    pub fn autoscale_configs(&self) -> impl Iterator<Item = (&Pool, &AutoScaleConfig)> {
        self.pools
            .iter()
            .flat_map(|p| p.autoscale.iter().map(move |c| (p, c)))
    }

    /// Writes the document in `format`. Secrets are written in clear: this is for saving a
    /// configuration, never for logging it.
    pub fn to_string(&self, format: Format) -> Result<String, ConfigError> {
        let ser = |e: String| ConfigError::Serialize(e);
        match format {
            Format::Toml => toml::to_string(self).map_err(|e| ser(e.to_string())),
            // Through a JSON tree, so that enums are written as mappings (`{fixed: 60}`), not as
            // YAML tags (`!fixed 60`), which the loader does not read.
            Format::Yaml => serde_json::to_value(self)
                .map_err(|e| ser(e.to_string()))
                .and_then(|v| serde_yaml_ng::to_string(&v).map_err(|e| ser(e.to_string()))),
            Format::Json => serde_json::to_string_pretty(self).map_err(|e| ser(e.to_string())),
        }
    }

    /// One line: "2 pools, 3 auto-scale configs, 2 VM providers".
    pub fn summary(&self) -> String {
        let n =
            |count: usize, one: &str| format!("{count} {one}{}", if count == 1 { "" } else { "s" });
        format!(
            "{}, {}, {}",
            n(self.pools.len(), "pool"),
            n(self.autoscale_configs().count(), "auto-scale config"),
            n(self.vm_providers.len(), "VM provider"),
        )
    }
}

/// A configuration file format, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format for a file name's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works, but probably not as meant.
    Warning,
    /// The configuration is refused.
    Error,
}

/// One thing wrong with a configuration, at a path such as `pools[0].autoscale[1].connection_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where: `section[index].field…`; empty for the document itself.
    pub path: String,
    /// Why, in plain words. Never contains a secret's value.
    pub message: String,
}

impl Problem {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's extension names no known format.
    #[error("{}: unknown format; use a .toml, .yaml, .yml or .json file", file.display())]
    UnknownFormat {
        /// The file.
        file: PathBuf,
    },
    /// The text is not valid TOML, YAML or JSON.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (without the source line, which may hold a secret).
        message: String,
    },
    /// The document parsed but is not a valid configuration.
    #[error("{} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem, errors and warnings, in document order.
        problems: Vec<Problem>,
    },
    /// The configuration could not be written in the requested format.
    #[error("cannot write the configuration: {0}")]
    Serialize(String),
}

impl ConfigError {
    /// Whether the file could not be read or parsed (as opposed to being an invalid configuration).
    pub fn is_unreadable(&self) -> bool {
        !matches!(self, Self::Invalid { .. })
    }
}

/// A configuration that passed validation, with the warnings it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that work but are probably not meant.
    pub warnings: Vec<Problem>,
}

/// Reads and validates a configuration file; the format comes from its extension. The file is
/// read with [`read_input_file`](crate::read_input_file): a path that is not a regular file, or
/// a file over [`MAX_INPUT_FILE_BYTES`](crate::MAX_INPUT_FILE_BYTES), is a [`ConfigError::Read`].
pub fn load_file(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
    let path = path.as_ref();
    let format =
        Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat { file: path.into() })?;
    let text = crate::input::read_input_file(path).map_err(|source| ConfigError::Read {
        file: path.into(),
        source,
    })?;
    load_text(&text, format, path)
}

/// Parses and validates configuration text.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::{ConfigError, Format, load_str};
///
/// let text = r#"
/// [[zones]]
/// zone_name = "default"
/// upstream_auth_address = "kasm.example.com"
///
/// [[vm_providers]]
/// provider = "memory"
/// name = "cloud"
/// max_instances = 10
///
/// [[pools]]
/// server_pool_name = "desktops"
///
/// [[pools.autoscale]]
/// autoscale_config_name = "desktops-cloud"
/// vm_provider_config_id = "cloud"
/// connection_type = "RDP"
/// minimum_pool_standby_sessions = 2
/// "#;
/// let config = load_str(text, Format::Toml)?.config;
/// let (pool, autoscale) = config.autoscale_configs().next().unwrap();
/// assert_eq!(pool.server_pool_name, "desktops");
/// assert_eq!(autoscale.minimum_pool_standby_sessions, 2);
/// assert_eq!(autoscale.effective_port(), Some(3389)); // Kasm's default for RDP
///
/// // Every problem is named with its path.
/// let bad = text.replace("\"cloud\"\nconnection_type", "\"gcp\"\nconnection_type");
/// let Err(ConfigError::Invalid { problems }) = load_str(&bad, Format::Toml) else {
///     panic!("an unknown provider is refused");
/// };
/// assert_eq!(problems[0].path, "pools[0].autoscale[0].vm_provider_config_id");
/// # Ok::<(), ConfigError>(())
/// ```
pub fn load_str(text: &str, format: Format) -> Result<Loaded, ConfigError> {
    load_text(text, format, Path::new("<config>"))
}

fn load_text(text: &str, format: Format, file: &Path) -> Result<Loaded, ConfigError> {
    let tree = load::parse_tree(text, format, file)?;
    let mut read = load::read_tree(tree);
    let mut rules = Vec::new();
    validate::check(&read.config, &read.broken, &mut rules);
    scripts::check(&read.config, &mut rules);
    rules.retain(|p| !read.removed_paths.contains(&p.path));
    read.problems.append(&mut rules);
    if read.problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(ConfigError::Invalid {
            problems: read.problems,
        });
    }
    Ok(Loaded {
        config: read.config,
        warnings: read.problems,
    })
}

/// Validates a configuration built in code (or changed after loading): the same rules as
/// [`load_file`], returning the warnings, or every problem when there is an error.
pub fn validate(config: &Config) -> Result<Vec<Problem>, ConfigError> {
    let mut problems = Vec::new();
    validate::check(config, &[], &mut problems);
    scripts::check(config, &mut problems);
    if problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(ConfigError::Invalid { problems });
    }
    Ok(problems)
}
