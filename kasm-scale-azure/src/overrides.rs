//! `azure_config_override` checked on its own before anything is sent: its keys and their types
//! against the request body of "Virtual Machines - Create Or Update" (unknown keys and wrong
//! types are refused with their path, e.g.
//! `azure_config_override.properties.hardwareProfile.vmSize: invalid type: integer `5`, expected
//! a string`), and the keys kasm-scale owns refused (`properties.osProfile.customData`,
//! `properties.osProfile.adminPassword`, the `kasm-scale:*` owner tags). A few deep, rarely used
//! subtrees (patch settings, WinRM, gallery applications, …) are taken as any JSON value, for
//! ARM to check.

use kasm_scale_core::config::JsonObject;
use serde_json::Value;

/// Prefix of the owner tags, which the override may not touch.
const OWNER_TAG_PREFIX: &str = "kasm-scale:";

/// Checks an override; the error names the path and the reason.
pub(crate) fn check_override(o: &JsonObject) -> Result<(), String> {
    let os_profile =
        o.0.get("properties")
            .and_then(|p| p.get("osProfile"))
            .and_then(Value::as_object);
    for key in ["customData", "adminPassword"] {
        if os_profile.is_some_and(|p| p.contains_key(key)) {
            return Err(format!(
                "azure_config_override.properties.osProfile.{key}: set by kasm-scale, cannot be overridden"
            ));
        }
    }
    if let Some(tags) = o.0.get("tags").and_then(Value::as_object)
        && let Some(k) = tags.keys().find(|k| k.starts_with(OWNER_TAG_PREFIX))
    {
        return Err(format!(
            "azure_config_override.tags.{k}: an owner tag of kasm-scale, cannot be overridden"
        ));
    }
    serde_path_to_error::deserialize::<_, model::VmBody>(Value::Object(o.0.clone()))
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            format!("azure_config_override.{path}: {}", e.into_inner())
                .replace("override.: ", "override: ")
        })
}

