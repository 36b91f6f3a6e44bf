//! The RunInstances parameters as a typed model (EC2's names, as boto3 and the AWS CLI spell
//! them), each structure read with `deny_unknown_fields` and turned into the SDK's type.
//!
//! The model follows EC2's published input shape `RunInstancesRequest` member by member; the
//! test `override_shape` walks that shape (botocore's EC2 service model) and checks that every
//! member path is accepted here and reaches the wire. Members EC2 added after the AWS SDK of
//! this build ([`Newer`]) are refused by name, since the SDK cannot send them.

use std::marker::PhantomData;

use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types as sdk;
use serde::de::{self, Deserializer};
use serde::{Deserialize, de::IgnoredAny};

/// An enumerated EC2 value: a string that must be one of the SDK's values.
#[derive(Debug)]
pub(crate) struct Choice<T>(pub(crate) T);

/// The SDK enumerations the model uses, with their values.
pub(crate) trait Enumerated: for<'a> From<&'a str> {
    /// The values EC2 accepts.
    fn choices() -> &'static [&'static str];
}

macro_rules! enumerated {
    ($($t:ident),* $(,)?) => {
        $(impl Enumerated for sdk::$t {
            fn choices() -> &'static [&'static str] {
                sdk::$t::values()
            }
        })*
    };
}

enumerated!(
    VolumeType,
    Tenancy,
    ResourceType,
    MarketType,
    SpotInstanceType,
    InstanceInterruptionBehavior,
    AmdSevSnpSpecification,
    CapacityReservationPreference,
    HttpTokensState,
    InstanceMetadataEndpointState,
    InstanceMetadataProtocolState,
    InstanceMetadataTagsState,
    HostnameType,
    InstanceAutoRecoveryState,
    InstanceBandwidthWeighting,
    ShutdownBehavior,
);

impl<'de, T: Enumerated> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if T::choices().contains(&s.as_str()) {
            Ok(Choice(T::from(s.as_str())))
        } else {
            Err(de::Error::custom(format!(
                "`{s}` is not one of {}",
                T::choices().join(", ")
            )))
        }
    }
}

/// A RunInstances member EC2 added after the AWS SDK of this build (aws-sdk-ec2 1.145, the
/// newest for Rust 1.85): refused with its path, since the SDK cannot send it.
#[derive(Debug)]
pub(crate) struct Newer(PhantomData<()>);

impl<'de> Deserialize<'de> for Newer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Err(de::Error::custom(
            "added to EC2's RunInstances after the AWS SDK of this build (aws-sdk-ec2 1.145), which cannot send it",
        ))
    }
}

/// A date and time (RFC 3339, `2030-01-01T00:00:00Z`).
#[derive(Debug)]
pub(crate) struct Time(DateTime);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::from_str(&s, DateTimeFormat::DateTime)
            .map(Time)
            .map_err(|_| de::Error::custom(format!("`{s}` is not an RFC 3339 date and time")))
    }
}

