//! VM provider configs: where and how servers are created ([`VmProviderConfig`]).
//!
//! Plain data with Kasm's `aws_*` / `azure_*` field names; the provider crates turn them into
//! API calls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::api;
use super::azure_ids;
use super::bounds::{self, DELAY, MAX_DELAY_SECONDS, human};
use super::fields::{self, JsonObject, Num, Tags, is_false};
use crate::secret::Secret;

/// One VM provider config, selected by its `provider` field: `aws`, `azure` or `memory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum VmProviderConfig {
    /// Amazon EC2.
    Aws(AwsVmConfig),
    /// Azure Resource Manager.
    Azure(AzureVmConfig),
    /// The in-memory cloud used by tests and simulations.
    Memory(MemoryVmConfig),
}

/// The `provider` values, in the order of [`VmProviderConfig`]'s variants.
pub const PROVIDER_KINDS: [&str; 3] = ["aws", "azure", "memory"];

impl VmProviderConfig {
    /// The config's unique name.
    pub fn name(&self) -> &str {
        match self {
            Self::Aws(c) => &c.name,
            Self::Azure(c) => &c.name,
            Self::Memory(c) => &c.name,
        }
    }

    /// `aws`, `azure` or `memory`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws(_) => PROVIDER_KINDS[0],
            Self::Azure(_) => PROVIDER_KINDS[1],
            Self::Memory(_) => PROVIDER_KINDS[2],
        }
    }

    /// Hard cap on live VMs of this config.
    pub fn max_instances(&self) -> u32 {
        match self {
            Self::Aws(c) => c.max_instances,
            Self::Azure(c) => c.max_instances,
            Self::Memory(c) => c.max_instances,
        }
    }

    /// The startup-script template.
    pub fn startup_script(&self) -> &str {
        match self {
            Self::Aws(c) => &c.startup_script,
            Self::Azure(c) => &c.startup_script,
            Self::Memory(c) => &c.startup_script,
        }
    }

    /// The name of the built-in startup script to use instead of `startup_script`, if any.
    pub fn startup_script_builtin(&self) -> Option<&str> {
        match self {
            Self::Aws(c) => c.startup_script_builtin.as_deref(),
            Self::Azure(c) => c.startup_script_builtin.as_deref(),
            Self::Memory(c) => c.startup_script_builtin.as_deref(),
        }
    }

    /// Extra variables for the startup script.
    pub fn startup_script_variables(&self) -> &BTreeMap<String, Secret> {
        match self {
            Self::Aws(c) => &c.startup_script_variables,
            Self::Azure(c) => &c.startup_script_variables,
            Self::Memory(c) => &c.startup_script_variables,
        }
    }

    /// Whether the startup script is PowerShell for Windows (AWS wraps it in `<powershell>`).
    pub fn is_windows(&self) -> bool {
        match self {
            Self::Aws(c) => c.aws_is_windows,
            Self::Azure(c) => c.azure_is_windows,
            Self::Memory(_) => false,
        }
    }

    /// The largest rendered startup script the provider can deliver, in bytes, if it has a limit
    /// (AWS user data 16 KiB, Azure custom data 65535 bytes).
    pub fn startup_script_limit(&self) -> Option<usize> {
        match self {
            Self::Aws(_) => Some(AWS_USER_DATA_LIMIT),
            Self::Azure(_) => Some(AZURE_CUSTOM_DATA_LIMIT),
            Self::Memory(_) => None,
        }
    }
}

/// AWS user data: 16 KiB before base64 encoding.
pub const AWS_USER_DATA_LIMIT: usize = 16 * 1024;

/// Azure custom data: the decoded binary array may be at most 65535 bytes.
pub const AZURE_CUSTOM_DATA_LIMIT: usize = 65_535;

