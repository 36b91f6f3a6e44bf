//! The RunInstances request: kasm-scale's fields, deep-merged with `aws_ec2_config_override`.
//!
//! The request is built as JSON in the shape of EC2's RunInstances parameters (the names boto3
//! and the AWS CLI use, as Kasm's override does), the override is merged into it, and the result
//! is read into [`Launch`] (the structures are in `request.rs`), which accepts every member of
//! EC2's `RunInstancesRequest` the SDK can send and refuses the rest with its path.
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
use aws_sdk_ec2::types::InstanceType;
use kasm_scale_core::config::{JsonObject, merge_json};
use serde::Deserialize;

use crate::request::{
    CapacityReservation, Choice, CpuOptions, CreditSpecification, DeviceMapping, ElasticGpu,
    Enclave, Hibernation, InferenceAccelerator, Ipv6Address, LaunchTemplate, License, Maintenance,
    MarketOptions, MetadataOptions, Monitoring, NetworkInterface, NetworkPerformance, Newer,
    Operator, PlacementOptions, PrivateDns, Profile, Sdk, TagSpec, paste_set, setter,
};
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
    Launch::read(Value::Object(o.0.clone())).map(|_| ())
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

/// The RunInstances keys kasm-scale accepts: every member of EC2's `RunInstancesRequest` but
/// the ones kasm-scale sets itself ([`RESERVED`]), in EC2's names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct Launch {
    block_device_mappings: Option<Vec<DeviceMapping>>,
    image_id: Option<String>,
    instance_type: Option<String>,
    ipv6_address_count: Option<i32>,
    ipv6_addresses: Option<Vec<Ipv6Address>>,
    kernel_id: Option<String>,
    key_name: Option<String>,
    monitoring: Option<Monitoring>,
    placement: Option<PlacementOptions>,
    ramdisk_id: Option<String>,
    security_group_ids: Option<Vec<String>>,
    security_groups: Option<Vec<String>>,
    subnet_id: Option<String>,
    elastic_gpu_specification: Option<Vec<ElasticGpu>>,
    elastic_inference_accelerators: Option<Vec<InferenceAccelerator>>,
    tag_specifications: Option<Vec<TagSpec>>,
    launch_template: Option<LaunchTemplate>,
    instance_market_options: Option<MarketOptions>,
    credit_specification: Option<CreditSpecification>,
    cpu_options: Option<CpuOptions>,
    capacity_reservation_specification: Option<CapacityReservation>,
    hibernation_options: Option<Hibernation>,
    license_specifications: Option<Vec<License>>,
    metadata_options: Option<MetadataOptions>,
    enclave_options: Option<Enclave>,
    private_dns_name_options: Option<PrivateDns>,
    maintenance_options: Option<Maintenance>,
    disable_api_stop: Option<bool>,
    #[serde(rename = "EnablePrimaryIpv6")]
    enable_primary_ipv6: Option<bool>,
    network_performance_options: Option<NetworkPerformance>,
    operator: Option<Operator>,
    disable_api_termination: Option<bool>,
    instance_initiated_shutdown_behavior: Option<Choice<aws_sdk_ec2::types::ShutdownBehavior>>,
    private_ip_address: Option<String>,
    additional_info: Option<String>,
    network_interfaces: Option<Vec<NetworkInterface>>,
    iam_instance_profile: Option<Profile>,
    ebs_optimized: Option<bool>,
    /// Added to EC2 after the SDK of this build: refused.
    #[allow(dead_code, reason = "always refused while reading")]
    secondary_interfaces: Option<Newer>,
}

impl Launch {
    /// Reads a merged request; unknown keys, wrong types and values outside EC2's lists are
    /// errors with their path.
    pub(crate) fn read(value: Value) -> Result<Launch, String> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            format!("aws_ec2_config_override.{path}: {}", e.into_inner())
                .replace("override.: ", "override: ")
        })
    }

    /// Puts the request on `b`.
    pub(crate) fn apply(self, b: RunInstancesFluentBuilder) -> RunInstancesFluentBuilder {
        let b = b.set_instance_type(self.instance_type.as_deref().map(InstanceType::from));
        paste_set!(
            b,
            self,
            block_device_mappings,
            image_id,
            ipv6_address_count,
            ipv6_addresses,
            kernel_id,
            key_name,
            monitoring,
            placement,
            ramdisk_id,
            security_group_ids,
            security_groups,
            subnet_id,
            elastic_gpu_specification,
            elastic_inference_accelerators,
            tag_specifications,
            launch_template,
            instance_market_options,
            credit_specification,
            cpu_options,
            capacity_reservation_specification,
            hibernation_options,
            license_specifications,
            metadata_options,
            enclave_options,
            private_dns_name_options,
            maintenance_options,
            disable_api_stop,
            enable_primary_ipv6,
            network_performance_options,
            operator,
            disable_api_termination,
            instance_initiated_shutdown_behavior,
            private_ip_address,
            additional_info,
            network_interfaces,
            iam_instance_profile,
            ebs_optimized
        )
    }
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
                "aws_ec2_config_override.Bogus: unknown field `Bogus`, expected one of `BlockDeviceMappings`",
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
