//! End to end with the real directory: the controller creates servers in the in-memory cloud
//! with their computer records in Samba AD, sessions grow the pool, and after scale-down no
//! record of a destroyed server is left. Needs the `.ci/run` Samba DC (see tests/samba.rs).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::memory::deliver_checkins;
use kasm_scale_core::traits::DirectoryService;
use kasm_scale_ldap::LdapDirectory;

fn env(k: &str) -> Option<String> {
    kasm_scale_core::testkit::test_server(k, "KASM_SCALE_SKIP_LDAP", "Active Directory (Samba)")
}

#[tokio::test]
async fn scale_down_leaves_no_computer_record_behind() {
    let (Some(url), Some(ca), Some(bind), Some(pw)) = (
        env("KASM_SCALE_LDAP_URL"),
        env("KASM_SCALE_LDAP_CA"),
        env("KASM_SCALE_LDAP_BIND_DN"),
        env("KASM_SCALE_LDAP_PASSWORD"),
    ) else {
        return;
    };
    let owner = format!("ldap-e2e-{}", uuid::Uuid::new_v4().simple());
    let text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[ldap_configs]]
name = "ad"
url = "{url}"
search_base = "DC=example,DC=local"
service_account_dn = "{bind}"
service_account_password = "{pw}"
ca_certificate_file = "{ca}"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10
startup_script = "{{ad_join_credential}} {{checkin_jwt}}"
boot_latency = {{ fixed = 0 }}
checkin_delay = {{ fixed = 0 }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
connection_credential_type = "SSO User Accounts"
minimum_pool_standby_sessions = 2
reusable = true
require_checkin = true
downscale_backoff = 1
ad_create_machine_record = true
ad_recursive_machine_record_cleanup = true
ldap_id = "ad"
ad_computer_container_dn = "CN=Computers,DC=example,DC=local"
"#
    );
    let config = kasm_scale_core::load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        panic!("a memory provider")
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 7));
    let directory = Arc::new(
        LdapDirectory::builder(config.ldap_configs[0].clone())
            .build()
            .unwrap(),
    );
    let scaler = Autoscaler::builder(config)
        .owner_id(&owner)
        .provider(cloud.clone())
        .directory(directory.clone())
        .build()
        .unwrap();
    let computers = ["CN=Computers,DC=example,DC=local".to_owned()];
    let records = || async { directory.list_computers(&owner, &computers).await.unwrap() };
    let names = |servers: &[kasm_scale_core::controller::ServerInfo]| -> HashSet<String> {
        servers
            .iter()
            .map(|s| s.hostname.to_ascii_uppercase())
            .collect()
    };
    let settle = || async {
        for _ in 0..3 {
            scaler.tick().await;
            scaler.settle().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            deliver_checkins(&scaler, &cloud).await;
        }
        scaler.tick().await;
        scaler.settle().await;
    };

    settle().await;
    let running = |s: &Autoscaler| {
        s.servers()
            .iter()
            .filter(|x| x.state == ServerState::Running)
            .count()
    };
    assert_eq!(running(&scaler), 2, "{:?}", scaler.servers());
    let in_ad: HashSet<String> = records()
        .await
        .iter()
        .map(|r| r.name.to_ascii_uppercase())
        .collect();
    assert_eq!(in_ad, names(&scaler.servers()), "one record per server");

    let mut sessions = Vec::new();
    for _ in 0..3 {
        match scaler
            .request_session("p", &SessionRequest::default())
            .await
            .unwrap()
        {
            SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session } => {
                sessions.push(session)
            }
        }
    }
    settle().await;
    assert_eq!(running(&scaler), 5, "{:?}", scaler.servers());
    assert_eq!(records().await.len(), 5);

    for s in sessions {
        scaler.end_session(s).await.unwrap();
    }
    scaler.tick().await;
    scaler.settle().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    scaler.tick().await;
    scaler.settle().await;
    let left = scaler.servers();
    assert_eq!(left.len(), 2, "{left:?}");
    let in_ad: HashSet<String> = records()
        .await
        .iter()
        .map(|r| r.name.to_ascii_uppercase())
        .collect();
    assert_eq!(
        in_ad,
        names(&left),
        "the destroyed servers' records are gone"
    );
    // Clean up what the test made.
    for s in left {
        directory
            .delete_computer("CN=Computers,DC=example,DC=local", &s.hostname, true)
            .await
            .unwrap();
    }
    assert!(records().await.is_empty());
}