/// An AWS EC2 VM provider config.
///
/// The fields every provider has (`name`, `max_instances`, `startup_script*`, `api_*`) are
/// repeated in each provider struct rather than flattened from a shared one: `#[serde(flatten)]`
/// would turn off `deny_unknown_fields` and lose the field paths in error messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsVmConfig {
    /// Unique name of the config.
    pub name: String,
    /// Access key id; absent means the standard AWS credential chain. A secret like the key:
    /// never in `Debug` output, logs or errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<Secret>,
    /// Secret access key; required with `aws_access_key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<Secret>,
    /// Region, e.g. `us-east-1`.
    pub aws_region: String,
    /// AMI id, e.g. `ami-0123456789abcdef0`.
    pub aws_ec2_ami_id: String,
    /// Instance type, e.g. `t3.medium`.
    pub aws_ec2_instance_type: String,
    /// Hard cap on live instances of this config, 1 to 10000 ([`super::MAX_INSTANCES`]).
    #[serde(deserialize_with = "super::bounds::max_instances")]
    pub max_instances: u32,
    /// Security group ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws_ec2_security_group_ids: Vec<String>,
    /// Subnet id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_subnet_id: Option<String>,
    /// Root volume size in GiB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::opt_positive_u32"
    )]
    pub aws_ec2_ebs_volume_size_gb: Option<u32>,
    /// Root volume type: `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_ebs_volume_type: Option<String>,
    /// IAM instance profile name or ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_iam: Option<String>,
    /// Extra tags for instances and volumes.
    #[serde(default, skip_serializing_if = "is_empty_tags")]
    pub aws_ec2_custom_tags: Tags,
    /// Startup-script template, delivered as user data.
    #[serde(default)]
    pub startup_script: String,
    /// (ours) Name of a built-in startup script (`windows`, `linux`) used instead of
    /// `startup_script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_script_builtin: Option<String>,
    /// (ours) Extra variables for the startup script (e.g. `fslogix_vhd_locations`), kept secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub startup_script_variables: BTreeMap<String, Secret>,
    /// JSON merged into the RunInstances request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_config_override: Option<JsonObject>,
    /// Fetch the Windows administrator password with the key pair. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retrieve_password: bool,
    /// Name of the EC2 key pair given to instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_key_name: Option<String>,
    /// Private key (PEM) of that key pair, for `retrieve_password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_private_key: Option<Secret>,
    /// (ours) The AMI runs Windows: the script is wrapped in `<powershell>` when not already.
    #[serde(default, skip_serializing_if = "is_false")]
    pub aws_is_windows: bool,
    /// (ours) EC2 endpoint override, for tests and AWS-compatible clouds. `https://`, or
    /// `http://` to a loopback host; another `http://` host needs `danger_allow_plaintext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_url: Option<String>,
    /// (ours) Allows an `http://` endpoint override to a host other than loopback. Tests only:
    /// the requests carry signed credentials and the startup script (with its join password
    /// and check-in token) in clear. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub danger_allow_plaintext: bool,
    /// (ours) Calls to this provider the controller has in flight at once, 1 to 1024. Default 8.
    #[serde(
        default = "api::default_concurrency",
        skip_serializing_if = "api::is_default_concurrency",
        deserialize_with = "bounds::api_concurrency"
    )]
    pub api_concurrency: u32,
    /// (ours) At most this many calls to this provider a second, 0.001 to 100000. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limit_per_second: Option<f64>,
    /// (ours) Seconds one call to this provider may take before it fails as transient, 1 to 3600.
    /// Default 30.
    #[serde(
        default = "api::default_call_timeout",
        skip_serializing_if = "api::is_default_call_timeout",
        deserialize_with = "bounds::call_timeout"
    )]
    pub api_call_timeout: u32,
    /// (ours) Price of one running VM of this config per hour (any currency, the same for every
    /// config you compare): the simulator's costs and `/metrics`' spend rate. Default unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub price_per_hour: Option<f64>,
    /// (ours) Price of one stopped (deallocated) VM of this config per hour: its disks. Default
    /// unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub stopped_price_per_hour: Option<f64>,
    /// (ours) Ordered alternatives tried when the ones before are short of capacity (see
    /// [`super::Offering`]), at most 16. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<super::AwsAlternative>,
    /// (ours) Seconds an offering that answered "insufficient capacity" is skipped, 0 to 86400.
    /// Default 180.
    #[serde(
        default = "super::offering::default_capacity_skip",
        skip_serializing_if = "super::offering::is_default_capacity_skip",
        deserialize_with = "bounds::capacity_skip"
    )]
    pub capacity_skip_seconds: u32,
    /// (ours) Launch with hibernation configured (`HibernationOptions`), so that a warm tier
    /// whose `hibernate` is set hibernates its stopped servers instead of shutting them down.
    /// Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub aws_ec2_hibernation: bool,
}

