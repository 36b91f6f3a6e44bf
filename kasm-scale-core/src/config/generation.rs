//! Generations *(ours)*: a fingerprint of what shapes an auto-scale config's servers, so that a
//! server built from an older configuration can be told apart (and replaced by a rollout).
//!
//! What shapes a server: its VM provider config's fields except those that only steer the
//! controller (credentials, endpoints, limits, the in-memory cloud's simulated behaviour), the
//! startup script as delivered (a built-in script's text included) and its extra variables, and
//! what the guest sees of its auto-scale config: the script variables `connection_username`,
//! `connection_password`, `upstream_auth_address` (its zone) and `domain`, and where its AD
//! record goes. Minimums, schedules, backoffs, policies and name patterns steer scaling only.
//! Every field of the configuration is classified here; a test fails when one is not.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AutoScaleConfig, Config, VmProviderConfig};

/// Provider fields that do not shape a VM: which account and endpoint creates it, how fast,
/// how many, and how the in-memory cloud behaves.
pub const STEERING_PROVIDER_FIELDS: &[&str] = &[
    "name",
    "max_instances",
    "api_concurrency",
    "api_rate_limit_per_second",
    "api_call_timeout",
    "api_operation_timeout",
    "danger_allow_plaintext",
    // AWS: credentials and endpoint; the private key only decrypts the Windows password.
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_endpoint_url",
    "retrieve_password",
    "aws_ec2_private_key",
    // Azure: credentials and endpoints.
    "azure_tenant_id",
    "azure_client_id",
    "azure_client_secret",
    "azure_authority",
    "azure_resource_manager_url",
    "azure_authority_url",
    // The in-memory cloud's simulated behaviour.
    "boot_latency",
    "checkin_delay",
    "create_failure_rate",
    "destroy_failure_rate",
    "never_checkin_rate",
    "rate_limit_per_second",
    "capacity",
    "outages",
    "start_latency",
    "stop_failure_rate",
    "start_failure_rate",
    // (ours) Prices and the capacity fallback steer where and at what cost servers are made,
    // not what they are: a server made on an alternative is not outdated when the list changes.
    "price_per_hour",
    "stopped_price_per_hour",
    "alternatives",
    "capacity_skip_seconds",
    // Folded in as the script actually delivered and its merged variables (below).
    "startup_script",
    "startup_script_builtin",
    "startup_script_variables",
    // The tag: the kind is folded in as `kind`.
    "provider",
];

/// Provider fields that shape a VM: where it runs, from which image, of what size, on which
/// network and disks, with which tags, administrator and request override.
pub const SHAPING_PROVIDER_FIELDS: &[&str] = &[
    "aws_region",
    "aws_ec2_ami_id",
    "aws_ec2_instance_type",
    "aws_ec2_security_group_ids",
    "aws_ec2_subnet_id",
    "aws_ec2_ebs_volume_size_gb",
    "aws_ec2_ebs_volume_type",
    "aws_ec2_iam",
    "aws_ec2_custom_tags",
    "aws_ec2_config_override",
    "aws_ec2_key_name",
    "aws_is_windows",
    "aws_ec2_hibernation",
    "azure_subscription_id",
    "azure_resource_group",
    "azure_region",
    "azure_vm_size",
    "azure_os_disk_type",
    "azure_os_disk_size_gb",
    "azure_image_reference",
    "azure_is_windows",
    "azure_network_sg",
    "azure_subnet",
    "azure_public_ip",
    "azure_tags",
    "azure_os_username",
    "azure_os_password",
    "azure_ssh_public_key",
    "azure_config_override",
    "azure_zone",
];

/// The auto-scale config fields a guest sees (script variables and its AD record's place).
pub const SHAPING_AUTOSCALE_FIELDS: &[&str] = &[
    "vm_provider_config_id",
    "zone_id",
    "connection_username",
    "connection_password",
    "ad_create_machine_record",
    "ad_computer_container_dn",
];

/// The auto-scale config fields that steer scaling, placement and sessions only.
pub const STEERING_AUTOSCALE_FIELDS: &[&str] = &[
    "autoscale_config_name",
    "enabled",
    "aggressive_scaling",
    "connection_type",
    "connection_port",
    "connection_credential_type",
    "connection_sso_username_domain",
    "connection_info",
    "use_user_private_key",
    "connection_private_key",
    "connection_passphrase",
    // The directory's domain is folded in (below); its name is not.
    "ldap_id",
    "ad_recursive_machine_record_cleanup",
    "reusable",
    "minimum_pool_standby_sessions",
    "max_simultaneous_sessions_per_server",
    "require_checkin",
    "agent_installed",
    "downscale_backoff",
    "checkin_timeout",
    "schedules",
    "standby_policy",
    "target_immediate_service",
    "server_hostname_pattern",
    "rollout",
    "warm_pool",
];

