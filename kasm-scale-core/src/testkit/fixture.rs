//! [`Fixture`]: the configuration most tests run on — one zone, the in-memory cloud, one pool
//! with one auto-scale config — built in code instead of pasted as TOML in every test file.
//!
//! Only the paths `crate::config::{Config, Format}` and `crate::load_str` are used here, so that
//! kasm-scale-core's own integration tests (which cannot turn on this crate's `testkit` feature)
//! include this file with `#[path]` beside `use kasm_scale_core::{config, load_str};`.

use crate::config::{Config, Format};

/// The organisational unit of [`Fixture::active_directory`]'s computer records.
pub const AD_CONTAINER: &str = "OU=Kasm,DC=example,DC=local";

/// A test configuration: zone `default` (upstream `kasm.example.com`), the in-memory VM
/// provider `mem` (10 instances, startup script `{checkin_jwt}`), and pool `pool` with the
/// auto-scale config `c` on `mem` for RDP. Every other field is what a test sets: a field it
/// does not set is absent from the text, so the loader's default applies as it would to a
/// pasted file.
///
/// [`to_toml`](Self::to_toml) gives the text (for the CLI and for file-loading tests),
/// [`config`](Self::config) the loaded [`Config`].
///
/// # Examples
///
/// ```
/// use kasm_scale_core::testkit::Fixture;
///
/// let config = Fixture::memory_pool("desktops")
///     .minimum_standby(2)
///     .boot_latency(60)
///     .require_checkin(true)
///     .config();
/// assert_eq!(config.pools[0].server_pool_name, "desktops");
/// let text = Fixture::memory_pool("p").max_instances(4).to_toml();
/// assert!(text.contains("max_instances = 4"), "{text}");
/// ```
#[derive(Clone, PartialEq)]
pub struct Fixture {
    zone: toml::Table,
    ldap: Option<toml::Table>,
    provider: toml::Table,
    pool: toml::Table,
    autoscale: toml::Table,
    rest: toml::Table,
}