fn is_empty_tags(t: &Tags) -> bool {
    t.0.is_empty()
}

/// EBS volume types AWS accepts.
pub const AWS_EBS_VOLUME_TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

/// An Azure VM provider config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureVmConfig {
    /// Unique name of the config.
    pub name: String,
    /// Subscription id (a GUID).
    pub azure_subscription_id: String,
    /// Resource group the VMs are created in: 1 to 90 letters, digits, `_`, `-`, `.`, `(`,
    /// `)`, not ending in a period.
    pub azure_resource_group: String,
    /// Directory (tenant) id (a GUID).
    pub azure_tenant_id: String,
    /// Application (client) id of the service principal.
    pub azure_client_id: String,
    /// Client secret of the service principal.
    pub azure_client_secret: Secret,
    /// Cloud: `public` (default), `government` or `china`.
    #[serde(default)]
    pub azure_authority: AzureAuthority,
    /// Region, e.g. `eastus`.
    pub azure_region: String,
    /// Hard cap on live VMs of this config, 1 to 10000 ([`super::MAX_INSTANCES`]).
    #[serde(deserialize_with = "super::bounds::max_instances")]
    pub max_instances: u32,
    /// VM size, e.g. `Standard_D4s_v5`.
    pub azure_vm_size: String,
    /// OS disk type, e.g. `Premium_LRS`.
    #[serde(default = "default_disk_type")]
    pub azure_os_disk_type: String,
    /// OS disk size in GiB; absent keeps the image's size.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::opt_positive_u32"
    )]
    pub azure_os_disk_size_gb: Option<u32>,
    /// Image: `{publisher, offer, sku, version}` or `{id}` (or the same as a JSON string).
    pub azure_image_reference: JsonObject,
    /// The image runs Windows. Default false.
    #[serde(default)]
    pub azure_is_windows: bool,
    /// Network security group resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_network_sg: Option<String>,
    /// Subnet resource id.
    pub azure_subnet: String,
    /// Give each VM a public IP. Default false.
    #[serde(default)]
    pub azure_public_ip: bool,
    /// Extra tags for the VM and its resources.
    #[serde(default, skip_serializing_if = "is_empty_tags")]
    pub azure_tags: Tags,
    /// Administrator user name.
    pub azure_os_username: String,
    /// Administrator password (Windows, or Linux without an SSH key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_os_password: Option<Secret>,
    /// SSH public key for the administrator (Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_ssh_public_key: Option<String>,
    /// Startup-script template, delivered as custom data.
    #[serde(default)]
    pub startup_script: String,
    /// (ours) Name of a built-in startup script (`windows`, `linux`) used instead of
    /// `startup_script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_script_builtin: Option<String>,
    /// (ours) Extra variables for the startup script (e.g. `fslogix_vhd_locations`), kept secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub startup_script_variables: BTreeMap<String, Secret>,
    /// JSON merged into the VM create request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_config_override: Option<JsonObject>,
    /// (ours) Resource Manager endpoint override, for tests. `https://`, or `http://` to a
    /// loopback host; another `http://` host needs `danger_allow_plaintext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_manager_url: Option<String>,
    /// (ours) Login authority override, for tests (same rule as `azure_resource_manager_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_authority_url: Option<String>,
    /// (ours) Allows `http://` overrides to hosts other than loopback. Tests only: the client
    /// secret, the bearer tokens and the custom data (with its join password and check-in
    /// token) would travel in clear. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub danger_allow_plaintext: bool,
    /// (ours) Calls to this provider the controller has in flight at once, 1 to 1024. Default 8.
    #[serde(
        default = "api::default_concurrency",
        skip_serializing_if = "api::is_default_concurrency",
        deserialize_with = "bounds::api_concurrency"
    )]
    pub api_concurrency: u32,
    /// (ours) At most this many calls to this provider a second, 0.001 to 100000. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limit_per_second: Option<f64>,
    /// (ours) Seconds one call to this provider may take before it fails as transient, 1 to 3600.
    /// Default 30. For Azure, one call is one Resource Manager request.
    #[serde(
        default = "api::default_call_timeout",
        skip_serializing_if = "api::is_default_call_timeout",
        deserialize_with = "bounds::call_timeout"
    )]
    pub api_call_timeout: u32,
    /// (ours) Seconds one long-running operation may take, 1 to 86400 (1 day): a VM create
    /// (network interface, VM, OS disk tags) or delete, each followed to its end through ARM's
    /// `Azure-AsyncOperation` polling, minutes on Azure. It bounds the whole create or delete,
    /// not `api_call_timeout`, which bounds each request. Default 1800 (30 minutes).
    #[serde(
        default = "api::default_operation_timeout",
        skip_serializing_if = "api::is_default_operation_timeout",
        deserialize_with = "bounds::operation_timeout"
    )]
    pub api_operation_timeout: u32,
    /// (ours) Price of one running VM of this config per hour (any currency, the same for every
    /// config you compare): the simulator's costs and `/metrics`' spend rate. Default unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub price_per_hour: Option<f64>,
    /// (ours) Price of one stopped (deallocated) VM of this config per hour: its disks. Default
    /// unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub stopped_price_per_hour: Option<f64>,
    /// (ours) Ordered alternatives tried when the ones before are short of capacity (see
    /// [`super::Offering`]), at most 16. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<super::AzureAlternative>,
    /// (ours) Seconds an offering that answered "insufficient capacity" is skipped, 0 to 86400.
    /// Default 180.
    #[serde(
        default = "super::offering::default_capacity_skip",
        skip_serializing_if = "super::offering::is_default_capacity_skip",
        deserialize_with = "bounds::capacity_skip"
    )]
    pub capacity_skip_seconds: u32,
    /// (ours) The availability zone of the VMs (`"1"`, `"2"`, `"3"`). Default: none (regional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_zone: Option<String>,
}

