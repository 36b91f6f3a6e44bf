//! The controller scenario every backend crate runs against its real test server (the EC2
//! emulator, the ARM test server, Samba AD): one pool keeps [`SCENARIO_MINIMUM`] free
//! single-seat servers; the guests check in with the token from the startup script the cloud
//! holds; sessions grow the pool; when they end, the surplus goes after `downscale_backoff` —
//! with its VM, the VM's parts and its computer record. It leaves nothing behind.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{Config, Format};
use crate::controller::{Autoscaler, ServerInfo, SessionId, SessionOutcome};
use crate::engine::{ServerState, SessionRequest};
use crate::memory::{MemoryCloud, token_in};
use crate::traits::{DirectoryService, VmProvider};

/// Free servers the scenario's pool keeps.
pub const SCENARIO_MINIMUM: u32 = 3;

/// Sessions the scenario starts (each takes a server; the pool grows by as many).
const SESSIONS: u32 = 2;

/// The scenario's configuration around `backend`: the `[[vm_providers]]` table (named `vm`) and
/// any `[[ldap_configs]]` the backend needs, in TOML; `autoscale_extra` is added to the
/// auto-scale config (e.g. the AD fields). The startup script is the provider's own.
pub fn scenario_config(backend: &str, autoscale_extra: &str) -> Config {
    let text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

{backend}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "vm"
connection_type = "RDP"
connection_credential_type = "SSO User Accounts"
minimum_pool_standby_sessions = {SCENARIO_MINIMUM}
reusable = true
require_checkin = true
checkin_timeout = 600
downscale_backoff = 1
{autoscale_extra}
"#
    );
    crate::load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("the scenario's configuration: {e}"))
        .config
}

/// What a guest reads after boot: the startup script its cloud holds for its VM (EC2 user
/// data, Azure custom data, …), as the cloud returns it.
#[async_trait]
pub trait Guests: Send + Sync {
    /// The rendered startup script of VM `vm_id`.
    async fn startup_script(&self, vm_id: &str) -> String;
}

#[async_trait]
impl Guests for MemoryCloud {
    async fn startup_script(&self, vm_id: &str) -> String {
        MemoryCloud::startup_script(self, vm_id)
            .unwrap_or_else(|| panic!("no VM {vm_id} in the memory cloud"))
            .expose()
            .to_owned()
    }
}

/// Every booting server's guest checks in with the token its startup script holds (read as
/// `guests` read it), alone, as Kasm's `set_server_status?token=` does; returns how many did.
///
/// # Panics
///
/// When a script holds no token, or a check-in is refused, with the reason.
pub async fn check_in_starting(scaler: &Autoscaler, guests: &dyn Guests) -> usize {
    let mut accepted = 0;
    for s in scaler.servers() {
        let (Some(vm), ServerState::Starting) = (&s.vm_id, s.state) else {
            continue;
        };
        let script = guests.startup_script(vm).await;
        let token = token_in(&script).expect("the check-in token in the startup script");
        scaler
            .check_in_token(token, &crate::controller::CheckinStatus::running())
            .await
            .unwrap_or_else(|e| panic!("check-in of {}: {e}", s.id));
        accepted += 1;
    }
    accepted
}

/// One run of the scenario: a controller built on `scenario_config`, the provider (and
/// directory) it was given, and how its guests read their scripts.
pub struct Scenario<'a> {
    /// The controller, built with `owner_id`, `provider` and `directory`.
    pub scaler: &'a Autoscaler,
    /// Its owner id (unique per run: emulators keep terminated VMs listed for a while).
    pub owner_id: &'a str,
    /// The provider the controller uses, read directly to check the cloud.
    pub provider: &'a dyn VmProvider,
    /// The directory the controller uses, when the auto-scale config makes computer records.
    pub directory: Option<&'a dyn DirectoryService>,
    /// How the guests read their startup scripts.
    pub guests: &'a dyn Guests,
}

