//! The fixture builder the tests share: the TOML it writes is, table for table and field for
//! field, the text the tests used to paste; what a test does not set is absent; bad snippets
//! and `Debug` do not show the test's secrets.

use crate::fixture::{AD_CONTAINER, Fixture};

fn parsed(text: &str) -> toml::Table {
    text.parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
}

/// The configuration of `controller.rs` as it was pasted there.
const PASTED: &str = r#"
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
startup_script = "{checkin_jwt}"
boot_latency = { fixed = 60 }
checkin_delay = { fixed = 30 }

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = 3
require_checkin = true
checkin_timeout = 600
downscale_backoff = 600
ad_create_machine_record = true
ldap_id = "ad"
ad_computer_container_dn = "OU=Kasm,DC=example,DC=local"
reusable = true

[broker_api]
keys = ["a-key-0123456789-0123456789-0123456789"]
"#;

#[test]
fn the_builder_writes_the_pasted_configuration() {
    let built = Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .active_directory()
        .minimum_standby(3)
        .require_checkin(true)
        .checkin_timeout(600)
        .downscale_backoff(600)
        .autoscale_toml("reusable = true")
        .toml("[broker_api]\nkeys = [\"a-key-0123456789-0123456789-0123456789\"]");
    assert_eq!(parsed(&built.to_toml()), parsed(PASTED));
    let loaded = kasm_scale_core::load_str(PASTED, kasm_scale_core::Format::Toml)
        .unwrap()
        .config;
    assert_eq!(built.config(), loaded);
}

#[test]
fn what_a_test_does_not_set_is_absent() {
    let text = Fixture::memory_pool("office").to_toml();
    let expected = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10
startup_script = "{checkin_jwt}"

[[pools]]
server_pool_name = "office"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
"#;
    assert_eq!(parsed(&text), parsed(expected));
    let bare = Fixture::memory_pool("p")
        .provider_without("startup_script")
        .active_directory()
        .autoscale_without("ad_computer_container_dn")
        .to_toml();
    assert!(!bare.contains("startup_script"), "{bare}");
    assert!(!bare.contains("ad_computer_container_dn"), "{bare}");
    assert!(bare.contains("ldap_id = \"ad\""), "{bare}");
}

#[test]
fn later_settings_replace_earlier_ones() {
    let config = Fixture::memory_pool("p")
        .minimum_standby(2)
        .autoscale_toml("minimum_pool_standby_sessions = 6")
        .max_instances(3)
        .provider_toml("max_instances = 4\napi_concurrency = 2")
        .ldap("url", "ldaps://127.0.0.1:636")
        .zone("upstream_auth_address", "127.0.0.1:8443")
        .config();
    let autoscale = &config.pools[0].autoscale[0];
    assert_eq!(autoscale.minimum_pool_standby_sessions, 6);
    assert_eq!(config.ldap_configs[0].url, "ldaps://127.0.0.1:636");
    assert_eq!(
        autoscale.ad_computer_container_dn.as_deref(),
        Some(AD_CONTAINER)
    );
    assert_eq!(config.zones[0].upstream_auth_address, "127.0.0.1:8443");
    let text = Fixture::memory_pool("p")
        .max_instances(3)
        .provider_toml("max_instances = 4")
        .to_toml();
    assert!(text.contains("max_instances = 4"), "{text}");
    assert!(!text.contains("max_instances = 3"), "{text}");
}

#[test]
#[should_panic(expected = "the fixture's auto-scale snippet is not TOML (bytes")]
fn a_snippet_that_is_not_toml_is_named() {
    let _ = Fixture::memory_pool("p").autoscale_toml("reusable = = true");
}

#[test]
fn debug_shows_no_password_or_key() {
    let fixture = Fixture::memory_pool("p")
        .active_directory()
        .ldap("service_account_password", "Sup3r-Secret")
        .toml("[checkin_token]\nkey = \"check-in-key-0123456789-0123456789\"");
    let shown = format!("{fixture:?}");
    assert!(!shown.contains("Sup3r-Secret"), "{shown}");
    assert!(!shown.contains("check-in-key"), "{shown}");
    assert!(shown.contains("\"p\""), "{shown}");
}
