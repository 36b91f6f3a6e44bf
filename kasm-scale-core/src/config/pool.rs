//! [`Pool`] and its [`AutoScaleConfig`]s, with Kasm's field names and defaults.

use serde::{Deserialize, Serialize};

use super::fields::{self, JsonObject, is_false, yes};
use super::schedule::Schedule;
use crate::secret::Secret;

/// A server pool (Kasm's `server_pools`): the servers that sessions of a pool workspace land on.
/// Several auto-scale configs may feed one pool, e.g. one on AWS and one on Azure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Unique name of the pool.
    pub server_pool_name: String,
    /// `Server Pool` (default). `Docker Agent` pools are recognised but not supported.
    #[serde(default)]
    pub server_pool_type: ServerPoolType,
    /// (ours) Which server takes the next session: `depth-first` (default) fills the fullest
    /// server that has room, so idle servers can be scaled down; `breadth-first` spreads sessions.
    #[serde(default)]
    pub session_placement: Placement,
    /// The auto-scale configs that create this pool's servers, in priority order.
    #[serde(default)]
    pub autoscale: Vec<AutoScaleConfig>,
    /// (ours) A request for a user who already has a session in the pool gets that session back
    /// (a reconnect to the same server) instead of a second one elsewhere, which would break
    /// roaming profiles such as FSLogix containers. Default: on when a config of the pool
    /// connects over RDP, else off. See [`Pool::user_affinity`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_affinity: Option<bool>,
}

impl Pool {
    /// Whether a user's repeated request returns their session: `user_affinity`, by default
    /// on when any of the pool's auto-scale configs connects over RDP.
    pub fn user_affinity(&self) -> bool {
        self.user_affinity.unwrap_or_else(|| {
            self.autoscale
                .iter()
                .any(|c| c.connection_type == ConnectionType::Rdp)
        })
    }
}

/// How sessions are placed on a pool's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Fill the fullest server that has room (fewer, fuller servers; idle ones can go).
    #[default]
    DepthFirst,
    /// Use the emptiest server (sessions spread out).
    BreadthFirst,
}

/// Kasm's `server_pool_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ServerPoolType {
    /// A pool of standalone servers reached over RDP, VNC, KasmVNC or SSH.
    #[default]
    #[serde(rename = "Server Pool")]
    ServerPool,
    /// A pool of Kasm Docker agents (out of scope of this project).
    #[serde(rename = "Docker Agent")]
    DockerAgent,
}

/// How sessions connect to a server (Kasm's `connection_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionType {
    /// Kasm's own VNC server with a web client; one session per server.
    #[serde(rename = "KasmVNC", alias = "kasmvnc")]
    KasmVnc,
    /// Remote Desktop Protocol (default port 3389).
    #[serde(rename = "RDP", alias = "rdp")]
    Rdp,
    /// Plain VNC; one session per server.
    #[serde(rename = "VNC", alias = "vnc")]
    Vnc,
    /// Secure shell.
    #[serde(rename = "SSH", alias = "ssh")]
    Ssh,
}

impl ConnectionType {
    /// Kasm's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KasmVnc => "KasmVNC",
            Self::Rdp => "RDP",
            Self::Vnc => "VNC",
            Self::Ssh => "SSH",
        }
    }

    /// The port used when `connection_port` is not set; only RDP has a fixed one.
    pub fn default_port(self) -> Option<u16> {
        (self == Self::Rdp).then_some(3389)
    }

    /// Whether Kasm allows only one session per server for this type whatever the settings.
    pub fn single_session(self) -> bool {
        matches!(self, Self::KasmVnc | Self::Vnc)
    }
}

/// Where the credentials of a session come from (Kasm's `connection_credential_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CredentialType {
    /// `connection_username` / `connection_password` of the config, for every user.
    #[default]
    #[serde(rename = "Static Credentials")]
    StaticCredentials,
    /// An account created on the server for each user.
    #[serde(rename = "Dynamic User Accounts")]
    DynamicUserAccounts,
    /// The user's own single-sign-on account (see `connection_sso_username_domain`).
    #[serde(rename = "SSO User Accounts")]
    SsoUserAccounts,
    /// Smartcard authentication passed through to the server.
    #[serde(rename = "Authenticate with Smartcard")]
    Smartcard,
    /// The user types credentials when connecting.
    #[serde(rename = "Prompt User")]
    PromptUser,
}

