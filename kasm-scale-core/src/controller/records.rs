//! What the controller remembers: servers, sessions, queued requests and bookkeeping. All of it
//! serializes, so a durable [`StateStore`](crate::traits::StateStore) can keep it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::demand::{BootTimes, DemandProfile, RecentDemand};
use crate::engine::{Bookkeeping, ServerId, ServerState};

/// A session (or a queued request for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

/// Where a server's computer record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdRecord {
    /// LDAP config name.
    pub ldap: String,
    /// Container DN.
    pub container_dn: String,
    /// Delete child objects too.
    pub recursive: bool,
}

/// A server as the controller knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its id (Kasm's `server_id`).
    pub id: ServerId,
    /// Its host name (and AD computer name).
    pub hostname: String,
    /// Pool name.
    pub pool: String,
    /// Auto-scale config name.
    pub config: String,
    /// VM provider config name.
    pub provider: String,
    /// Where it is in its life.
    pub state: ServerState,
    /// The provider's VM id, once created.
    pub vm_id: Option<String>,
    /// Its private address, once the provider tells it (where sessions connect).
    #[serde(default)]
    pub address: Option<String>,
    /// Sessions on it.
    pub sessions: u32,
    /// Sessions it takes at most (copied from its config at creation).
    pub capacity: u32,
    /// Whether it returns to the pool after a session (copied at creation).
    pub reusable: bool,
    /// Whether it must check in before taking sessions (copied at creation).
    pub requires_checkin: bool,
    /// Whether it has had a session.
    pub used: bool,
    /// Whether its sessions are unknown: a running VM adopted without a record (the saved state
    /// was lost). Such a server is treated as full and used, so it is neither handed out nor
    /// destroyed, until the broker reports its sessions
    /// ([`Autoscaler::report_sessions`](super::Autoscaler::report_sessions)).
    #[serde(default)]
    pub sessions_unknown: bool,
    /// Since when its sessions are unknown (ours): past the controller's
    /// `unknown_sessions_timeout` without a report it is taken as empty and used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_unknown_since: Option<Timestamp>,
    /// Slots the plan that made it gave to waiting session requests (they take them first,
    /// so the next plan sees the same slots spoken for).
    #[serde(default)]
    pub queue_slots: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it checked in (or became ready).
    pub checked_in_at: Option<Timestamp>,
    /// Its computer record, if one was made.
    pub ad: Option<AdRecord>,
    /// The computer record's join password, sealed with the check-in key
    /// ([`TokenKeys::seal`](crate::token::TokenKeys::seal)), saved before the VM is asked for:
    /// a create resumed after a restart renders the same startup script with it instead of
    /// resetting the record under a VM that may already hold the first password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_join: Option<crate::token::Sealed>,
    /// The last thing that went wrong with it, in plain words.
    pub last_error: Option<String>,
    /// The last status its guest reported (`running (100%): ready`).
    pub reported_status: Option<String>,
    /// (ours) The generation of its config it was built from ([`Config::generation`]); `None`
    /// for a server recorded before generations were, or adopted without a record (it counts
    /// as current until the next reload stamps it with the generation it ran under).
    ///
    /// [`Config::generation`]: crate::config::Config::generation
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<crate::config::Generation>,
    /// (ours) The offering of its VM provider config it was created from
    /// ([`VmProviderConfig::offerings`](crate::config::VmProviderConfig::offerings)): 0 for the
    /// config's own instance type (size) and subnet (zone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offering: u32,
    /// (ours) Built for its config's warm tier: stopped once ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_warm: bool,
    /// (ours) When it was last stopped into the warm tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    /// (ours) When it was last started from the warm tier: until it proves it is up it is
    /// `starting`, and its `checkin_timeout` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub woken_at: Option<Timestamp>,
    /// (ours) Stops or starts of it that failed since its last one that succeeded: after
    /// [`MAX_POWER_FAILURES`] a server that cannot be stopped serves as a running one, and one
    /// that cannot be started is destroyed (and rebuilt as the plan needs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub power_failures: u32,
}

/// (ours) Failed stops (or starts) of one server after which it is no longer stopped (or
/// started) again.
pub const MAX_POWER_FAILURES: u32 = 3;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ServerInfo {
    /// A new server record of `config` in `pool` of `document`, as made at `now` (state
    /// `provisioning`, no VM yet, sessions known to be 0): the one place server records are
    /// built. Its computer record's container is resolved now (with its default), so that the
    /// record is deleted where it was made.
    pub(crate) fn new(
        id: ServerId,
        hostname: String,
        document: &crate::config::Config,
        pool: &crate::config::Pool,
        config: &crate::config::AutoScaleConfig,
        now: Timestamp,
    ) -> Self {
        ServerInfo {
            id,
            hostname,
            generation: None,
            pool: pool.server_pool_name.clone(),
            config: config.autoscale_config_name.clone(),
            provider: config.vm_provider_config_id.clone(),
            state: ServerState::Provisioning,
            vm_id: None,
            address: None,
            sessions: 0,
            capacity: config.max_simultaneous_sessions_per_server.max(1),
            reusable: config.reusable,
            requires_checkin: config.requires_checkin(),
            used: false,
            sessions_unknown: false,
            sessions_unknown_since: None,
            queue_slots: 0,
            created_at: now,
            checked_in_at: None,
            ad: config.ad_create_machine_record.then(|| AdRecord {
                ldap: config.ldap_id.clone().unwrap_or_default(),
                container_dn: document.computer_container(config).unwrap_or_default(),
                recursive: config.ad_recursive_machine_record_cleanup,
            }),
            ad_join: None,
            last_error: None,
            reported_status: None,
            offering: 0,
            for_warm: false,
            stopped_at: None,
            woken_at: None,
            power_failures: 0,
        }
    }
}

