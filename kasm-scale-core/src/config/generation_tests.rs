use serde::de::DeserializeOwned;

use super::*;
use crate::config::{AwsVmConfig, AzureVmConfig, Format, MemoryVmConfig, load_str};

/// The field names of `T`, from serde's "unknown field" message.
fn fields<T: DeserializeOwned>() -> Vec<String> {
    let err = serde_json::from_str::<T>(r#"{"zz-not-a-field": 0}"#)
        .err()
        .expect("an unknown field is refused")
        .to_string();
    let list = err
        .split_once("expected")
        .expect("serde lists the fields")
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_field_is_classified_as_shaping_or_steering() {
    let providers = [
        fields::<AwsVmConfig>(),
        fields::<AzureVmConfig>(),
        fields::<MemoryVmConfig>(),
    ];
    assert!(providers.iter().all(|f| f.len() > 5), "{providers:?}");
    let unclassified: Vec<&String> = providers
        .iter()
        .flatten()
        .filter(|f| {
            !STEERING_PROVIDER_FIELDS.contains(&f.as_str())
                && !SHAPING_PROVIDER_FIELDS.contains(&f.as_str())
        })
        .collect();
    assert!(unclassified.is_empty(), "provider fields: {unclassified:?}");
    let autoscale = fields::<AutoScaleConfig>();
    let unclassified: Vec<&String> = autoscale
        .iter()
        .filter(|f| {
            !STEERING_AUTOSCALE_FIELDS.contains(&f.as_str())
                && !SHAPING_AUTOSCALE_FIELDS.contains(&f.as_str())
        })
        .collect();
    assert!(
        unclassified.is_empty(),
        "auto-scale fields: {unclassified:?}"
    );
    for f in SHAPING_PROVIDER_FIELDS {
        assert!(!STEERING_PROVIDER_FIELDS.contains(f), "{f} in both lists");
    }
    for f in SHAPING_AUTOSCALE_FIELDS {
        assert!(!STEERING_AUTOSCALE_FIELDS.contains(f), "{f} in both lists");
    }
}

const BASE: &str = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[ldap_configs]]
name = "ad"
url = "ldaps://dc1.example.local:636"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "join-account-secret"

[[vm_providers]]
provider = "aws"
name = "aws"
aws_access_key_id = "AKIAEXAMPLEEXAMPLE00"
aws_secret_access_key = "aws-secret"
aws_region = "eu-central-1"
aws_ec2_ami_id = "ami-0a1b2c3d4e5f67890"
aws_ec2_instance_type = "m6i.xlarge"
aws_ec2_subnet_id = "subnet-0123456789abcdef0"
max_instances = 10
startup_script = "echo {server_hostname} {upstream_auth_address} {domain} {ad_join_credential} {checkin_jwt}"
startup_script_variables = { share = "\\\\files\\profiles" }

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-aws"
vm_provider_config_id = "aws"
connection_type = "RDP"
ad_create_machine_record = true
ldap_id = "ad"
minimum_pool_standby_sessions = 2
"#;

fn generation(text: &str) -> Generation {
    let config = load_str(text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config;
    config.generation("desktops-aws").unwrap()
}

/// `BASE` with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn what_steers_scaling_keeps_the_generation() {
    let base = generation(BASE);
    for (from, to) in [
        (
            "minimum_pool_standby_sessions = 2",
            "minimum_pool_standby_sessions = 20",
        ),
        ("max_instances = 10", "max_instances = 500"),
        (
            "aws_secret_access_key = \"aws-secret\"",
            "aws_secret_access_key = \"rotated\"",
        ),
        (
            "service_account_password = \"join-account-secret\"",
            "service_account_password = \"x\"",
        ),
        (
            "minimum_pool_standby_sessions = 2",
            "minimum_pool_standby_sessions = 2\ndownscale_backoff = 60\nstandby_policy = \"demand\"\nserver_hostname_pattern = \"VDI-{n:3}\"",
        ),
        (
            "minimum_pool_standby_sessions = 2",
            "minimum_pool_standby_sessions = 2\n[[pools.autoscale.schedules]]\nactive_start_time = \"07:00\"\nactive_end_time = \"18:00\"",
        ),
        (
            "max_instances = 10",
            "max_instances = 10\napi_concurrency = 2\napi_call_timeout = 5",
        ),
    ] {
        assert_eq!(generation(&edited(from, to)), base, "{to}");
    }
}

#[test]
fn what_shapes_a_server_changes_the_generation() {
    let base = generation(BASE);
    for (from, to) in [
        ("ami-0a1b2c3d4e5f67890", "ami-0fffffffffffffff0"),
        ("m6i.xlarge", "m6i.2xlarge"),
        ("subnet-0123456789abcdef0", "subnet-0aaaaaaaaaaaaaaa0"),
        ("{checkin_jwt}\"", "{checkin_jwt} # patched\""),
        (
            "share = \"\\\\\\\\files\\\\profiles\"",
            "share = \"\\\\\\\\files2\\\\profiles\"",
        ),
        ("kasm.example.com", "kasm2.example.com"),
        ("DC=example,DC=local", "DC=corp,DC=local"),
        (
            "connection_type = \"RDP\"",
            "connection_type = \"RDP\"\nconnection_password = \"p\"",
        ),
        (
            "max_instances = 10",
            "max_instances = 10\naws_ec2_custom_tags = { team = \"ops\" }",
        ),
        (
            "ldap_id = \"ad\"",
            "ldap_id = \"ad\"\nad_computer_container_dn = \"OU=VDI,DC=example,DC=local\"",
        ),
    ] {
        assert_ne!(generation(&edited(from, to)), base, "{to}");
    }
}

#[test]
fn reordered_keys_are_no_change() {
    let one = edited(
        "max_instances = 10",
        "max_instances = 10\naws_ec2_custom_tags = { team = \"ops\", cost = \"vdi\" }\n\
         aws_ec2_config_override = { MetadataOptions = { HttpTokens = \"required\", HttpPutResponseHopLimit = 1 } }",
    );
    let other = edited(
        "max_instances = 10",
        "max_instances = 10\naws_ec2_custom_tags = { cost = \"vdi\", team = \"ops\" }\n\
         aws_ec2_config_override = { MetadataOptions = { HttpPutResponseHopLimit = 1, HttpTokens = \"required\" } }",
    );
    assert_eq!(generation(&one), generation(&other));
    assert_ne!(generation(&one), generation(BASE));
}

#[test]
fn a_generation_is_the_same_across_processes_and_versions() {
    // Pinned: a change of this value re-rolls every pool of every deployment on upgrade.
    assert_eq!(generation(BASE).to_string(), "771cfc719d437b16");
}

#[test]
fn a_generation_round_trips_as_16_hex_digits() {
    let g = Generation(0x0123_4567_89ab_cdef);
    let text = serde_json::to_string(&g).unwrap();
    assert_eq!(text, "\"0123456789abcdef\"");
    assert_eq!(serde_json::from_str::<Generation>(&text).unwrap(), g);
    assert!(serde_json::from_str::<Generation>("\"0123\"").is_err());
    assert!(serde_json::from_str::<Generation>("\"0123456789abcdeg\"").is_err());
}

#[test]
fn an_unknown_config_has_no_generation() {
    let config = load_str(BASE, Format::Toml).unwrap().config;
    assert_eq!(config.generation("nope"), None);
}

#[test]
fn secrets_enter_a_generation_only_as_slow_digests() {
    let text = edited(
        "connection_type = \"RDP\"",
        "connection_type = \"RDP\"\nconnection_password = \"hunter2-password\"",
    );
    let config = crate::load_str(&text, crate::Format::Toml).unwrap().config;
    let (_, autoscale) = config.autoscale_configs().next().unwrap();
    let shaped = autoscale_shape(autoscale).to_string();
    assert!(!shaped.contains("hunter2"), "{shaped}");
    assert!(
        shaped.contains(
            &conceal("connection_password", "hunter2-password")
                .as_str()
                .unwrap()
                .to_owned()
        )
    );
    // The digest is salted by the field: the same secret elsewhere is another digest.
    assert_ne!(
        conceal("connection_password", "x"),
        conceal("azure_os_password", "x")
    );
    for provider in &config.vm_providers {
        let shaped = provider_shape(provider).to_string();
        for secret in provider.script_extras().values() {
            assert!(
                !shaped.contains(secret.expose()),
                "a script variable in clear: {shaped}"
            );
        }
    }
}