/// An auto-scale config (Kasm's `autoscale_configs`): keeps a minimum of free session slots in
/// its pool by creating servers from one VM provider config in one zone.
///
/// A server keeps a copy of the values it was created with: editing a config never changes
/// servers already made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoScaleConfig {
    /// Unique name of the config.
    pub autoscale_config_name: String,
    /// Whether the config scales at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Provision at once for a session request that finds no free slot, instead of waiting for
    /// the next cycle. Default true.
    #[serde(default = "yes")]
    pub aggressive_scaling: bool,
    /// Name of the deployment zone (in `zones`). Default `default`.
    #[serde(default = "default_zone")]
    pub zone_id: String,
    /// Name of the VM provider config (in `vm_providers`) that creates the servers.
    pub vm_provider_config_id: String,
    /// `KasmVNC`, `RDP`, `VNC` or `SSH`.
    pub connection_type: ConnectionType,
    /// Port sessions connect to. Default 3389 for RDP; required for the other types.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::opt_port"
    )]
    pub connection_port: Option<u16>,
    /// Where session credentials come from. Default `Static Credentials`.
    #[serde(default)]
    pub connection_credential_type: CredentialType,
    /// Rewrites SSO user names: `localhost` strips the domain, a value ending in `\` is
    /// prepended (`ACME\` gives `ACME\john`), any other value replaces the part after `@`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_sso_username_domain: Option<String>,
    /// Static user name for sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_username: Option<String>,
    /// Static password for sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_password: Option<Secret>,
    /// Free-form connection options (e.g. RDP settings for RemoteApp), a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<JsonObject>,
    /// SSH: authenticate with the user's own private key. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_user_private_key: bool,
    /// SSH: private key for sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_private_key: Option<Secret>,
    /// SSH: passphrase of `connection_private_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_passphrase: Option<Secret>,
    /// Create an Active Directory computer record for each server. Default false.
    #[serde(default)]
    pub ad_create_machine_record: bool,
    /// Name of the LDAP connection (in `ldap_configs`) used for computer records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_id: Option<String>,
    /// Container for computer records, e.g. `OU=Computers,DC=example,DC=local`. Default (ours):
    /// `CN=Computers,<search_base>` of the LDAP config (see
    /// [`Config::computer_container`](super::Config::computer_container)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_computer_container_dn: Option<String>,
    /// Delete computer records with their child objects (BitLocker keys …). Default false.
    #[serde(default)]
    pub ad_recursive_machine_record_cleanup: bool,
    /// Return a server to the pool when its session ends instead of destroying it. Default false.
    #[serde(default)]
    pub reusable: bool,
    /// "Minimum Available Sessions": free session slots to keep, 0 to 100000
    /// ([`super::MAX_STANDBY_SESSIONS`]). Default 0.
    #[serde(default, deserialize_with = "super::bounds::standby_sessions")]
    pub minimum_pool_standby_sessions: u32,
    /// Sessions one server takes at most, 1 to 1000 ([`super::MAX_SESSIONS_PER_SERVER`]).
    /// Default 1; must be 1 for KasmVNC and VNC, and when `reusable` is false.
    #[serde(
        default = "one",
        deserialize_with = "super::bounds::sessions_per_server"
    )]
    pub max_simultaneous_sessions_per_server: u32,
    /// A new server takes no session until it checks in. Default false.
    #[serde(default)]
    pub require_checkin: bool,
    /// The Kasm Desktop Service runs on the servers; implies `require_checkin`. Default false.
    #[serde(default)]
    pub agent_installed: bool,
    /// Seconds a surplus must last before idle servers are destroyed, 0 to 2592000 (30 days).
    /// Default 1800.
    #[serde(
        default = "default_backoff",
        deserialize_with = "super::bounds::downscale_backoff"
    )]
    pub downscale_backoff: u64,
    /// (ours) Seconds a new server has to check in before it is destroyed and replaced, 1 to
    /// 2592000 (30 days). Default 1200 (Windows with a domain join often needs 10 minutes).
    #[serde(
        default = "default_checkin_timeout",
        deserialize_with = "super::bounds::checkin_timeout"
    )]
    pub checkin_timeout: u32,
    /// Active windows; none means always active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
    /// (ours) How many free slots to keep: `static` (default, Kasm's rule: the minimum) or
    /// `demand`: at least the minimum, and as many as the sessions expected to arrive while a
    /// new server boots, learned from the pool's history (see the engine's documentation).
    #[serde(default, skip_serializing_if = "StandbyPolicy::is_static")]
    pub standby_policy: StandbyPolicy,
    /// (ours) With `standby_policy = "demand"`: the share of session requests that should find
    /// a free slot at once, 0.5 to 0.9999. Default 0.99.
    #[serde(
        default = "default_service",
        deserialize_with = "super::bounds::service_target",
        skip_serializing_if = "is_default_service"
    )]
    pub target_immediate_service: f64,
    /// (ours) The servers' computer names by a naming policy: letters, digits and `-` with a
    /// counter `{n:W}` (lowest free number first) and/or random hex digits `{hex:W}`, e.g.
    /// `VDI-{n:3}` → `VDI-001`. Default: `KASM-` and 10 hex digits of the server id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_hostname_pattern: Option<super::HostnamePattern>,
    /// (ours) How servers built from an older generation of this config are replaced when its
    /// configuration changes: `{ canary = 1, max_surge = "10%", pause_on_failure = true }`
    /// (the default). See [`super::RolloutPolicy`].
    #[serde(default, skip_serializing_if = "super::RolloutPolicy::is_default")]
    pub rollout: super::RolloutPolicy,
    /// (ours) A tier of stopped servers started before any is built
    /// (`warm_pool = { min_stopped = 2, max_stopped = 10 }`). Default none. See
    /// [`super::WarmPool`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<super::WarmPool>,
}