fn default_disk_type() -> String {
    "Premium_LRS".into()
}

/// OS disk types Azure accepts.
pub const AZURE_OS_DISK_TYPES: [&str; 5] = [
    "Standard_LRS",
    "StandardSSD_LRS",
    "Premium_LRS",
    "StandardSSD_ZRS",
    "Premium_ZRS",
];

/// Which Azure cloud to sign in to and manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AzureAuthority {
    /// Azure public cloud (`login.microsoftonline.com`).
    #[default]
    #[serde(
        alias = "https://login.microsoftonline.com",
        alias = "AzurePublicCloud"
    )]
    Public,
    /// Azure US Government (`login.microsoftonline.us`).
    #[serde(
        alias = "https://login.microsoftonline.us",
        alias = "AzureUSGovernment"
    )]
    Government,
    /// Azure China (`login.chinacloudapi.cn`).
    #[serde(alias = "https://login.chinacloudapi.cn", alias = "AzureChinaCloud")]
    China,
}

impl AzureAuthority {
    /// The login authority's base URL.
    pub fn login_url(self) -> &'static str {
        match self {
            Self::Public => "https://login.microsoftonline.com",
            Self::Government => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Resource Manager endpoint.
    pub fn resource_manager_url(self) -> &'static str {
        match self {
            Self::Public => "https://management.azure.com",
            Self::Government => "https://management.usgovcloudapi.net",
            Self::China => "https://management.chinacloudapi.cn",
        }
    }
}

