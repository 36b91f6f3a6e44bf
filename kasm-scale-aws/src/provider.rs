//! [`AwsProvider`]: create, find, list and terminate EC2 instances.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, IamInstanceProfileSpecification, Instance,
    InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};
use base64::Engine;
use kasm_scale_core::config::{AWS_USER_DATA_LIMIT, AwsVmConfig};
use kasm_scale_core::traits::{
    BackendError, Capabilities, OWNER_TAG, Owner, SERVER_TAG, Vm, VmProvider, VmSpec, VmState,
};

use crate::errors::classify;

/// An EC2 [`VmProvider`] for one AWS VM provider config.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    config: AwsVmConfig,
    client: Client,
    /// The root volume mapping, looked up once (it needs the AMI's root device name).
    root_volume: tokio::sync::OnceCell<Option<BlockDeviceMapping>>,
}

/// Builds an [`AwsProvider`]; [`AwsProviderBuilder::build`] checks the config.
#[derive(Debug)]
pub struct AwsProviderBuilder {
    config: AwsVmConfig,
    endpoint: Option<String>,
}

impl AwsProvider {
    /// A builder for `config`.
    pub fn builder(config: AwsVmConfig) -> AwsProviderBuilder {
        let endpoint = config.aws_endpoint_url.clone();
        AwsProviderBuilder { config, endpoint }
    }
}

impl AwsProviderBuilder {
    /// Talks to this endpoint instead of AWS (an emulator, an AWS-compatible cloud).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
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
        if c.aws_ec2_config_override
            .as_ref()
            .is_some_and(|o| !o.0.is_empty())
        {
            return invalid(
                "aws_ec2_config_override is not supported by this version of kasm-scale-aws".into(),
            );
        }
        let region = Region::new(c.aws_region.clone());
        let mut conf = match (&c.aws_access_key_id, &c.aws_secret_access_key) {
            (Some(id), Some(secret)) => aws_sdk_ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .credentials_provider(Credentials::new(
                    id,
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
        Ok(AwsProvider {
            config: self.config,
            client: Client::from_conf(conf.build()),
            root_volume: Default::default(),
        })
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

impl AwsProvider {
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

    /// The block device mapping of the root volume, when its size or type is configured; the
    /// AMI is described on the first create only.
    async fn root_volume(&self) -> Result<Option<BlockDeviceMapping>, BackendError> {
        self.root_volume
            .get_or_try_init(|| self.describe_root_volume())
            .await
            .cloned()
    }

    async fn describe_root_volume(&self) -> Result<Option<BlockDeviceMapping>, BackendError> {
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
        let device = images
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .unwrap_or("/dev/xvda")
            .to_owned();
        let ebs = EbsBlockDevice::builder()
            .set_volume_size(c.aws_ec2_ebs_volume_size_gb.map(|g| g as i32))
            .set_volume_type(c.aws_ec2_ebs_volume_type.as_deref().map(VolumeType::from))
            .delete_on_termination(true)
            .build();
        Ok(Some(
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(ebs)
                .build(),
        ))
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
            retrieve_password: false,
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let server = spec.owner.server_id.to_string();
        let by_server = Filter::builder()
            .name(format!("tag:{SERVER_TAG}"))
            .values(&server)
            .build();
        if let Some(existing) = self.find(vec![by_server]).await?.into_iter().next() {
            return Ok(existing);
        }
        let script = spec.startup_script.expose();
        if script.len() > AWS_USER_DATA_LIMIT {
            return Err(BackendError::InvalidRequest(format!(
                "the startup script is {} bytes, over the {AWS_USER_DATA_LIMIT}-byte EC2 user-data limit",
                script.len()
            )));
        }
        let c = &self.config;
        let mut tags: Vec<Tag> = spec.owner.tags().iter().map(|(k, v)| tag(k, v)).collect();
        tags.extend(c.aws_ec2_custom_tags.0.iter().map(|(k, v)| tag(k, v)));
        tags.push(tag("Name", &spec.hostname));
        let tagged = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let profile = c.aws_ec2_iam.as_deref().map(|p| {
            let b = IamInstanceProfileSpecification::builder();
            if p.starts_with("arn:") {
                b.arn(p).build()
            } else {
                b.name(p).build()
            }
        });
        let request = self
            .client
            .run_instances()
            .image_id(&c.aws_ec2_ami_id)
            .instance_type(InstanceType::from(c.aws_ec2_instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&server)
            .user_data(base64::engine::general_purpose::STANDARD.encode(script))
            .tag_specifications(tagged(ResourceType::Instance))
            .tag_specifications(tagged(ResourceType::Volume))
            .set_security_group_ids(
                (!c.aws_ec2_security_group_ids.is_empty())
                    .then(|| c.aws_ec2_security_group_ids.clone()),
            )
            .set_subnet_id(c.aws_ec2_subnet_id.clone())
            .set_key_name(c.aws_ec2_key_name.clone())
            .set_iam_instance_profile(profile)
            .set_block_device_mappings(self.root_volume().await?.map(|m| vec![m]));
        let answer = request.send().await.map_err(classify)?;
        answer
            .instances()
            .first()
            .and_then(|i| self.to_vm(i))
            .ok_or_else(|| {
                BackendError::Transient("RunInstances answered without the instance".into())
            })
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