impl Scenario<'_> {
    /// Runs the scenario; panics with what did not hold.
    pub async fn run(&self) {
        let min = SCENARIO_MINIMUM as usize;
        let grown = min + SESSIONS as usize;

        self.step().await;
        assert_eq!(
            self.count(ServerState::Starting),
            min,
            "the first tick creates the minimum: {:?}",
            self.scaler.servers()
        );
        assert_eq!(self.live_vms().await, min, "VMs in the cloud");
        assert_eq!(self.guests_check_in().await, min);
        self.step().await;
        assert_eq!(self.count(ServerState::Running), min, "checked in");
        self.records_match("after the fill").await;

        let mut sessions: Vec<SessionId> = Vec::new();
        for _ in 0..SESSIONS {
            match self
                .scaler
                .request_session("p", &SessionRequest::default())
                .await
                .unwrap_or_else(|e| panic!("request_session: {e}"))
            {
                SessionOutcome::Assigned { session, .. } => sessions.push(session),
                other => panic!("a free server takes the session: {other:?}"),
            }
        }
        self.step().await;
        assert_eq!(
            self.live_vms().await,
            grown,
            "the pool grows by the sessions"
        );
        assert_eq!(self.guests_check_in().await, SESSIONS as usize);
        self.step().await;
        assert_eq!(self.count(ServerState::Running), grown);
        self.records_match("after the growth").await;

        for s in sessions {
            self.scaler
                .end_session(s)
                .await
                .unwrap_or_else(|e| panic!("end_session: {e}"));
        }
        self.step().await;
        assert_eq!(
            self.live_vms().await,
            grown,
            "the surplus waits for downscale_backoff"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.step().await;
        let left = self.scaler.servers();
        assert_eq!(left.len(), min, "the surplus is destroyed: {left:?}");
        assert_eq!(self.live_vms().await, min, "and gone from the cloud");
        self.records_match("after the scale-down").await;
        self.no_leftovers("after the scale-down").await;
        self.clean_up(left).await;
    }

    async fn step(&self) {
        self.scaler.tick().await;
        self.scaler.settle().await;
    }

    fn count(&self, state: ServerState) -> usize {
        self.scaler
            .servers()
            .iter()
            .filter(|s| s.state == state)
            .count()
    }

    async fn live_vms(&self) -> usize {
        self.provider
            .list(self.owner_id)
            .await
            .unwrap_or_else(|e| panic!("listing the VMs: {e}"))
            .len()
    }

    async fn guests_check_in(&self) -> usize {
        check_in_starting(self.scaler, self.guests).await
    }

    /// One computer record per server, no more.
    async fn records_match(&self, when: &str) {
        let Some(directory) = self.directory else {
            return;
        };
        let in_ad: BTreeSet<String> = directory
            .list_computers(self.owner_id, &self.containers())
            .await
            .unwrap_or_else(|e| panic!("listing the computer records: {e}"))
            .iter()
            .map(|r| r.name.to_ascii_uppercase())
            .collect();
        let servers: BTreeSet<String> = self
            .scaler
            .servers()
            .iter()
            .map(|s| s.hostname.to_ascii_uppercase())
            .collect();
        assert_eq!(in_ad, servers, "one computer record per server {when}");
    }

    /// Where the auto-scale configs make their computer records.
    fn containers(&self) -> Vec<String> {
        let config = self.scaler.config();
        config
            .autoscale_configs()
            .filter(|(_, c)| c.ad_create_machine_record)
            .filter_map(|(_, c)| config.computer_container(c))
            .collect()
    }

    async fn no_leftovers(&self, when: &str) {
        let parts = self
            .provider
            .list_leftovers(self.owner_id)
            .await
            .unwrap_or_else(|e| panic!("listing leftover VM parts: {e}"));
        assert!(parts.is_empty(), "no VM part is left {when}: {parts:?}");
    }

    /// Removes what the run made: the remaining VMs and computer records.
    async fn clean_up(&self, left: Vec<ServerInfo>) {
        for s in left {
            if let Some(vm) = &s.vm_id {
                super::retrying(|| self.provider.destroy(vm))
                    .await
                    .unwrap_or_else(|e| panic!("cleaning up VM {vm}: {e}"));
            }
            if let (Some(directory), Some(ad)) = (self.directory, &s.ad) {
                super::retrying(|| directory.delete_computer(&ad.container_dn, &s.hostname, true))
                    .await
                    .unwrap_or_else(|e| panic!("cleaning up record {}: {e}", s.hostname));
            }
        }
        assert_eq!(self.live_vms().await, 0, "the run leaves no VM");
        if let Some(directory) = self.directory {
            let records = directory
                .list_computers(self.owner_id, &self.containers())
                .await
                .unwrap_or_else(|e| panic!("listing the computer records: {e}"));
            assert!(records.is_empty(), "the run leaves no record: {records:?}");
        }
    }
}