/// The in-memory cloud: VMs that exist only in this process, with the latencies and failures
/// of a real cloud, deterministic for a seed. Used by tests and `kasm-scale simulate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryVmConfig {
    /// Unique name of the config.
    pub name: String,
    /// Hard cap on live VMs of this config, 1 to 10000 ([`super::MAX_INSTANCES`]).
    #[serde(deserialize_with = "super::bounds::max_instances")]
    pub max_instances: u32,
    /// Startup-script template (rendered, then kept by the in-memory VM).
    #[serde(default)]
    pub startup_script: String,
    /// (ours) Name of a built-in startup script (`windows`, `linux`) used instead of
    /// `startup_script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_script_builtin: Option<String>,
    /// (ours) Extra variables for the startup script (e.g. `fslogix_vhd_locations`), kept secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub startup_script_variables: BTreeMap<String, Secret>,
    /// Seconds from create to a running VM, 0 to 604800 (7 days). Default fixed 60.
    #[serde(default = "default_boot")]
    pub boot_latency: Distribution,
    /// Seconds from running to check-in, 0 to 604800 (7 days). Default fixed 30.
    #[serde(default = "default_checkin")]
    pub checkin_delay: Distribution,
    /// Probability that a create call fails. Default 0.
    #[serde(default, deserialize_with = "bounds::probability")]
    pub create_failure_rate: f64,
    /// Probability that a destroy call fails. Default 0.
    #[serde(default, deserialize_with = "bounds::probability")]
    pub destroy_failure_rate: f64,
    /// Probability that a VM boots but never checks in. Default 0.
    #[serde(default, deserialize_with = "bounds::probability")]
    pub never_checkin_rate: f64,
    /// API calls per second before the simulated cloud answers "rate limited", 0.001 to 100000.
    /// Default unlimited. (The controller's own pacing is `api_rate_limit_per_second`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<f64>,
    /// VMs the region can hold before it answers "insufficient capacity". Default unlimited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::opt_positive_u32"
    )]
    pub capacity: Option<u32>,
    /// (ours) Stretches of time during which every create answers "insufficient capacity", as
    /// `capacity` does when full; VMs already made keep running. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<Outage>,
    /// (ours) Calls to this provider the controller has in flight at once, 1 to 1024. Default 8.
    #[serde(
        default = "api::default_concurrency",
        skip_serializing_if = "api::is_default_concurrency",
        deserialize_with = "bounds::api_concurrency"
    )]
    pub api_concurrency: u32,
    /// (ours) At most this many calls to this provider a second, 0.001 to 100000. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limit_per_second: Option<f64>,
    /// (ours) Seconds one call to this provider may take before it fails as transient, 1 to 3600.
    /// Default 30.
    #[serde(
        default = "api::default_call_timeout",
        skip_serializing_if = "api::is_default_call_timeout",
        deserialize_with = "bounds::call_timeout"
    )]
    pub api_call_timeout: u32,
    /// (ours) Price of one running VM of this config per hour (any currency, the same for every
    /// config you compare): the simulator's costs and `/metrics`' spend rate. Default unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub price_per_hour: Option<f64>,
    /// (ours) Price of one stopped (deallocated) VM of this config per hour: its disks. Default
    /// unpriced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bounds::opt_price"
    )]
    pub stopped_price_per_hour: Option<f64>,
    /// (ours) Ordered alternatives tried when the ones before are short of capacity (see
    /// [`super::Offering`]), at most 16. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<super::MemoryAlternative>,
    /// (ours) Seconds an offering that answered "insufficient capacity" is skipped, 0 to 86400.
    /// Default 180.
    #[serde(
        default = "super::offering::default_capacity_skip",
        skip_serializing_if = "super::offering::is_default_capacity_skip",
        deserialize_with = "bounds::capacity_skip"
    )]
    pub capacity_skip_seconds: u32,
    /// (ours) Seconds from a start of a stopped VM to a running one, 0 to 604800. Default
    /// fixed 60.
    #[serde(default = "default_boot")]
    pub start_latency: Distribution,
    /// (ours) Probability that a stop call fails. Default 0.
    #[serde(default, deserialize_with = "bounds::probability")]
    pub stop_failure_rate: f64,
    /// (ours) Probability that a start call fails (transiently). Default 0.
    #[serde(default, deserialize_with = "bounds::probability")]
    pub start_failure_rate: f64,
}

/// (ours) A provider outage of the in-memory cloud: from `start` for `duration` seconds, every
/// create fails with "insufficient capacity" (the error a full region gives, which the controller
/// handles as a real cloud's capacity error). Times count from the cloud's creation, which in a
/// simulation is its start. Both 0 to 31622400 seconds (366 days); `duration` more than 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Seconds from the cloud's creation (the simulation's start) to the outage.
    pub start: f64,
    /// How long the outage lasts, in seconds.
    pub duration: f64,
}

impl Outage {
    /// Whether the outage holds `seconds` after the cloud's creation (its end excluded).
    pub fn covers(&self, seconds: f64) -> bool {
        seconds >= self.start && seconds - self.start < self.duration
    }
}

fn default_boot() -> Distribution {
    Distribution::Fixed(60.0)
}
fn default_checkin() -> Distribution {
    Distribution::Fixed(30.0)
}

