//! The RunInstances request: kasm-scale's fields, deep-merged with `aws_ec2_config_override`.
//!
//! The request is built as JSON in the shape of EC2's RunInstances parameters (the names boto3
//! and the AWS CLI use, as Kasm's override does), the override is merged into it, and the result
//! is read into [`Launch`], which knows every key it accepts and refuses the rest with its path.
//!
//! Merge rules (RFC 7396 merge patch, plus keyed lists):
//! - objects merge key by key, recursively; a `null` in the override removes the key;
//! - lists of objects with an identity merge element by element on that identity:
//!   `BlockDeviceMappings` on `DeviceName`, `TagSpecifications` on `ResourceType`, `Tags` on
//!   `Key`, `NetworkInterfaces` on `DeviceIndex`; elements with a new identity are appended;
//! - every other list, and every scalar, is replaced by the override's.
//!
//! `UserData`, `ClientToken`, `MinCount`, `MaxCount` and `DryRun` are kasm-scale's and cannot be
//! overridden; neither can the `kasm-scale:*` owner tags.

use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, CpuOptionsRequest, CreditSpecificationRequest, EbsBlockDevice,
    EnclaveOptionsRequest, HibernationOptionsRequest, HttpTokensState,
    IamInstanceProfileSpecification, InstanceInterruptionBehavior, InstanceMarketOptionsRequest,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceMetadataProtocolState,
    InstanceMetadataTagsState, InstanceNetworkInterfaceSpecification, InstanceType,
    LaunchTemplateSpecification, MarketType, Placement, ResourceType,
    RunInstancesMonitoringEnabled, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification, Tenancy, VolumeType,
};
use kasm_scale_core::config::{JsonObject, merge_json};
use serde::Deserialize;
use serde_json::Value;

/// Top-level keys kasm-scale sets itself.
const RESERVED: [&str; 5] = ["UserData", "ClientToken", "MinCount", "MaxCount", "DryRun"];

/// Prefix of the owner tags, which the override may not touch.
const OWNER_TAG_PREFIX: &str = "kasm-scale:";

/// Checks an override on its own: the keys, their types and the enumerated values. The error
/// names the path (`aws_ec2_config_override.MetadataOptions.HttpTokens`) and the reason.
pub(crate) fn check_override(o: &JsonObject) -> Result<(), String> {
    for key in RESERVED {
        if o.0.contains_key(key) {
            return Err(format!(
                "aws_ec2_config_override.{key}: set by kasm-scale, cannot be overridden"
            ));
        }
    }
    if let Some(Value::Array(specs)) = o.0.get("TagSpecifications") {
        for (i, spec) in specs.iter().enumerate() {
            let tags = spec.get("Tags").and_then(Value::as_array);
            for (j, tag) in tags.into_iter().flatten().enumerate() {
                let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default();
                if key.starts_with(OWNER_TAG_PREFIX) {
                    return Err(format!(
                        "aws_ec2_config_override.TagSpecifications[{i}].Tags[{j}].Key: `{key}` is an owner tag of kasm-scale, cannot be overridden"
                    ));
                }
            }
        }
    }
    let launch = Launch::read(Value::Object(o.0.clone()))?;
    launch.check_enums()
}

/// Merges `patch` into `base` by the rules of the module documentation.
pub(crate) fn merge(base: &mut Value, patch: &Value) {
    merge_json(base, patch, identity);
}

/// The identity key of the elements of a keyed list.
pub(crate) fn identity(field: &str) -> Option<&'static str> {
    match field {
        "BlockDeviceMappings" => Some("DeviceName"),
        "TagSpecifications" => Some("ResourceType"),
        "Tags" => Some("Key"),
        "NetworkInterfaces" => Some("DeviceIndex"),
        _ => None,
    }
}