/// Reads `$name` structures (`deny_unknown_fields`, PascalCase) and turns them into `$sdk` by
/// setting every field with the builder's `set_` method of the same name, each field's value
/// converted by [`Sdk`].
macro_rules! shape {
    ($(#[$doc:meta])* $name:ident => $sdk:ident {
        $($(#[$attr:meta])* $field:ident: $ty:ty,)*
    } $(newer { $($(#[$nattr:meta])* $newer:ident,)* })?) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "PascalCase")]
        pub(crate) struct $name {
            $($(#[$attr])* pub(crate) $field: Option<$ty>,)*
            $($($(#[$nattr])* #[allow(dead_code, reason = "always refused while reading")]
            $newer: Option<Newer>,)*)?
        }

        impl Sdk for $name {
            type Out = sdk::$sdk;
            fn sdk(self) -> sdk::$sdk {
                paste_set!(sdk::$sdk::builder(), self, $($field),*).build()
            }
        }
    };
}

/// `builder.set_a(self.a.map(Sdk::sdk)).set_b(…)…`
macro_rules! paste_set {
    ($b:expr, $self:ident, $($field:ident),*) => {{
        let b = $b;
        $(let b = setter!(b, $field, $self.$field.map(Sdk::sdk));)*
        b
    }};
}

/// Calls the builder's `set_$field`.
macro_rules! setter {
    ($b:ident, $field:ident, $value:expr) => {
        ::pastey::paste! { $b.[<set_ $field>]($value) }
    };
}

pub(crate) use {paste_set, setter};

/// A model value turned into the SDK's.
pub(crate) trait Sdk {
    /// The SDK's type.
    type Out;
    /// Converts.
    fn sdk(self) -> Self::Out;
}

macro_rules! same {
    ($($t:ty),*) => { $(impl Sdk for $t { type Out = $t; fn sdk(self) -> $t { self } })* };
}
same!(String, bool, i32);

impl<T: Sdk> Sdk for Vec<T> {
    type Out = Vec<T::Out>;
    fn sdk(self) -> Vec<T::Out> {
        self.into_iter().map(Sdk::sdk).collect()
    }
}

impl<T: Enumerated> Sdk for Choice<T> {
    type Out = T;
    fn sdk(self) -> T {
        self.0
    }
}

impl Sdk for Time {
    type Out = DateTime;
    fn sdk(self) -> DateTime {
        self.0
    }
}

shape!(
    /// `BlockDeviceMappings[]`.
    DeviceMapping => BlockDeviceMapping {
        device_name: String,
        virtual_name: String,
        no_device: String,
        ebs: Ebs,
    }
);

shape!(
    /// `BlockDeviceMappings[].Ebs`.
    Ebs => EbsBlockDevice {
        delete_on_termination: bool,
        iops: i32,
        snapshot_id: String,
        volume_size: i32,
        volume_type: Choice<sdk::VolumeType>,
        kms_key_id: String,
        throughput: i32,
        outpost_arn: String,
        availability_zone: String,
        encrypted: bool,
        volume_initialization_rate: i32,
        availability_zone_id: String,
    } newer {
        ebs_card_index,
    }
);

shape!(
    /// `Ipv6Addresses[]`, `NetworkInterfaces[].Ipv6Addresses[]`.
    Ipv6Address => InstanceIpv6Address {
        ipv6_address: String,
        is_primary_ipv6: bool,
    }
);

shape!(
    /// `Monitoring`.
    Monitoring => RunInstancesMonitoringEnabled {
        enabled: bool,
    } newer {
        metric_category_ids,
    }
);

shape!(
    /// `Placement`.
    PlacementOptions => Placement {
        affinity: String,
        group_name: String,
        partition_number: i32,
        host_id: String,
        tenancy: Choice<sdk::Tenancy>,
        spread_domain: String,
        host_resource_group_arn: String,
        group_id: String,
        availability_zone: String,
    } newer {
        availability_zone_id,
    }
);

shape!(
    /// `ElasticGpuSpecification[]` (retired by EC2, still in the API).
    ElasticGpu => ElasticGpuSpecification {
        r#type: String,
    }
);

shape!(
    /// `ElasticInferenceAccelerators[]` (retired by EC2, still in the API).
    InferenceAccelerator => ElasticInferenceAccelerator {
        r#type: String,
        count: i32,
    }
);

shape!(
    /// `TagSpecifications[]`.
    TagSpec => TagSpecification {
        resource_type: Choice<sdk::ResourceType>,
        tags: Vec<KeyValue>,
    }
);

shape!(
    /// `TagSpecifications[].Tags[]`.
    KeyValue => Tag {
        key: String,
        value: String,
    }
);

shape!(
    /// `LaunchTemplate`.
    LaunchTemplate => LaunchTemplateSpecification {
        launch_template_id: String,
        launch_template_name: String,
        version: String,
    }
);

shape!(
    /// `InstanceMarketOptions`.
    MarketOptions => InstanceMarketOptionsRequest {
        market_type: Choice<sdk::MarketType>,
        spot_options: SpotOptions,
    }
);

shape!(
    /// `InstanceMarketOptions.SpotOptions`.
    SpotOptions => SpotMarketOptions {
        max_price: String,
        spot_instance_type: Choice<sdk::SpotInstanceType>,
        block_duration_minutes: i32,
        valid_until: Time,
        instance_interruption_behavior: Choice<sdk::InstanceInterruptionBehavior>,
    }
);

shape!(
    /// `CreditSpecification`.
    CreditSpecification => CreditSpecificationRequest {
        cpu_credits: String,
    }
);

shape!(
    /// `CpuOptions`.
    CpuOptions => CpuOptionsRequest {
        core_count: i32,
        threads_per_core: i32,
        amd_sev_snp: Choice<sdk::AmdSevSnpSpecification>,
    } newer {
        nested_virtualization,
    }
);

shape!(
    /// `CapacityReservationSpecification`.
    CapacityReservation => CapacityReservationSpecification {
        capacity_reservation_preference: Choice<sdk::CapacityReservationPreference>,
        capacity_reservation_target: CapacityReservationTarget,
    }
);

shape!(
    /// `CapacityReservationSpecification.CapacityReservationTarget`.
    CapacityReservationTarget => CapacityReservationTarget {
        capacity_reservation_id: String,
        capacity_reservation_resource_group_arn: String,
    }
);

shape!(
    /// `HibernationOptions`.
    Hibernation => HibernationOptionsRequest {
        configured: bool,
    }
);

shape!(
    /// `LicenseSpecifications[]`.
    License => LicenseConfigurationRequest {
        license_configuration_arn: String,
    }
);

shape!(
    /// `MetadataOptions`.
    MetadataOptions => InstanceMetadataOptionsRequest {
        http_tokens: Choice<sdk::HttpTokensState>,
        http_put_response_hop_limit: i32,
        http_endpoint: Choice<sdk::InstanceMetadataEndpointState>,
        #[serde(rename = "HttpProtocolIpv6")]
        http_protocol_ipv6: Choice<sdk::InstanceMetadataProtocolState>,
        instance_metadata_tags: Choice<sdk::InstanceMetadataTagsState>,
    }
);

shape!(
    /// `EnclaveOptions`.
    Enclave => EnclaveOptionsRequest {
        enabled: bool,
    }
);

shape!(
    /// `PrivateDnsNameOptions`.
    PrivateDns => PrivateDnsNameOptionsRequest {
        hostname_type: Choice<sdk::HostnameType>,
        #[serde(rename = "EnableResourceNameDnsARecord")]
        enable_resource_name_dns_a_record: bool,
        #[serde(rename = "EnableResourceNameDnsAAAARecord")]
        enable_resource_name_dns_aaaa_record: bool,
    }
);

shape!(
    /// `MaintenanceOptions`.
    Maintenance => InstanceMaintenanceOptionsRequest {
        auto_recovery: Choice<sdk::InstanceAutoRecoveryState>,
    }
);

shape!(
    /// `NetworkPerformanceOptions`.
    NetworkPerformance => InstanceNetworkPerformanceOptionsRequest {
        bandwidth_weighting: Choice<sdk::InstanceBandwidthWeighting>,
    }
);

shape!(
    /// `Operator`.
    Operator => OperatorRequest {
        principal: String,
    }
);

shape!(
    /// `NetworkInterfaces[]`.
    NetworkInterface => InstanceNetworkInterfaceSpecification {
        associate_public_ip_address: bool,
        delete_on_termination: bool,
        description: String,
        device_index: i32,
        groups: Vec<String>,
        ipv6_address_count: i32,
        ipv6_addresses: Vec<Ipv6Address>,
        network_interface_id: String,
        private_ip_address: String,
        private_ip_addresses: Vec<PrivateIp>,
        secondary_private_ip_address_count: i32,
        subnet_id: String,
        associate_carrier_ip_address: bool,
        interface_type: String,
        network_card_index: i32,
        ipv4_prefixes: Vec<Ipv4Prefix>,
        ipv4_prefix_count: i32,
        ipv6_prefixes: Vec<Ipv6Prefix>,
        ipv6_prefix_count: i32,
        primary_ipv6: bool,
        ena_srd_specification: EnaSrd,
        connection_tracking_specification: ConnectionTracking,
        ena_queue_count: i32,
    }
);

shape!(
    /// `NetworkInterfaces[].PrivateIpAddresses[]`.
    PrivateIp => PrivateIpAddressSpecification {
        primary: bool,
        private_ip_address: String,
    }
);

shape!(
    /// `NetworkInterfaces[].Ipv4Prefixes[]`.
    Ipv4Prefix => Ipv4PrefixSpecificationRequest {
        ipv4_prefix: String,
    }
);

shape!(
    /// `NetworkInterfaces[].Ipv6Prefixes[]`.
    Ipv6Prefix => Ipv6PrefixSpecificationRequest {
        ipv6_prefix: String,
    }
);

shape!(
    /// `NetworkInterfaces[].EnaSrdSpecification`.
    EnaSrd => EnaSrdSpecificationRequest {
        ena_srd_enabled: bool,
        ena_srd_udp_specification: EnaSrdUdp,
    }
);

shape!(
    /// `NetworkInterfaces[].EnaSrdSpecification.EnaSrdUdpSpecification`.
    EnaSrdUdp => EnaSrdUdpSpecificationRequest {
        ena_srd_udp_enabled: bool,
    }
);

shape!(
    /// `NetworkInterfaces[].ConnectionTrackingSpecification`.
    ConnectionTracking => ConnectionTrackingSpecificationRequest {
        tcp_established_timeout: i32,
        udp_stream_timeout: i32,
        udp_timeout: i32,
    }
);

shape!(
    /// `IamInstanceProfile`.
    Profile => IamInstanceProfileSpecification {
        arn: String,
        name: String,
    }
);