/// The request body of "Virtual Machines - Create Or Update", as far as an override may set it
/// (read-only and kasm-scale's own fields left out).
#[allow(dead_code)] // the fields are only read by serde, to check keys and types
mod model {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct VmBody {
        location: Option<String>,
        tags: Option<BTreeMap<String, String>>,
        zones: Option<Vec<String>>,
        identity: Option<Identity>,
        plan: Option<Plan>,
        extended_location: Option<ExtendedLocation>,
        placement: Option<Placement>,
        properties: Option<Properties>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Identity {
        #[serde(rename = "type")]
        kind: Option<String>,
        user_assigned_identities: Option<BTreeMap<String, Value>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Plan {
        name: Option<String>,
        publisher: Option<String>,
        product: Option<String>,
        promotion_code: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct ExtendedLocation {
        name: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Placement {
        zone_placement_policy: Option<String>,
        include_zones: Option<Vec<String>>,
        exclude_zones: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SubResource {
        id: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Properties {
        additional_capabilities: Option<AdditionalCapabilities>,
        application_profile: Option<Value>,
        availability_set: Option<SubResource>,
        billing_profile: Option<BillingProfile>,
        capacity_reservation: Option<CapacityReservation>,
        diagnostics_profile: Option<DiagnosticsProfile>,
        eviction_policy: Option<String>,
        extensions_time_budget: Option<String>,
        hardware_profile: Option<HardwareProfile>,
        host: Option<SubResource>,
        host_group: Option<SubResource>,
        license_type: Option<String>,
        network_profile: Option<NetworkProfile>,
        os_profile: Option<OsProfile>,
        platform_fault_domain: Option<i64>,
        priority: Option<String>,
        proximity_placement_group: Option<SubResource>,
        scheduled_events_policy: Option<Value>,
        scheduled_events_profile: Option<Value>,
        security_profile: Option<SecurityProfile>,
        storage_profile: Option<StorageProfile>,
        user_data: Option<String>,
        virtual_machine_scale_set: Option<SubResource>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct AdditionalCapabilities {
        #[serde(rename = "ultraSSDEnabled")]
        ultra_ssd_enabled: Option<bool>,
        hibernation_enabled: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct BillingProfile {
        max_price: Option<f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct CapacityReservation {
        capacity_reservation_group: Option<SubResource>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct DiagnosticsProfile {
        boot_diagnostics: Option<BootDiagnostics>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct BootDiagnostics {
        enabled: Option<bool>,
        storage_uri: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct HardwareProfile {
        vm_size: Option<String>,
        vm_size_properties: Option<VmSizeProperties>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct VmSizeProperties {
        #[serde(rename = "vCPUsAvailable")]
        vcpus_available: Option<i64>,
        #[serde(rename = "vCPUsPerCore")]
        vcpus_per_core: Option<i64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct NetworkProfile {
        network_interfaces: Option<Vec<NicReference>>,
        network_api_version: Option<String>,
        network_interface_configurations: Option<Vec<Value>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct NicReference {
        id: Option<String>,
        properties: Option<NicReferenceProperties>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct NicReferenceProperties {
        primary: Option<bool>,
        delete_option: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct OsProfile {
        computer_name: Option<String>,
        admin_username: Option<String>,
        windows_configuration: Option<WindowsConfiguration>,
        linux_configuration: Option<LinuxConfiguration>,
        secrets: Option<Vec<Value>>,
        allow_extension_operations: Option<bool>,
        require_guest_provision_signal: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct WindowsConfiguration {
        #[serde(rename = "provisionVMAgent")]
        provision_vm_agent: Option<bool>,
        enable_automatic_updates: Option<bool>,
        time_zone: Option<String>,
        additional_unattend_content: Option<Vec<Value>>,
        patch_settings: Option<Value>,
        #[serde(rename = "winRM")]
        win_rm: Option<Value>,
        #[serde(rename = "enableVMAgentPlatformUpdates")]
        enable_vm_agent_platform_updates: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct LinuxConfiguration {
        disable_password_authentication: Option<bool>,
        ssh: Option<Ssh>,
        #[serde(rename = "provisionVMAgent")]
        provision_vm_agent: Option<bool>,
        patch_settings: Option<Value>,
        #[serde(rename = "enableVMAgentPlatformUpdates")]
        enable_vm_agent_platform_updates: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Ssh {
        public_keys: Option<Vec<SshKey>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct SshKey {
        path: Option<String>,
        key_data: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct SecurityProfile {
        security_type: Option<String>,
        uefi_settings: Option<UefiSettings>,
        encryption_at_host: Option<bool>,
        encryption_identity: Option<Value>,
        proxy_agent_settings: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct UefiSettings {
        secure_boot_enabled: Option<bool>,
        v_tpm_enabled: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct StorageProfile {
        image_reference: Option<ImageReference>,
        os_disk: Option<OsDisk>,
        data_disks: Option<Vec<DataDisk>>,
        disk_controller_type: Option<String>,
        align_regional_disks_to_vm_zone: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct ImageReference {
        publisher: Option<String>,
        offer: Option<String>,
        sku: Option<String>,
        version: Option<String>,
        id: Option<String>,
        shared_gallery_image_id: Option<String>,
        community_gallery_image_id: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct OsDisk {
        name: Option<String>,
        create_option: Option<String>,
        caching: Option<String>,
        #[serde(rename = "diskSizeGB")]
        disk_size_gb: Option<i64>,
        delete_option: Option<String>,
        os_type: Option<String>,
        write_accelerator_enabled: Option<bool>,
        managed_disk: Option<ManagedDisk>,
        diff_disk_settings: Option<Value>,
        encryption_settings: Option<Value>,
        image: Option<Value>,
        vhd: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct ManagedDisk {
        id: Option<String>,
        storage_account_type: Option<String>,
        disk_encryption_set: Option<SubResource>,
        security_profile: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct DataDisk {
        lun: i64,
        name: Option<String>,
        create_option: Option<String>,
        caching: Option<String>,
        #[serde(rename = "diskSizeGB")]
        disk_size_gb: Option<i64>,
        delete_option: Option<String>,
        detach_option: Option<String>,
        to_be_detached: Option<bool>,
        write_accelerator_enabled: Option<bool>,
        managed_disk: Option<ManagedDisk>,
        source_resource: Option<SubResource>,
        image: Option<Value>,
        vhd: Option<Value>,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn o(v: Value) -> JsonObject {
        serde_json::from_value(v).expect("an object")
    }

    #[test]
    fn refuses_unknown_keys_wrong_types_and_our_keys_with_their_path() {
        for (value, expected) in [
            (
                json!({"properties": {"hardwareProfile": {"vmSize": 5}}}),
                "azure_config_override.properties.hardwareProfile.vmSize: invalid type: integer `5`, expected a string",
            ),
            (
                json!({"properties": {"hardwareProfil": {}}}),
                "azure_config_override.properties.hardwareProfil: unknown field `hardwareProfil`",
            ),
            (
                json!({"bogus": 1}),
                "azure_config_override.bogus: unknown field `bogus`",
            ),
            (
                json!({"properties": {"storageProfile": {"dataDisks": [{"lun": "one"}]}}}),
                "azure_config_override.properties.storageProfile.dataDisks[0].lun: invalid type: string \"one\", expected i64",
            ),
            (
                json!({"zones": "1"}),
                "azure_config_override.zones: invalid type: string \"1\", expected a sequence",
            ),
            (
                json!({"properties": {"osProfile": {"customData": "eA=="}}}),
                "azure_config_override.properties.osProfile.customData: set by kasm-scale, cannot be overridden",
            ),
            (
                json!({"properties": {"osProfile": {"adminPassword": "x"}}}),
                "azure_config_override.properties.osProfile.adminPassword: set by kasm-scale, cannot be overridden",
            ),
            (
                json!({"tags": {"kasm-scale:owner": "x"}}),
                "azure_config_override.tags.kasm-scale:owner: an owner tag of kasm-scale, cannot be overridden",
            ),
        ] {
            let err = check_override(&o(value.clone())).unwrap_err();
            assert!(err.starts_with(expected), "{value}: {err}");
        }
    }

    #[test]
    fn accepts_the_documented_keys() {
        check_override(&o(json!({
            "zones": ["1"],
            "tags": {"team": "vdi"},
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/subscriptions/s/x": {}}},
            "plan": {"name": "p", "publisher": "q", "product": "r"},
            "properties": {
                "securityProfile": {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
                "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                "priority": "Spot", "evictionPolicy": "Deallocate", "billingProfile": {"maxPrice": -1},
                "licenseType": "Windows_Client",
                "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}},
                "storageProfile": {"osDisk": {"caching": "ReadWrite", "diskSizeGB": 256, "deleteOption": "Delete"},
                    "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64}]},
                "osProfile": {"windowsConfiguration": {"timeZone": "UTC", "enableAutomaticUpdates": false}},
                "networkProfile": {"networkInterfaces": [{"id": "/x", "properties": {"primary": true}}]},
                "userData": "eA=="
            }
        })))
        .unwrap();
    }
}