/// (ours) How an auto-scale config sizes its free slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyPolicy {
    /// Kasm's rule: `minimum_pool_standby_sessions` (per schedule window where one says so).
    #[default]
    Static,
    /// At least the minimum, and enough for the sessions expected while a server boots:
    /// the recent arrival rate, and the pool's weekly pattern one boot time ahead.
    Demand,
}

impl StandbyPolicy {
    /// Whether it is Kasm's static rule.
    pub fn is_static(&self) -> bool {
        *self == StandbyPolicy::Static
    }
}

fn default_service() -> f64 {
    DEFAULT_SERVICE_TARGET
}

fn is_default_service(v: &f64) -> bool {
    *v == DEFAULT_SERVICE_TARGET
}

/// The default `target_immediate_service`: 99% of requests find a free slot at once.
pub const DEFAULT_SERVICE_TARGET: f64 = 0.99;

fn default_zone() -> String {
    "default".into()
}
fn one() -> u32 {
    1
}
fn default_backoff() -> u64 {
    1800
}
fn default_checkin_timeout() -> u32 {
    1200
}

impl AutoScaleConfig {
    /// A config with Kasm's defaults for every optional field.
    pub fn new(
        name: impl Into<String>,
        vm_provider_config_id: impl Into<String>,
        connection_type: ConnectionType,
    ) -> Self {
        Self {
            autoscale_config_name: name.into(),
            enabled: true,
            aggressive_scaling: true,
            zone_id: default_zone(),
            vm_provider_config_id: vm_provider_config_id.into(),
            connection_type,
            connection_port: None,
            connection_credential_type: CredentialType::default(),
            connection_sso_username_domain: None,
            connection_username: None,
            connection_password: None,
            connection_info: None,
            use_user_private_key: false,
            connection_private_key: None,
            connection_passphrase: None,
            ad_create_machine_record: false,
            ldap_id: None,
            ad_computer_container_dn: None,
            ad_recursive_machine_record_cleanup: false,
            reusable: false,
            minimum_pool_standby_sessions: 0,
            max_simultaneous_sessions_per_server: 1,
            require_checkin: false,
            agent_installed: false,
            downscale_backoff: default_backoff(),
            checkin_timeout: default_checkin_timeout(),
            schedules: Vec::new(),
            standby_policy: StandbyPolicy::Static,
            target_immediate_service: DEFAULT_SERVICE_TARGET,
            server_hostname_pattern: None,
            rollout: super::RolloutPolicy::default(),
            warm_pool: None,
        }
    }

    /// The port sessions connect to: `connection_port`, or the type's default.
    pub fn effective_port(&self) -> Option<u16> {
        self.connection_port.or(self.connection_type.default_port())
    }

    /// Whether new servers must check in before taking sessions (`require_checkin`, implied by
    /// `agent_installed`).
    pub fn requires_checkin(&self) -> bool {
        self.require_checkin || self.agent_installed
    }

    /// Whether any schedule window is open at `instant` (always, when there are no schedules).
    pub fn is_active_at(&self, instant: jiff::Timestamp) -> bool {
        self.schedules.is_empty() || self.schedules.iter().any(|s| s.is_active_at(instant))
    }

