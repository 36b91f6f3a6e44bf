//! Deployment [`Zone`]s and pool [`Workspace`]s.

use serde::{Deserialize, Serialize};

use super::fields::yes;

/// A deployment zone: where the servers' check-ins and sessions are handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Unique name; auto-scale configs refer to it by `zone_id` (default `default`).
    pub zone_name: String,
    /// Resolvable host name, IP or FQDN of the API server, given to startup scripts as
    /// `upstream_auth_address`.
    pub upstream_auth_address: String,
}

/// A workspace of type Pool: what users launch to get a session on a pool's servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Name shown to users; unique.
    pub friendly_name: String,
    /// Description shown to users.
    #[serde(default)]
    pub description: String,
    /// Whether users can launch it. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Name of the pool (in `pools`) that sessions land on.
    pub server_pool_id: String,
    /// How users reach RDP servers. Default `web native`.
    #[serde(default)]
    pub rdp_client_type: RdpClientType,
}

/// Kasm's RDP client options for pool workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RdpClientType {
    /// Kasm's in-browser client.
    #[default]
    #[serde(
        rename = "web native",
        alias = "Web Native",
        alias = "Web Native Client",
        alias = "web_native"
    )]
    WebNative,
    /// The user's own RDP client through the Kasm RDP gateway.
    #[serde(
        rename = "RDP local client",
        alias = "RDP Local Client",
        alias = "rdp_local_client"
    )]
    RdpLocalClient,
}