/// A session request waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The request (and later the session).
    pub session: SessionId,
    /// When it was made.
    pub since: Timestamp,
}

/// The controller's memory: what a [`StateStore`](crate::traits::StateStore) keeps across restarts.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Records {
    /// Servers by id.
    pub servers: BTreeMap<ServerId, ServerInfo>,
    /// Seated sessions.
    pub sessions: HashMap<SessionId, ServerId>,
    /// Queued requests per pool, oldest first.
    pub queued: HashMap<String, VecDeque<Queued>>,
    /// Scaling bookkeeping per auto-scale config.
    pub bookkeeping: HashMap<String, Bookkeeping>,
    /// Last session id handed out.
    pub next_session: u64,
    /// VMs and AD records that carry our owner marker but belong to no server, with when they
    /// were first seen (key: `vm:<provider>:<id>` or `ad:<ldap>:<dn>`).
    pub orphans: BTreeMap<String, Timestamp>,
    /// Servers removed recently (destroyed, or whose create failed), with when: a listing
    /// taken before the removal, or a VM a failed create made after all, does not bring them
    /// back as adopted servers, even after a restart. Kept for a while (twice the orphan grace
    /// plus the vanish grace), then forgotten.
    #[serde(default)]
    pub removed: BTreeMap<ServerId, Timestamp>,
    /// The fingerprint of the check-in key that signed the servers' tokens
    /// ([`TokenKeys::key_id`](crate::token::TokenKeys::key_id)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key_id: Option<String>,
    /// (ours) Recent session requests per pool, for the demand standby policy.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "learned"
    )]
    pub demand_recent: BTreeMap<String, RecentDemand>,
    /// (ours) The demand learned per pool: arrivals per weekday and time of day.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "learned"
    )]
    pub demand_profiles: BTreeMap<String, DemandProfile>,
    /// (ours) How long the last servers of each auto-scale config took to become ready.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "learned"
    )]
    pub boot_times: BTreeMap<String, BootTimes>,
    /// (ours) How long the last warm starts of each auto-scale config took, from the start to
    /// ready again.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "learned"
    )]
    pub start_times: BTreeMap<String, BootTimes>,
    /// (ours) Session requests by the broker's request id (`Idempotency-Key`), kept for
    /// [`REQUEST_ID_TTL`](super::REQUEST_ID_TTL): a retry gets the session its first attempt made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, super::RequestRecord>,
    /// (ours) Drains in force, by target ([`DrainTarget::key`](super::DrainTarget::key)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drains: BTreeMap<String, super::Drain>,
    /// (ours) The generation of each auto-scale config that the last acting controller
    /// planned with: a replica that takes over with another configuration says so.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acted_generations: BTreeMap<String, crate::config::Generation>,
    /// (ours) The user of each session (seated or queued) that named one, in lower case, for
    /// user affinity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<SessionId, String>,
}

/// Learned history, read leniently: an entry that cannot be read (written by another version,
/// damaged) is dropped with a warning and learned again, rather than failing the whole load.
fn learned<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(key, value)| match serde_json::from_value(value) {
            Ok(v) => Some((key, v)),
            Err(e) => {
                tracing::warn!(%key, error = %e, "unreadable demand history dropped: learned again");
                None
            }
        })
        .collect())
}

impl Records {
    /// Records a failed server attempt for `config` at `now` (it feeds the failure backoff).
    /// Failures of one batch (the servers one tick asked for, `batch` being that tick's time)
    /// count once: a burst of failed creates is one failure, not forty.
    pub(crate) fn failure(&mut self, config: &str, now: Timestamp, batch: Timestamp) {
        let bk = self.bookkeeping.entry(config.to_owned()).or_default();
        if bk.last_failure_at.is_none_or(|last| last < batch) {
            bk.consecutive_failures = bk.consecutive_failures.saturating_add(1);
        }
        bk.last_failure_at = Some(now);
    }