    /// The user name a session of `sso_username` connects with, after Kasm's
    /// `connection_sso_username_domain` rule.
    pub fn rewrite_sso_username(&self, sso_username: &str) -> String {
        rewrite_sso_username(sso_username, self.connection_sso_username_domain.as_deref())
    }
}

/// Kasm's `connection_sso_username_domain` rule: `localhost` strips the domain
/// (`john@acme.com` → `john`); a value ending in `\` is prepended to the bare name
/// (`ACME\` → `ACME\john`); any other value replaces the part after `@`
/// (`corp.acme.com` → `john@corp.acme.com`). Empty or absent leaves the name unchanged.
pub fn rewrite_sso_username(sso_username: &str, domain: Option<&str>) -> String {
    let bare = sso_username
        .split_once('@')
        .map_or(sso_username, |(user, _)| user);
    match domain.map(str::trim) {
        None | Some("") => sso_username.to_owned(),
        Some(d) if d.eq_ignore_ascii_case("localhost") => bare.to_owned(),
        Some(d) if d.ends_with('\\') => format!("{d}{bare}"),
        Some(d) => format!("{bare}@{}", d.trim_start_matches('@')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kasm_defaults() {
        let c: AutoScaleConfig = serde_json::from_str(
            r#"{"autoscale_config_name":"a","vm_provider_config_id":"p","connection_type":"RDP"}"#,
        )
        .unwrap();
        assert_eq!(c, AutoScaleConfig::new("a", "p", ConnectionType::Rdp));
        assert!(c.enabled && c.aggressive_scaling);
        assert_eq!(c.zone_id, "default");
        assert_eq!(c.effective_port(), Some(3389));
        assert_eq!(
            c.connection_credential_type,
            CredentialType::StaticCredentials
        );
        assert!(!c.ad_create_machine_record && !c.ad_recursive_machine_record_cleanup);
        assert!(!c.reusable && !c.require_checkin && !c.agent_installed);
        assert_eq!(c.minimum_pool_standby_sessions, 0);
        assert_eq!(c.max_simultaneous_sessions_per_server, 1);
        assert_eq!(c.downscale_backoff, 1800);
        assert!(c.schedules.is_empty());
        let pool: Pool = serde_json::from_str(r#"{"server_pool_name":"p"}"#).unwrap();
        assert_eq!(pool.server_pool_type, ServerPoolType::ServerPool);
    }

    #[test]
    fn kasm_spellings() {
        let t: ConnectionType = serde_json::from_str(r#""KasmVNC""#).unwrap();
        assert_eq!(t, ConnectionType::KasmVnc);
        let c: CredentialType = serde_json::from_str(r#""SSO User Accounts""#).unwrap();
        assert_eq!(c, CredentialType::SsoUserAccounts);
        let c: CredentialType = serde_json::from_str(r#""Authenticate with Smartcard""#).unwrap();
        assert_eq!(c, CredentialType::Smartcard);
        let p: ServerPoolType = serde_json::from_str(r#""Docker Agent""#).unwrap();
        assert_eq!(p, ServerPoolType::DockerAgent);
        assert_eq!(ConnectionType::Ssh.default_port(), None);
    }

    #[test]
    fn agent_implies_checkin() {
        let mut c = AutoScaleConfig::new("a", "p", ConnectionType::Rdp);
        assert!(!c.requires_checkin());
        c.agent_installed = true;
        assert!(c.requires_checkin());
    }

    #[test]
    fn sso_domain_rewrite() {
        assert_eq!(
            rewrite_sso_username("john@acme.com", Some("localhost")),
            "john"
        );
        assert_eq!(
            rewrite_sso_username("john@acme.com", Some("LOCALHOST")),
            "john"
        );
        assert_eq!(rewrite_sso_username("john", Some("localhost")), "john");
        assert_eq!(
            rewrite_sso_username("john@acme.com", Some("ACME\\")),
            "ACME\\john"
        );
        assert_eq!(rewrite_sso_username("john", Some("ACME\\")), "ACME\\john");
        assert_eq!(
            rewrite_sso_username("john@acme.com", Some("corp.acme.com")),
            "john@corp.acme.com"
        );
        assert_eq!(
            rewrite_sso_username("john", Some("@corp.acme.com")),
            "john@corp.acme.com"
        );
        assert_eq!(rewrite_sso_username("john@acme.com", None), "john@acme.com");
        assert_eq!(
            rewrite_sso_username("john@acme.com", Some("")),
            "john@acme.com"
        );
    }
}
