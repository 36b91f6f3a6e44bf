//! [`AwsProvider`]: create, find, list, stop, start and terminate EC2 instances.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName};
use base64::Engine;
use kasm_scale_core::config::{AWS_USER_DATA_LIMIT, AwsVmConfig};
use kasm_scale_core::traits::{
    BackendError, Capabilities, OWNER_TAG, Owner, SERVER_TAG, StopMode, Vm, VmProvider, VmSpec,
    VmState,
};

use kasm_scale_core::Secret;
use serde_json::json;

use crate::attempts::Attempts;
use crate::errors::{IDEMPOTENT_PARAMETER_MISMATCH, classify};
use crate::launch::{Launch, check_override, merge};
use crate::password::PasswordKey;

/// An EC2 [`VmProvider`] for one AWS VM provider config.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    config: AwsVmConfig,
    /// The EC2 client, without the SDK's retries: each call is one attempt.
    client: Client,
    /// `aws_ec2_config_override`, checked.
    overrides: Option<serde_json::Value>,
    /// The key pair's private key, when `retrieve_password` is on.
    password_key: Option<Arc<PasswordKey>>,
    /// Server ids already tried (a repeat looks the server-id tag up first).
    attempts: Arc<Attempts>,
    /// Look up before every create, the first too.
    always_look_up: bool,
    /// The AMI's root device name, looked up once (when the root volume is configured).
    root_device: tokio::sync::OnceCell<Option<String>>,
}

/// Builds an [`AwsProvider`]; [`AwsProviderBuilder::build`] checks the config.
#[derive(Debug)]
pub struct AwsProviderBuilder {
    config: AwsVmConfig,
    endpoint: Option<String>,
    always_look_up: bool,
    attempt_timeout: Duration,
}

/// How long one EC2 call may take by default (RunInstances answers within seconds).
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to EC2 may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl AwsProvider {
    /// A builder for `config`.
    pub fn builder(config: AwsVmConfig) -> AwsProviderBuilder {
        let endpoint = config.aws_endpoint_url.clone();
        AwsProviderBuilder {
            config,
            endpoint,
            always_look_up: false,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }
}

impl AwsProviderBuilder {
    /// Talks to this endpoint instead of AWS (an emulator, an AWS-compatible cloud).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Looks the server-id tag up before the first RunInstances of a server too, not only before
    /// a repeat. Only needed when several processes may create the same server id on a cloud
    /// that ignores `ClientToken` (EC2 honours it); costs one DescribeInstances per create.
    pub fn always_look_up(mut self, yes: bool) -> Self {
        self.always_look_up = yes;
        self
    }

    /// How long one EC2 call may take before it counts as a transient failure (default 60 s),
    /// so that a hung endpoint never holds a create forever.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Checks the config and makes the EC2 client: static credentials from the config, or the
    /// standard AWS credential chain when it has none.
    pub async fn build(self) -> Result<AwsProvider, BackendError> {
        let c = &self.config;
        let invalid = |m: String| Err(BackendError::InvalidRequest(format!("{}: {m}", c.name)));
        if c.aws_region.trim().is_empty()
            || c.aws_ec2_ami_id.trim().is_empty()
            || c.aws_ec2_instance_type.trim().is_empty()
        {
            return invalid(
                "aws_region, aws_ec2_ami_id and aws_ec2_instance_type are required".into(),
            );
        }
        let overrides = match &c.aws_ec2_config_override {
            Some(o) if !o.0.is_empty() => {
                check_override(o)
                    .map_err(|m| BackendError::InvalidRequest(format!("{}: {m}", c.name)))?;
                Some(serde_json::Value::Object(o.0.clone()))
            }
            _ => None,
        };
        let password_key = match (&c.aws_ec2_private_key, c.retrieve_password) {
            (Some(pem), true) => Some(Arc::new(
                PasswordKey::from_pem(pem.expose())
                    .map_err(|m| BackendError::InvalidRequest(format!("{}: {m}", c.name)))?,
            )),
            (None, true) => {
                return invalid("retrieve_password needs aws_ec2_private_key".into());
            }
            _ => None,
        };
        let region = Region::new(c.aws_region.clone());
        let mut conf = match (&c.aws_access_key_id, &c.aws_secret_access_key) {
            (Some(id), Some(secret)) => aws_sdk_ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .credentials_provider(Credentials::new(
                    id.expose(),
                    secret.expose(),
                    None,
                    None,
                    "kasm-scale-config",
                )),
            (None, None) => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(region)
                    .load()
                    .await;
                aws_sdk_ec2::config::Builder::from(&shared)
            }
            _ => return invalid("aws_access_key_id and aws_secret_access_key go together".into()),
        };
        if let Some(url) = &self.endpoint {
            conf = conf.endpoint_url(url);
        }
        // One attempt per call: the controller's retry policy is the one retry layer (the
        // shared config of the credential chain would turn the SDK's own retries on).
        let conf = conf
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::disabled());
        Ok(AwsProvider {
            config: self.config,
            client: Client::from_conf(conf.build()),
            overrides,
            password_key,
            attempts: Default::default(),
            always_look_up: self.always_look_up,
            root_device: Default::default(),
        })
    }
}

