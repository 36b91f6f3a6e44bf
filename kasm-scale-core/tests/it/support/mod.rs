//! The document and helpers shared by the rule tests (`config_rules`, `config_bounds`).
// Each test file uses a part of them.
#![allow(dead_code)]

use kasm_scale_core::{ConfigError, Format, Severity, load_str};
use serde_json::{Value, json};

/// A small valid document with one provider of each kind, one LDAP config and one pool.
pub fn base() -> Value {
    json!({
        "zones": [{"zone_name": "default", "upstream_auth_address": "kasm.example.com"}],
        "ldap_configs": [{
            "name": "ad", "url": "ldaps://dc1.example.local", "search_base": "DC=example,DC=local",
            "service_account_dn": "svc@example.local", "service_account_password": "pw-ldap-1"
        }],
        "vm_providers": [
            {"provider": "aws", "name": "aws", "aws_region": "us-east-1", "aws_ec2_ami_id": "ami-1",
             "aws_ec2_instance_type": "t3.large", "max_instances": 4},
            {"provider": "azure", "name": "az", "azure_subscription_id": "00000000-0000-0000-0000-00000000000a",
             "azure_resource_group": "rg", "azure_tenant_id": "00000000-0000-0000-0000-00000000000b", "azure_client_id": "c", "azure_client_secret": "pw-azure-2",
             "azure_region": "eastus", "max_instances": 4, "azure_vm_size": "Standard_D2s_v5",
             "azure_image_reference": {"id": "/images/x"}, "azure_subnet": "/subnets/x",
             "azure_os_username": "admin", "azure_ssh_public_key": "ssh-ed25519 AAAA"},
            {"provider": "memory", "name": "mem", "max_instances": 4}
        ],
        "pools": [{"server_pool_name": "p", "autoscale": [
            {"autoscale_config_name": "a", "vm_provider_config_id": "aws", "connection_type": "RDP"}
        ]}],
        "workspaces": [{"friendly_name": "w", "server_pool_id": "p"}]
    })
}

/// Loads `doc` and returns its problems as (severity, "path: message") lines.
pub fn problems(doc: &Value) -> Vec<(Severity, String)> {
    match load_str(&doc.to_string(), Format::Json) {
        Ok(loaded) => loaded
            .warnings
            .iter()
            .map(|p| (p.severity, format!("{}: {}", p.path, p.message)))
            .collect(),
        Err(ConfigError::Invalid { problems }) => problems
            .iter()
            .map(|p| (p.severity, format!("{}: {}", p.path, p.message)))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Applies `edit` to the base document and asserts exactly these errors (and no others).
pub fn errors(edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut doc = base();
    edit(&mut doc);
    let got: Vec<String> = problems(&doc)
        .into_iter()
        .filter(|(s, _)| *s == Severity::Error)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(got, expected, "document: {doc:#}");
}

pub fn warnings(edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut doc = base();
    edit(&mut doc);
    let all = problems(&doc);
    assert!(all.iter().all(|(s, _)| *s == Severity::Warning), "{all:?}");
    let got: Vec<String> = all.into_iter().map(|(_, m)| m).collect();
    assert_eq!(got, expected);
}

pub fn asc(doc: &mut Value) -> &mut Value {
    &mut doc["pools"][0]["autoscale"][0]
}