    /// The containers where computer records of LDAP config `ldap` are made: those of every
    /// auto-scale config of `document` that uses it (with the default), and those of the
    /// records held for it (made under an earlier configuration), each once. Reconcile lists
    /// these and no other place.
    pub(crate) fn computer_containers(
        &self,
        document: &crate::config::Config,
        ldap: &str,
    ) -> Vec<String> {
        let configured = document
            .autoscale_configs()
            .filter(|(_, c)| c.ad_create_machine_record && c.ldap_id.as_deref() == Some(ldap))
            .filter_map(|(_, c)| document.computer_container(c));
        let held = self
            .servers
            .values()
            .filter_map(|s| s.ad.as_ref())
            .filter(|ad| ad.ldap == ldap && !ad.container_dn.is_empty())
            .map(|ad| ad.container_dn.clone());
        let mut containers: Vec<String> = Vec::new();
        for dn in configured.chain(held) {
            if !containers.iter().any(|c| c.eq_ignore_ascii_case(&dn)) {
                containers.push(dn);
            }
        }
        containers
    }

    /// A fresh session id.
    pub(crate) fn new_session(&mut self) -> SessionId {
        self.next_session += 1;
        SessionId(self.next_session)
    }

    /// Remembers that server `id` was removed at `now` (see [`Records::removed`]).
    pub(crate) fn tombstone(&mut self, id: ServerId, now: Timestamp) {
        self.removed.insert(id, now);
    }

    /// Where `session` is: seated on a server, or waiting at a place in its pool's queue.
    pub(crate) fn session_status(&self, session: SessionId) -> Option<super::SessionStatus> {
        if let Some(server) = self.sessions.get(&session) {
            return Some(super::SessionStatus::Assigned { server: *server });
        }
        self.queued.values().find_map(|queue| {
            queue
                .iter()
                .position(|q| q.session == session)
                .map(|i| super::SessionStatus::Queued { position: i + 1 })
        })
    }

    /// Waiting requests of `pool`.
    pub(crate) fn waiting(&self, pool: &str) -> u32 {
        self.queued
            .get(pool)
            .map_or(0, |q| u32::try_from(q.len()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    #[test]
    fn unreadable_demand_history_is_dropped_and_the_rest_loads() {
        let mut good = Records::default();
        let mut boots = BootTimes::default();
        boots.record(120.0);
        good.boot_times.insert("aws".into(), boots.clone());
        good.demand_profiles
            .insert("office".into(), DemandProfile::default());
        let mut json: serde_json::Value = serde_json::to_value(&good).unwrap();
        // Another version's entries: a profile of another shape of fields, boot times as text.
        json["demand_profiles"]["classes"] = serde_json::json!({"bins": [1, 2, 3]});
        json["boot_times"]["azure"] = serde_json::json!("fast");
        let loaded: Records = serde_json::from_value(json).unwrap();
        assert_eq!(loaded.boot_times.len(), 1);
        assert_eq!(loaded.boot_times["aws"], boots);
        assert_eq!(
            loaded.demand_profiles.keys().collect::<Vec<_>>(),
            ["office"]
        );
        // A map that is not a map at all is still an error (the file is not ours).
        let broken = serde_json::json!({"servers": {}, "sessions": {}, "queued": {},
            "bookkeeping": {}, "next_session": 0, "orphans": {}, "boot_times": 7});
        assert!(serde_json::from_value::<Records>(broken).is_err());
    }

    #[test]
    fn computer_containers_are_the_configured_ones_with_the_default_and_the_held_ones() {
        let text = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[ldap_configs]]
name = "ad"
url = "ldaps://dc1.example.local"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "pw"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "default"
vm_provider_config_id = "mem"
connection_type = "RDP"
ad_create_machine_record = true
ldap_id = "ad"

[[pools.autoscale]]
autoscale_config_name = "set"
vm_provider_config_id = "mem"
connection_type = "RDP"
ad_create_machine_record = true
ldap_id = "ad"
ad_computer_container_dn = "OU=Kasm,DC=example,DC=local"

[[pools.autoscale]]
autoscale_config_name = "same"
vm_provider_config_id = "mem"
connection_type = "RDP"
ad_create_machine_record = true
ldap_id = "ad"
ad_computer_container_dn = "ou=kasm,dc=example,dc=local"

[[pools.autoscale]]
autoscale_config_name = "no-records"
vm_provider_config_id = "mem"
connection_type = "RDP"
ldap_id = "ad"
ad_computer_container_dn = "OU=Unused,DC=example,DC=local"
"#;
        let config = crate::load_str(text, Format::Toml).unwrap().config;
        let mut records = Records::default();
        let (pool, asc) = config.autoscale_configs().nth(1).unwrap();
        let mut held = ServerInfo::new(
            ServerId(uuid::Uuid::from_u128(1)),
            "KASM-HELD".into(),
            &config,
            pool,
            asc,
            Timestamp::UNIX_EPOCH,
        );
        held.ad.as_mut().unwrap().container_dn = "OU=Before,DC=example,DC=local".into();
        records.servers.insert(held.id, held);
        assert_eq!(
            records.computer_containers(&config, "ad"),
            [
                "CN=Computers,DC=example,DC=local",
                "OU=Kasm,DC=example,DC=local",
                "OU=Before,DC=example,DC=local",
            ]
        );
        assert!(records.computer_containers(&config, "other").is_empty());
    }
}