fn table<const N: usize>(fields: [(&str, toml::Value); N]) -> toml::Table {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `{ fixed = seconds }`: a latency of the memory provider.
fn fixed(seconds: i64) -> toml::Value {
    toml::Value::Table(table([("fixed", seconds.into())]))
}

/// `snippet` parsed as TOML, or a panic that names `what`, the parser's reason and where (not
/// the text, which may hold a test's key or password).
fn parse(what: &str, snippet: &str) -> toml::Table {
    snippet.parse::<toml::Table>().unwrap_or_else(|e| {
        panic!(
            "the fixture's {what} is not TOML (bytes {:?}): {}",
            e.span(),
            e.message()
        )
    })
}

/// The pool's name only: the tables hold passwords and keys, which `Debug` never shows.
impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("pool", &self.pool.get("server_pool_name"))
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// The in-memory pool `pool` (see [`Fixture`] for what it holds).
    pub fn memory_pool(pool: &str) -> Self {
        Fixture {
            zone: table([
                ("zone_name", "default".into()),
                ("upstream_auth_address", "kasm.example.com".into()),
            ]),
            ldap: None,
            provider: table([
                ("provider", "memory".into()),
                ("name", "mem".into()),
                ("max_instances", 10.into()),
                ("startup_script", "{checkin_jwt}".into()),
            ]),
            pool: table([("server_pool_name", pool.into())]),
            autoscale: table([
                ("autoscale_config_name", "c".into()),
                ("vm_provider_config_id", "mem".into()),
                ("connection_type", "RDP".into()),
            ]),
            rest: toml::Table::new(),
        }
    }

    /// Sets field `key` of the `[[zones]]` table `default` (e.g. `upstream_auth_address`).
    pub fn zone(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.zone.insert(key.to_owned(), value.into());
        self
    }

    /// Sets field `key` of the `[[vm_providers]]` table `mem`.
    pub fn provider(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.provider.insert(key.to_owned(), value.into());
        self
    }

    /// Sets every field of `snippet` (TOML `key = value` lines) in the provider's table.
    ///
    /// # Panics
    ///
    /// When `snippet` is not TOML, with the parser's reason.
    pub fn provider_toml(mut self, snippet: &str) -> Self {
        self.provider.extend(parse("provider snippet", snippet));
        self
    }

    /// Leaves field `key` out of the provider's table (e.g. `startup_script`, for a provider
    /// without one).
    pub fn provider_without(mut self, key: &str) -> Self {
        self.provider.remove(key);
        self
    }

    /// `max_instances` of the provider (10 unless set).
    pub fn max_instances(self, n: impl Into<i64>) -> Self {
        self.provider("max_instances", n.into())
    }

    /// The provider's `startup_script` (`{checkin_jwt}` unless set).
    pub fn startup_script(self, script: &str) -> Self {
        self.provider("startup_script", script)
    }

    /// `boot_latency = { fixed = seconds }` of the memory provider.
    pub fn boot_latency(self, seconds: impl Into<i64>) -> Self {
        self.provider("boot_latency", fixed(seconds.into()))
    }

    /// `checkin_delay = { fixed = seconds }` of the memory provider: how long its guests take
    /// to check in by themselves.
    pub fn checkin_delay(self, seconds: impl Into<i64>) -> Self {
        self.provider("checkin_delay", fixed(seconds.into()))
    }

    /// Sets field `key` of the `[[pools.autoscale]]` table `c`.
    pub fn autoscale(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.autoscale.insert(key.to_owned(), value.into());
        self
    }

    /// Sets every field of `snippet` (TOML `key = value` lines) in the auto-scale config.
    ///
    /// # Panics
    ///
    /// When `snippet` is not TOML, with the parser's reason.
    pub fn autoscale_toml(mut self, snippet: &str) -> Self {
        self.autoscale.extend(parse("auto-scale snippet", snippet));
        self
    }

    /// Leaves field `key` out of the auto-scale config (e.g. `ad_computer_container_dn`, for
    /// the directory's default container).
    pub fn autoscale_without(mut self, key: &str) -> Self {
        self.autoscale.remove(key);
        self
    }

    /// `minimum_pool_standby_sessions` of the auto-scale config.
    pub fn minimum_standby(self, sessions: impl Into<i64>) -> Self {
        self.autoscale("minimum_pool_standby_sessions", sessions.into())
    }

    /// `require_checkin` of the auto-scale config.
    pub fn require_checkin(self, required: bool) -> Self {
        self.autoscale("require_checkin", required)
    }

    /// `checkin_timeout` of the auto-scale config, in seconds.
    pub fn checkin_timeout(self, seconds: impl Into<i64>) -> Self {
        self.autoscale("checkin_timeout", seconds.into())
    }

    /// `downscale_backoff` of the auto-scale config, in seconds.
    pub fn downscale_backoff(self, seconds: impl Into<i64>) -> Self {
        self.autoscale("downscale_backoff", seconds.into())
    }

    /// Computer records in Active Directory: the `[[ldap_configs]]` table `ad`
    /// (`ldaps://dc1.example.local`, base `DC=example,DC=local`, account `svc@example.local`
    /// with password `pw`), and in the auto-scale config `ad_create_machine_record = true`,
    /// `ldap_id = "ad"` and `ad_computer_container_dn =` [`AD_CONTAINER`]. Change any of them
    /// with [`ldap`](Self::ldap) and [`autoscale`](Self::autoscale).
    pub fn active_directory(mut self) -> Self {
        self.ldap = Some(table([
            ("name", "ad".into()),
            ("url", "ldaps://dc1.example.local".into()),
            ("search_base", "DC=example,DC=local".into()),
            ("service_account_dn", "svc@example.local".into()),
            ("service_account_password", "pw".into()),
        ]));
        self.autoscale("ad_create_machine_record", true)
            .autoscale("ldap_id", "ad")
            .autoscale("ad_computer_container_dn", AD_CONTAINER)
    }

    /// Sets field `key` of the `[[ldap_configs]]` table `ad`, which
    /// [`active_directory`](Self::active_directory) adds (and this, when it is not there yet,
    /// with that method's values).
    pub fn ldap(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        if self.ldap.is_none() {
            self = self.active_directory();
        }
        if let Some(ldap) = self.ldap.as_mut() {
            ldap.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Adds the top-level tables and fields of `snippet` (`[broker_api]`, `[checkin_token]`,
    /// …) after the pool; a table named again replaces the earlier one.
    ///
    /// # Panics
    ///
    /// When `snippet` is not TOML, with the parser's reason.
    pub fn toml(mut self, snippet: &str) -> Self {
        self.rest.extend(parse("top-level snippet", snippet));
        self
    }

    /// The configuration as TOML text: `[[zones]]`, `[[ldap_configs]]` (when set),
    /// `[[vm_providers]]`, `[[pools]]` with its `[[pools.autoscale]]`, then the
    /// [`toml`](Self::toml) snippets.
    pub fn to_toml(&self) -> String {
        let mut doc = toml::Table::new();
        let one = |t: &toml::Table| toml::Value::Array(vec![toml::Value::Table(t.clone())]);
        doc.insert("zones".into(), one(&self.zone));
        if let Some(ldap) = &self.ldap {
            doc.insert("ldap_configs".into(), one(ldap));
        }
        doc.insert("vm_providers".into(), one(&self.provider));
        let mut pool = self.pool.clone();
        pool.insert("autoscale".into(), one(&self.autoscale));
        doc.insert("pools".into(), one(&pool));
        doc.extend(self.rest.clone());
        toml::to_string(&doc).unwrap_or_else(|e| panic!("the fixture as TOML: {e}"))
    }

    /// The configuration, loaded and validated as a file with [`to_toml`](Self::to_toml)'s
    /// text would be.
    ///
    /// # Panics
    ///
    /// When the configuration is refused, with every problem the loader names (a test that
    /// expects a refusal loads [`to_toml`](Self::to_toml)'s text itself).
    pub fn config(&self) -> Config {
        let text = self.to_toml();
        crate::load_str(&text, Format::Toml)
            .unwrap_or_else(|e| panic!("the fixture's configuration: {e}"))
            .config
    }
}
