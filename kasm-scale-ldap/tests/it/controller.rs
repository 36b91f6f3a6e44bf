//! End to end with the real directory: the shared controller scenario (`testkit::Scenario`)
//! with servers in the in-memory cloud and their computer records in Samba AD — one record per
//! server as the pool fills and grows, none left of a destroyed server. Needs the `.ci/run`
//! Samba DC (see samba.rs).

use std::sync::Arc;

use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::testkit::{Scenario, scenario_config};
use kasm_scale_ldap::LdapDirectory;

fn env(k: &str) -> Option<String> {
    kasm_scale_core::testkit::test_server(k, "KASM_SCALE_SKIP_LDAP", "Active Directory (Samba)")
}

#[tokio::test]
async fn the_controller_scenario_runs_with_samba_ad() {
    let (Some(url), Some(ca), Some(bind), Some(pw)) = (
        env("KASM_SCALE_LDAP_URL"),
        env("KASM_SCALE_LDAP_CA"),
        env("KASM_SCALE_LDAP_BIND_DN"),
        env("KASM_SCALE_LDAP_PASSWORD"),
    ) else {
        return;
    };
    let owner = format!("ldap-e2e-{}", uuid::Uuid::new_v4().simple());
    let config = scenario_config(
        &format!(
            r#"
[[ldap_configs]]
name = "ad"
url = "{url}"
search_base = "DC=example,DC=local"
service_account_dn = "{bind}"
service_account_password = "{pw}"
ca_certificate_file = "{ca}"

[[vm_providers]]
provider = "memory"
name = "vm"
max_instances = 10
startup_script = "{{ad_join_credential}} {{checkin_jwt}}"
boot_latency = {{ fixed = 0 }}
checkin_delay = {{ fixed = 0 }}
"#
        ),
        r#"
ad_create_machine_record = true
ad_recursive_machine_record_cleanup = true
ldap_id = "ad"
ad_computer_container_dn = "CN=Computers,DC=example,DC=local"
"#,
    );
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
    Scenario {
        scaler: &scaler,
        owner_id: &owner,
        provider: cloud.as_ref(),
        directory: Some(directory.as_ref()),
        guests: cloud.as_ref(),
    }
    .run()
    .await;
}