impl AwsProvider {
    /// Its config.
    pub(crate) fn config(&self) -> &AwsVmConfig {
        &self.config
    }

    /// Its EC2 client (one attempt per call).
    /// The parsed `aws_ec2_config_override`, if any.
    pub(crate) fn overrides(&self) -> Option<&serde_json::Value> {
        self.overrides.as_ref()
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn to_vm(&self, instance: &Instance) -> Option<Vm> {
        let tags: BTreeMap<String, String> = instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect();
        let owner = Owner::from_tags(&tags)?;
        let state = match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Pending) => VmState::Pending,
            Some(InstanceStateName::Running) => VmState::Running,
            // Stopping or being terminated, or stopped: not serving, its server goes.
            Some(InstanceStateName::Stopping | InstanceStateName::ShuttingDown) => {
                VmState::Stopping
            }
            Some(InstanceStateName::Stopped) => VmState::Stopped,
            Some(InstanceStateName::Terminated) => VmState::Terminated,
            _ => VmState::Stopping,
        };
        let created_at = instance
            .launch_time()
            .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok());
        Some(Vm {
            vm_id: instance.instance_id()?.to_owned(),
            owner,
            state,
            private_ip: instance.private_ip_address().map(str::to_owned),
            created_at,
        })
    }

    /// Live instances matching `filters`, across all pages.
    async fn find(&self, filters: Vec<Filter>) -> Result<Vec<Vm>, BackendError> {
        let live = Filter::builder()
            .name("instance-state-name")
            .set_values(Some(
                ["pending", "running", "stopping", "stopped"]
                    .map(String::from)
                    .to_vec(),
            ))
            .build();
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters.into_iter().chain([live]).collect()))
            .into_paginator()
            .send();
        let mut vms = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            vms.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(|i| self.to_vm(i)),
            );
        }
        Ok(vms)
    }

    /// The AMI's root device name, when the root volume's size or type is configured; the AMI
    /// is described on the first create only.
    async fn root_device(&self) -> Result<Option<String>, BackendError> {
        self.root_device
            .get_or_try_init(|| async {
                let c = &self.config;
                if c.aws_ec2_ebs_volume_size_gb.is_none() && c.aws_ec2_ebs_volume_type.is_none() {
                    return Ok(None);
                }
                let images = self
                    .client
                    .describe_images()
                    .image_ids(&c.aws_ec2_ami_id)
                    .send()
                    .await
                    .map_err(classify)?;
                let device = images.images().first().and_then(|i| i.root_device_name());
                Ok(Some(device.unwrap_or("/dev/xvda").to_owned()))
            })
            .await
            .cloned()
    }

    /// The RunInstances parameters (EC2's names) from the config, the override merged in, then
    /// the owner tags, which nothing overrides.
    fn launch_request(
        &self,
        spec: &VmSpec,
        root_device: Option<String>,
    ) -> Result<serde_json::Value, BackendError> {
        let c = &self.config;
        let offered = self.offered(spec.offering)?;
        let tags = |extra: &BTreeMap<String, String>| -> Vec<serde_json::Value> {
            extra
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect()
        };
        let mut named = c.aws_ec2_custom_tags.0.clone();
        named.insert("Name".into(), spec.hostname.clone());
        let on_both = |t: Vec<serde_json::Value>| {
            json!([
                {"ResourceType": "instance", "Tags": t.clone()},
                {"ResourceType": "volume", "Tags": t},
            ])
        };
        // A VM shut down from inside is terminated, not left stopped (EC2's default), where its
        // volumes would go on costing; the override may say `stop` (or `null`: EC2's default).
        let mut request = json!({
            "ImageId": c.aws_ec2_ami_id,
            "InstanceType": c.aws_ec2_instance_type,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": on_both(tags(&named)),
        });
        let fields = request.as_object_mut().expect("an object");
        if !c.aws_ec2_security_group_ids.is_empty() {
            fields.insert(
                "SecurityGroupIds".into(),
                json!(c.aws_ec2_security_group_ids),
            );
        }
        if let Some(subnet) = &c.aws_ec2_subnet_id {
            fields.insert("SubnetId".into(), json!(subnet));
        }
        if c.aws_ec2_hibernation {
            // Hibernation needs an encrypted root volume of room for the memory: the AMI's
            // (or `aws_ec2_ebs_volume_size_gb` and the override's) to provide.
            fields.insert("HibernationOptions".into(), json!({"Configured": true}));
        }
        if let Some(key) = &c.aws_ec2_key_name {
            fields.insert("KeyName".into(), json!(key));
        }
        if let Some(p) = &c.aws_ec2_iam {
            let kind = if p.starts_with("arn:") { "Arn" } else { "Name" };
            fields.insert("IamInstanceProfile".into(), json!({ kind: p }));
        }
        if let Some(device) = root_device {
            let mut ebs = json!({"DeleteOnTermination": true});
            if let Some(size) = c.aws_ec2_ebs_volume_size_gb {
                ebs["VolumeSize"] = json!(size);
            }
            if let Some(kind) = &c.aws_ec2_ebs_volume_type {
                ebs["VolumeType"] = json!(kind);
            }
            fields.insert(
                "BlockDeviceMappings".into(),
                json!([{"DeviceName": device, "Ebs": ebs}]),
            );
        }
        if let Some(o) = &self.overrides {
            merge(&mut request, o);
        }
        // What an alternative sets wins over the override, which shapes the config's own
        // fields: offering `i` must be what the plan, events and metrics name.
        let mut chosen = serde_json::Map::new();
        if let Some(t) = offered.instance_type {
            chosen.insert("InstanceType".into(), json!(t));
        }
        if let Some(s) = offered.subnet_id {
            chosen.insert("SubnetId".into(), json!(s));
        }
        merge(&mut request, &serde_json::Value::Object(chosen));
        let owner = json!({"TagSpecifications": on_both(tags(&spec.owner.tags()))});
        merge(&mut request, &owner);
        Ok(request)
    }

    /// One RunInstances call, with the server id as its `ClientToken` (EC2 answers a repeat
    /// with the same parameters with the same instance). The token is the same for every
    /// offering: a request refused for capacity binds no token, so the next offering may use
    /// it, and a create resumed on another offering after a lost answer gets
    /// `IdempotentParameterMismatch` (the instance is then looked up) instead of a second
    /// instance. A repeat after a lost answer must look
    /// the server-id tag up first (emulators ignore `ClientToken`), which [`VmProvider::create`]
    /// does.
    async fn run_instance(&self, spec: &VmSpec, script: &str) -> Result<Vm, BackendError> {
        let request = self.launch_request(spec, self.root_device().await?)?;
        let name = &self.config.name;
        let launch = Launch::read(request)
            .map(|l| l.apply(self.client.run_instances()))
            .map_err(|m| BackendError::InvalidRequest(format!("{name}: {m}")))?;
        let answer = launch
            .min_count(1)
            .max_count(1)
            .client_token(spec.owner.server_id.to_string())
            .user_data(base64::engine::general_purpose::STANDARD.encode(script))
            .send()
            .await
            .map_err(classify)?;
        answer
            .instances()
            .first()
            .and_then(|i| self.to_vm(i))
            .ok_or_else(|| {
                BackendError::Transient("RunInstances answered without the instance".into())
            })
    }

    /// The live VM carrying this server-id tag, if any.
    async fn find_server(&self, server: &str) -> Result<Option<Vm>, BackendError> {
        let by_server = Filter::builder()
            .name(format!("tag:{SERVER_TAG}"))
            .values(server)
            .build();
        Ok(self.find(vec![by_server]).await?.into_iter().next())
    }
}