/// The RunInstances keys kasm-scale accepts (EC2's parameter names).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct Launch {
    image_id: Option<String>,
    instance_type: Option<String>,
    key_name: Option<String>,
    subnet_id: Option<String>,
    private_ip_address: Option<String>,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    security_group_ids: Option<Vec<String>>,
    security_groups: Option<Vec<String>>,
    iam_instance_profile: Option<Profile>,
    block_device_mappings: Option<Vec<DeviceMapping>>,
    tag_specifications: Option<Vec<TagSpec>>,
    instance_market_options: Option<MarketOptions>,
    metadata_options: Option<MetadataOptions>,
    monitoring: Option<Enabled>,
    placement: Option<PlacementOptions>,
    ebs_optimized: Option<bool>,
    disable_api_termination: Option<bool>,
    disable_api_stop: Option<bool>,
    instance_initiated_shutdown_behavior: Option<String>,
    network_interfaces: Option<Vec<NetworkInterface>>,
    credit_specification: Option<CreditSpecification>,
    cpu_options: Option<CpuOptions>,
    hibernation_options: Option<Configured>,
    launch_template: Option<LaunchTemplate>,
    enclave_options: Option<Enabled>,
    ipv6_address_count: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Profile {
    arn: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DeviceMapping {
    device_name: Option<String>,
    virtual_name: Option<String>,
    no_device: Option<String>,
    ebs: Option<Ebs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Ebs {
    delete_on_termination: Option<bool>,
    encrypted: Option<bool>,
    iops: Option<i32>,
    kms_key_id: Option<String>,
    snapshot_id: Option<String>,
    throughput: Option<i32>,
    volume_size: Option<i32>,
    volume_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct TagSpec {
    resource_type: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MarketOptions {
    market_type: Option<String>,
    spot_options: Option<SpotOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct SpotOptions {
    max_price: Option<String>,
    spot_instance_type: Option<String>,
    block_duration_minutes: Option<i32>,
    instance_interruption_behavior: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MetadataOptions {
    http_tokens: Option<String>,
    http_put_response_hop_limit: Option<i32>,
    http_endpoint: Option<String>,
    #[serde(rename = "HttpProtocolIpv6")]
    http_protocol_ipv6: Option<String>,
    instance_metadata_tags: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Enabled {
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Configured {
    configured: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PlacementOptions {
    availability_zone: Option<String>,
    group_name: Option<String>,
    tenancy: Option<String>,
    host_id: Option<String>,
    affinity: Option<String>,
    partition_number: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct NetworkInterface {
    device_index: Option<i32>,
    subnet_id: Option<String>,
    groups: Option<Vec<String>>,
    associate_public_ip_address: Option<bool>,
    delete_on_termination: Option<bool>,
    description: Option<String>,
    network_interface_id: Option<String>,
    private_ip_address: Option<String>,
    ipv6_address_count: Option<i32>,
    secondary_private_ip_address_count: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CreditSpecification {
    cpu_credits: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CpuOptions {
    core_count: Option<i32>,
    threads_per_core: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LaunchTemplate {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    version: Option<String>,
}

/// One of EC2's enumerated values, or an error naming the path and the choices.
fn pick<T: for<'a> From<&'a str>>(
    path: &str,
    value: Option<&String>,
    values: &[&str],
) -> Result<Option<T>, String> {
    match value {
        None => Ok(None),
        Some(v) if values.contains(&v.as_str()) => Ok(Some(T::from(v.as_str()))),
        Some(v) => Err(format!(
            "aws_ec2_config_override.{path}: `{v}` is not one of {}",
            values.join(", ")
        )),
    }
}

impl Launch {
    /// Reads a merged request; unknown keys and wrong types are errors with their path.
    pub(crate) fn read(value: Value) -> Result<Launch, String> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            format!("aws_ec2_config_override.{path}: {}", e.into_inner())
                .replace("override.: ", "override: ")
        })
    }

    fn check_enums(&self) -> Result<(), String> {
        self.enums().map(|_| ())
    }

    /// The enumerated values, checked.
    fn enums(&self) -> Result<Enums, String> {
        let metadata = self.metadata_options.as_ref();
        let market = self.instance_market_options.as_ref();
        let spot = market.and_then(|m| m.spot_options.as_ref());
        let mut volume_types = Vec::new();
        for (i, m) in self.block_device_mappings.iter().flatten().enumerate() {
            let path = format!("BlockDeviceMappings[{i}].Ebs.VolumeType");
            let t = m.ebs.as_ref().and_then(|e| e.volume_type.as_ref());
            volume_types.push(pick::<VolumeType>(&path, t, VolumeType::values())?);
        }
        let mut resource_types = Vec::new();
        for (i, s) in self.tag_specifications.iter().flatten().enumerate() {
            let path = format!("TagSpecifications[{i}].ResourceType");
            let t = Some(&s.resource_type);
            resource_types.push(pick::<ResourceType>(&path, t, ResourceType::values())?);
        }
        Ok(Enums {
            http_tokens: pick(
                "MetadataOptions.HttpTokens",
                metadata.and_then(|m| m.http_tokens.as_ref()),
                HttpTokensState::values(),
            )?,
            http_endpoint: pick(
                "MetadataOptions.HttpEndpoint",
                metadata.and_then(|m| m.http_endpoint.as_ref()),
                InstanceMetadataEndpointState::values(),
            )?,
            http_protocol_ipv6: pick(
                "MetadataOptions.HttpProtocolIpv6",
                metadata.and_then(|m| m.http_protocol_ipv6.as_ref()),
                InstanceMetadataProtocolState::values(),
            )?,
            metadata_tags: pick(
                "MetadataOptions.InstanceMetadataTags",
                metadata.and_then(|m| m.instance_metadata_tags.as_ref()),
                InstanceMetadataTagsState::values(),
            )?,
            market_type: pick(
                "InstanceMarketOptions.MarketType",
                market.and_then(|m| m.market_type.as_ref()),
                MarketType::values(),
            )?,
            spot_type: pick(
                "InstanceMarketOptions.SpotOptions.SpotInstanceType",
                spot.and_then(|s| s.spot_instance_type.as_ref()),
                SpotInstanceType::values(),
            )?,
            interruption: pick(
                "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                spot.and_then(|s| s.instance_interruption_behavior.as_ref()),
                InstanceInterruptionBehavior::values(),
            )?,
            tenancy: pick(
                "Placement.Tenancy",
                self.placement.as_ref().and_then(|p| p.tenancy.as_ref()),
                Tenancy::values(),
            )?,
            shutdown: pick(
                "InstanceInitiatedShutdownBehavior",
                self.instance_initiated_shutdown_behavior.as_ref(),
                ShutdownBehavior::values(),
            )?,
            volume_types,
            resource_types,
        })
    }

    /// Puts the request on `b`.
    pub(crate) fn apply(
        self,
        b: RunInstancesFluentBuilder,
    ) -> Result<RunInstancesFluentBuilder, String> {
        let e = self.enums()?;
        let profile = self.iam_instance_profile.map(|p| {
            IamInstanceProfileSpecification::builder()
                .set_arn(p.arn)
                .set_name(p.name)
                .build()
        });
        let mappings = self.block_device_mappings.map(|ms| {
            ms.into_iter()
                .zip(e.volume_types)
                .map(|(m, volume_type)| {
                    let ebs = m.ebs.map(|x| {
                        EbsBlockDevice::builder()
                            .set_delete_on_termination(x.delete_on_termination)
                            .set_encrypted(x.encrypted)
                            .set_iops(x.iops)
                            .set_kms_key_id(x.kms_key_id)
                            .set_snapshot_id(x.snapshot_id)
                            .set_throughput(x.throughput)
                            .set_volume_size(x.volume_size)
                            .set_volume_type(volume_type)
                            .build()
                    });
                    BlockDeviceMapping::builder()
                        .set_device_name(m.device_name)
                        .set_virtual_name(m.virtual_name)
                        .set_no_device(m.no_device)
                        .set_ebs(ebs)
                        .build()
                })
                .collect()
        });
        let tag_specs = self.tag_specifications.map(|ss| {
            ss.into_iter()
                .zip(e.resource_types)
                .map(|(s, kind)| {
                    let tags = s
                        .tags
                        .into_iter()
                        .map(|t| Tag::builder().key(t.key).value(t.value).build());
                    TagSpecification::builder()
                        .set_resource_type(kind)
                        .set_tags(Some(tags.collect()))
                        .build()
                })
                .collect()
        });
        let market = self.instance_market_options.map(|m| {
            let spot = m.spot_options.map(|s| {
                SpotMarketOptions::builder()
                    .set_max_price(s.max_price)
                    .set_spot_instance_type(e.spot_type)
                    .set_block_duration_minutes(s.block_duration_minutes)
                    .set_instance_interruption_behavior(e.interruption)
                    .build()
            });
            InstanceMarketOptionsRequest::builder()
                .set_market_type(e.market_type)
                .set_spot_options(spot)
                .build()
        });
        let metadata = self.metadata_options.map(|m| {
            InstanceMetadataOptionsRequest::builder()
                .set_http_tokens(e.http_tokens)
                .set_http_put_response_hop_limit(m.http_put_response_hop_limit)
                .set_http_endpoint(e.http_endpoint)
                .set_http_protocol_ipv6(e.http_protocol_ipv6)
                .set_instance_metadata_tags(e.metadata_tags)
                .build()
        });
        let placement = self.placement.map(|p| {
            Placement::builder()
                .set_availability_zone(p.availability_zone)
                .set_group_name(p.group_name)
                .set_tenancy(e.tenancy)
                .set_host_id(p.host_id)
                .set_affinity(p.affinity)
                .set_partition_number(p.partition_number)
                .build()
        });
        let interfaces = self.network_interfaces.map(|ns| {
            ns.into_iter()
                .map(|n| {
                    InstanceNetworkInterfaceSpecification::builder()
                        .set_device_index(n.device_index)
                        .set_subnet_id(n.subnet_id)
                        .set_groups(n.groups)
                        .set_associate_public_ip_address(n.associate_public_ip_address)
                        .set_delete_on_termination(n.delete_on_termination)
                        .set_description(n.description)
                        .set_network_interface_id(n.network_interface_id)
                        .set_private_ip_address(n.private_ip_address)
                        .set_ipv6_address_count(n.ipv6_address_count)
                        .set_secondary_private_ip_address_count(
                            n.secondary_private_ip_address_count,
                        )
                        .build()
                })
                .collect()
        });
        let template = self.launch_template.map(|t| {
            LaunchTemplateSpecification::builder()
                .set_launch_template_id(t.launch_template_id)
                .set_launch_template_name(t.launch_template_name)
                .set_version(t.version)
                .build()
        });
        Ok(b.set_image_id(self.image_id)
            .set_instance_type(self.instance_type.as_deref().map(InstanceType::from))
            .set_key_name(self.key_name)
            .set_subnet_id(self.subnet_id)
            .set_private_ip_address(self.private_ip_address)
            .set_kernel_id(self.kernel_id)
            .set_ramdisk_id(self.ramdisk_id)
            .set_security_group_ids(self.security_group_ids)
            .set_security_groups(self.security_groups)
            .set_iam_instance_profile(profile)
            .set_block_device_mappings(mappings)
            .set_tag_specifications(tag_specs)
            .set_instance_market_options(market)
            .set_metadata_options(metadata)
            .set_monitoring(self.monitoring.map(|m| {
                RunInstancesMonitoringEnabled::builder()
                    .enabled(m.enabled)
                    .build()
            }))
            .set_placement(placement)
            .set_ebs_optimized(self.ebs_optimized)
            .set_disable_api_termination(self.disable_api_termination)
            .set_disable_api_stop(self.disable_api_stop)
            .set_instance_initiated_shutdown_behavior(e.shutdown)
            .set_network_interfaces(interfaces)
            .set_credit_specification(self.credit_specification.map(|c| {
                CreditSpecificationRequest::builder()
                    .cpu_credits(c.cpu_credits)
                    .build()
            }))
            .set_cpu_options(self.cpu_options.map(|c| {
                CpuOptionsRequest::builder()
                    .set_core_count(c.core_count)
                    .set_threads_per_core(c.threads_per_core)
                    .build()
            }))
            .set_hibernation_options(self.hibernation_options.map(|h| {
                HibernationOptionsRequest::builder()
                    .configured(h.configured)
                    .build()
            }))
            .set_launch_template(template)
            .set_enclave_options(
                self.enclave_options
                    .map(|x| EnclaveOptionsRequest::builder().enabled(x.enabled).build()),
            )
            .set_ipv6_address_count(self.ipv6_address_count))
    }
}

/// The enumerated values of a [`Launch`], checked.
struct Enums {
    http_tokens: Option<HttpTokensState>,
    http_endpoint: Option<InstanceMetadataEndpointState>,
    http_protocol_ipv6: Option<InstanceMetadataProtocolState>,
    metadata_tags: Option<InstanceMetadataTagsState>,
    market_type: Option<MarketType>,
    spot_type: Option<SpotInstanceType>,
    interruption: Option<InstanceInterruptionBehavior>,
    tenancy: Option<Tenancy>,
    shutdown: Option<ShutdownBehavior>,
    volume_types: Vec<Option<VolumeType>>,
    resource_types: Vec<Option<ResourceType>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(v: Value) -> JsonObject {
        JsonObject(v.as_object().unwrap().clone())
    }

    #[test]
    fn merges_objects_keyed_lists_and_removes_nulls() {
        let mut base = json!({
            "ImageId": "ami-1",
            "SecurityGroupIds": ["sg-1"],
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 40, "VolumeType": "gp3"}}],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "a"}]}],
            "KeyName": "k",
        });
        let patch = json!({
            "SecurityGroupIds": ["sg-2"],
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": true, "VolumeSize": 80}},
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 10}}
            ],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "cost", "Value": "x"}, {"Key": "Name", "Value": "b"}]},
                {"ResourceType": "network-interface", "Tags": [{"Key": "cost", "Value": "x"}]}
            ],
            "MetadataOptions": {"HttpTokens": "required"},
            "KeyName": null,
        });
        merge(&mut base, &patch);
        assert_eq!(
            base,
            json!({
                "ImageId": "ami-1",
                "SecurityGroupIds": ["sg-2"],
                "BlockDeviceMappings": [
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 80, "VolumeType": "gp3", "Encrypted": true}},
                    {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 10}}
                ],
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "b"}, {"Key": "cost", "Value": "x"}]},
                    {"ResourceType": "network-interface", "Tags": [{"Key": "cost", "Value": "x"}]}
                ],
                "MetadataOptions": {"HttpTokens": "required"},
            })
        );
    }

    #[test]
    fn refuses_unknown_keys_wrong_types_bad_values_and_reserved_keys_by_path() {
        let cases = [
            (
                json!({"MetadataOptions": {"HttpTokenz": "required"}}),
                "aws_ec2_config_override.MetadataOptions.HttpTokenz: unknown field `HttpTokenz`, expected one of `HttpTokens`",
            ),
            (
                json!({"Bogus": 1}),
                "aws_ec2_config_override.Bogus: unknown field `Bogus`, expected one of `ImageId`",
            ),
            (
                json!({"EbsOptimized": "yes"}),
                "aws_ec2_config_override.EbsOptimized: invalid type: string \"yes\", expected a boolean",
            ),
            (
                json!({"MetadataOptions": {"HttpTokens": "requird"}}),
                "aws_ec2_config_override.MetadataOptions.HttpTokens: `requird` is not one of optional, required",
            ),
            (
                json!({"BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeType": "gp9"}}]}),
                "aws_ec2_config_override.BlockDeviceMappings[0].Ebs.VolumeType: `gp9` is not one of",
            ),
            (
                json!({"UserData": "x"}),
                "aws_ec2_config_override.UserData: set by kasm-scale, cannot be overridden",
            ),
            (
                json!({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "kasm-scale:owner", "Value": "x"}]}]}),
                "aws_ec2_config_override.TagSpecifications[0].Tags[0].Key: `kasm-scale:owner` is an owner tag",
            ),
        ];
        for (value, message) in cases {
            let err = check_override(&o(value.clone())).unwrap_err();
            assert!(err.starts_with(message), "{value}: {err}");
        }
        check_override(&o(json!({
            "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05", "SpotInstanceType": "one-time"}},
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
            "Placement": {"AvailabilityZone": "us-east-1a", "Tenancy": "default"},
            "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": false}],
            "Monitoring": {"Enabled": true},
            "CreditSpecification": {"CpuCredits": "unlimited"},
            "InstanceInitiatedShutdownBehavior": "terminate",
        })))
        .unwrap();
    }
}