/// An auto-scale config's generation: the first 8 bytes of a SHA-256 over what shapes its
/// servers, shown as 16 hex digits. Equal configurations give equal generations on every
/// replica and across restarts and versions, unless a built-in startup script changed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Generation({self})")
    }
}

impl From<Generation> for String {
    fn from(g: Generation) -> String {
        g.to_string()
    }
}

impl TryFrom<String> for Generation {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.len() != 16 {
            return Err(format!(
                "a generation is 16 hex digits, got {} characters",
                text.len()
            ));
        }
        u64::from_str_radix(&text, 16)
            .map(Generation)
            .map_err(|_| "a generation is 16 hex digits".to_owned())
    }
}

impl Config {
    /// The generation of auto-scale config `name`; `None` when there is no such config or its
    /// VM provider config is missing.
    pub fn generation(&self, name: &str) -> Option<Generation> {
        let (_, autoscale) = self
            .autoscale_configs()
            .find(|(_, c)| c.autoscale_config_name == name)?;
        let provider = self.vm_provider(&autoscale.vm_provider_config_id)?;
        let document = Value::Object(Map::from_iter([
            ("provider".to_owned(), provider_shape(provider)),
            ("autoscale".to_owned(), autoscale_shape(autoscale)),
            ("guest".to_owned(), self.guest_shape(autoscale)),
        ]));
        let bytes = serde_json::to_vec(&sorted(document)).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let first: [u8; 8] = digest.as_ref()[..8].try_into().ok()?;
        Some(Generation(u64::from_be_bytes(first)))
    }

    /// The values a guest gets from outside its own configs: its zone's address and its
    /// directory's domain.
    fn guest_shape(&self, autoscale: &AutoScaleConfig) -> Value {
        let address = self
            .zone(&autoscale.zone_id)
            .map(|z| z.upstream_auth_address.clone());
        let domain = autoscale
            .ad_create_machine_record
            .then_some(autoscale.ldap_id.as_deref())
            .flatten()
            .and_then(|id| self.ldap_configs.iter().find(|l| l.name == id))
            .and_then(|l| l.domain());
        serde_json::json!({ "upstream_auth_address": address, "domain": domain })
    }
}

/// `value` with every object's keys in order, so that reordering keys (in an override, in tags)
/// is no change.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// PBKDF2 rounds over each secret a generation folds in.
pub const GENERATION_SECRET_ROUNDS: u32 = 10_000;

/// A secret as a generation folds it in: a change of it changes the generation, but the
/// generation (shown in the API, the metrics and the events) cannot be used to test guesses
/// of it cheaply: it enters as a PBKDF2-HMAC-SHA256 digest ([`GENERATION_SECRET_ROUNDS`]
/// rounds, salted by its field).
fn conceal(field: &str, secret: &str) -> Value {
    let rounds =
        std::num::NonZeroU32::new(GENERATION_SECRET_ROUNDS).unwrap_or(std::num::NonZeroU32::MIN);
    let mut out = [0u8; 32];
    let salt = format!("kasm-scale generation {field}");
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt.as_bytes(),
        secret.as_bytes(),
        &mut out,
    );
    Value::from(out.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The fields of `map` named in `secrets`, concealed.
fn conceal_fields(map: &mut Map<String, Value>, secrets: &[&str]) {
    for field in secrets {
        if let Some(Value::String(text)) = map.get(*field) {
            let hidden = conceal(field, text);
            map.insert((*field).to_owned(), hidden);
        }
    }
}

/// The provider config without its steering fields, with the script as delivered.
fn provider_shape(provider: &VmProviderConfig) -> Value {
    let mut fields = match serde_json::to_value(provider) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    fields.retain(|k, _| !STEERING_PROVIDER_FIELDS.contains(&k.as_str()));
    conceal_fields(&mut fields, &["azure_os_password"]);
    fields.insert("kind".to_owned(), Value::from(provider.kind()));
    fields.insert(
        "script".to_owned(),
        Value::from(provider.script_text().unwrap_or_default()),
    );
    let extras: Map<String, Value> = provider
        .script_extras()
        .into_iter()
        .map(|(k, v)| {
            let hidden = conceal(&format!("startup_script_variables.{k}"), v.expose());
            (k, hidden)
        })
        .collect();
    fields.insert("script_variables".to_owned(), Value::Object(extras));
    Value::Object(fields)
}

/// The auto-scale config fields a guest sees.
fn autoscale_shape(autoscale: &AutoScaleConfig) -> Value {
    match serde_json::to_value(autoscale) {
        Ok(Value::Object(mut map)) => {
            map.retain(|k, _| SHAPING_AUTOSCALE_FIELDS.contains(&k.as_str()));
            conceal_fields(&mut map, &["connection_password"]);
            Value::Object(map)
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
#[path = "generation_tests.rs"]
mod tests;