#[async_trait]
impl VmProvider for AwsProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_startup_script_bytes: Some(AWS_USER_DATA_LIMIT),
            retrieve_password: self.password_key.is_some(),
            operation_timeout: None,
            stop_start: true,
            hibernate: self.config.aws_ec2_hibernation,
            // EC2 does not change the type of an instance launched for hibernation.
            resize_stopped: !self.config.aws_ec2_hibernation,
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        // The controller hands over the delivered script already; wrapping is idempotent.
        let script = self.config.user_data(spec.startup_script.expose());
        let script = script.as_ref();
        if script.len() > AWS_USER_DATA_LIMIT {
            return Err(BackendError::InvalidRequest(format!(
                "the startup script is {} bytes, over the {AWS_USER_DATA_LIMIT}-byte EC2 user-data limit",
                script.len()
            )));
        }
        // One RunInstances attempt. A repeated create of this server (the controller's retry
        // after an error or a lost answer) first looks its server-id tag up.
        let server = spec.owner.server_id.to_string();
        let repeat = !self.attempts.first(spec.owner.server_id);
        if (self.always_look_up || repeat)
            && let Some(existing) = self.find_server(&server).await?
        {
            return Ok(existing);
        }
        match self.run_instance(spec, script).await {
            // EC2 launched an instance for this server's client token before, from a request
            // with other parameters (a create resumed by another process whose script changed:
            // a rotated check-in key, another version): that instance is the server's.
            Err(BackendError::Conflict(m)) if m.starts_with(IDEMPOTENT_PARAMETER_MISMATCH) => {
                match self.find_server(&server).await? {
                    Some(existing) => {
                        tracing::warn!(
                            provider = %self.config.name,
                            server,
                            vm = %existing.vm_id,
                            "RunInstances refused the client token's reuse with other parameters: the earlier attempt's instance is the server's"
                        );
                        Ok(existing)
                    }
                    // Not listed yet (EC2 is eventually consistent): the controller's retry
                    // looks it up again.
                    None => Err(BackendError::Transient(format!(
                        "{m} (the earlier attempt's instance is not listed yet)"
                    ))),
                }
            }
            other => other,
        }
    }

    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        self.stop_vm(vm_id, mode).await
    }

    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        self.start_vm(vm_id).await
    }

    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        self.resize_vm(vm_id, offering).await
    }

    async fn retrieve_password(&self, vm_id: &str) -> Result<Option<Secret>, BackendError> {
        let Some(key) = &self.password_key else {
            return Err(BackendError::InvalidRequest(format!(
                "{}: retrieve_password is off (or aws_ec2_private_key is missing)",
                self.config.name
            )));
        };
        let answer = self
            .client
            .get_password_data()
            .instance_id(vm_id)
            .send()
            .await
            .map_err(classify)?;
        match answer.password_data().map(str::trim) {
            None | Some("") => Ok(None),
            Some(data) => key.decrypt(data).map(Some).map_err(|m| {
                BackendError::InvalidRequest(format!("{}: {vm_id}: {m}", self.config.name))
            }),
        }
    }

    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        match self
            .client
            .terminate_instances()
            .instance_ids(vm_id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) | Err(BackendError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        match self
            .client
            .describe_instances()
            .instance_ids(vm_id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(answer) => Ok(answer
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| self.to_vm(i))
                .find(|v| v.state != VmState::Terminated)),
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.find(vec![
            Filter::builder()
                .name(format!("tag:{OWNER_TAG}"))
                .values(owner_id)
                .build(),
        ])
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with static keys, or for the standard credential chain.
    fn config(keys: bool) -> AwsVmConfig {
        let keys = if keys {
            "aws_access_key_id = \"AKIATESTTESTTESTTEST\"\naws_secret_access_key = \"s\"\n"
        } else {
            ""
        };
        toml::from_str(&format!(
            "name = \"aws\"\naws_region = \"eu-west-1\"\naws_ec2_ami_id = \"ami-1\"\naws_ec2_instance_type = \"t3.micro\"\nmax_instances = 1\n{keys}"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn the_sdk_makes_one_attempt_per_call_with_either_kind_of_credentials() {
        let mut attempts = Vec::new();
        for keys in [false, true] {
            let p = AwsProvider::builder(config(keys))
                .endpoint_url("http://127.0.0.1:9")
                .build()
                .await
                .unwrap();
            let retry = p.client.config().retry_config();
            attempts.push((keys, retry.map(|r| r.max_attempts())));
        }
        // Set explicitly: the credential chain's shared config would turn 3 attempts on.
        assert_eq!(attempts, [(false, Some(1)), (true, Some(1))]);
    }
}