/// A distribution of durations in seconds: `{ fixed = 60 }`, `{ uniform = [30, 90] }` or
/// `{ normal = { mean = 60, std_dev = 10 } }` (samples below 0 count as 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Distribution {
    /// Always this many seconds.
    Fixed(f64),
    /// Evenly between the two bounds.
    Uniform([f64; 2]),
    /// Gaussian.
    Normal {
        /// Mean in seconds.
        mean: f64,
        /// Standard deviation in seconds.
        std_dev: f64,
    },
}

impl Distribution {
    /// Why the parameters are unusable, if they are: every one must be a number of seconds
    /// from 0 to 604800 (7 days), and a uniform range's low bound at most its high bound.
    pub fn problem(&self) -> Option<String> {
        let out = |v: f64| DELAY.check(v).is_some();
        let max = format!("{MAX_DELAY_SECONDS} seconds ({})", human(MAX_DELAY_SECONDS));
        match *self {
            Self::Fixed(v) => DELAY.check(v),
            Self::Uniform([lo, hi]) if out(lo) || out(hi) => Some(format!(
                "uniform bounds must be between 0 and {max}, got [{}, {}]",
                Num(lo),
                Num(hi)
            )),
            Self::Uniform([lo, hi]) if lo > hi => Some(format!(
                "uniform bounds must satisfy 0 ≤ low ≤ high, got [{}, {}]",
                Num(lo),
                Num(hi)
            )),
            Self::Normal { mean, std_dev } if out(mean) || out(std_dev) => Some(format!(
                "mean and std_dev must be between 0 and {max}, got {} and {}",
                Num(mean),
                Num(std_dev)
            )),
            _ => None,
        }
    }
}

impl AzureVmConfig {
    /// What is wrong with this config on its own (field, reason), in field order: required
    /// fields (the subscription and tenant ids GUIDs, the resource group a name Azure accepts:
    /// they go into URL paths), the disk type, the image reference and the OS profile.
    /// `kasm-scale validate` reports them with their path; `AzureProvider::build` refuses the
    /// first.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (field, value) in [
            ("azure_subscription_id", &self.azure_subscription_id),
            ("azure_resource_group", &self.azure_resource_group),
            ("azure_tenant_id", &self.azure_tenant_id),
            ("azure_client_id", &self.azure_client_id),
            ("azure_region", &self.azure_region),
            ("azure_vm_size", &self.azure_vm_size),
            ("azure_subnet", &self.azure_subnet),
            ("azure_os_username", &self.azure_os_username),
        ] {
            if value.trim().is_empty() {
                out.push((field, "must not be empty".to_owned()));
                continue;
            }
            // These three go into URL paths: checked before anything is sent.
            let problem = match field {
                "azure_subscription_id" | "azure_tenant_id" => azure_ids::guid_problem(value),
                "azure_resource_group" => azure_ids::resource_group_problem(value),
                _ => None,
            };
            out.extend(problem.map(|m| (field, m)));
        }
        if self.azure_client_secret.is_empty() {
            out.push(("azure_client_secret", "must not be empty".to_owned()));
        }
        if !AZURE_OS_DISK_TYPES.contains(&self.azure_os_disk_type.as_str()) {
            out.push((
                "azure_os_disk_type",
                format!(
                    "`{}` is not one of {}",
                    self.azure_os_disk_type,
                    AZURE_OS_DISK_TYPES.join(", ")
                ),
            ));
        }
        let image = &self.azure_image_reference.0;
        let has = |k: &str| {
            image
                .get(k)
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty())
        };
        let marketplace = ["publisher", "offer", "sku", "version"];
        if !has("id") && !marketplace.iter().all(|k| has(k)) {
            let missing: Vec<&str> = marketplace.into_iter().filter(|k| !has(k)).collect();
            out.push((
                "azure_image_reference",
                format!(
                    "needs `id`, or `publisher`, `offer`, `sku` and `version` (missing {})",
                    missing.join(", ")
                ),
            ));
        }
        if self.azure_is_windows && self.azure_os_password.is_none() {
            out.push(("azure_os_password", "required for Windows VMs".to_owned()));
        }
        if !self.azure_is_windows
            && self.azure_os_password.is_none()
            && self.azure_ssh_public_key.is_none()
        {
            out.push((
                "azure_ssh_public_key",
                "Linux VMs need azure_ssh_public_key or azure_os_password".to_owned(),
            ));
        }
        out
    }
}
