//! [`AzureProvider`]: VMs with their network interface (and public IP) on Azure Resource
//! Manager, named after the server id so that every PUT is idempotent.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use kasm_scale_core::config::{
    AZURE_CUSTOM_DATA_LIMIT, AzureVmConfig, MAX_CALL_TIMEOUT_SECONDS, merge_json,
};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::traits::{
    BackendError, Capabilities, Leftover, OWNER_TAG, StopMode, Vm, VmProvider, VmSpec, VmState,
};
use reqwest::Method;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::arm::{
    DISK_API_VERSION, NETWORK_API_VERSION, ResourceManager, VM_API_VERSION, http_client,
};
use crate::auth::{AzureCredential, CloudEndpoints};
use crate::overrides::check_override;
use crate::power::Choice;
use crate::vm_state::{owner_of, power_of, state_of};

/// An Azure [`VmProvider`] for one Azure VM provider config.
#[derive(Debug)]
pub struct AzureProvider {
    pub(crate) config: AzureVmConfig,
    pub(crate) arm: ResourceManager,
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers`.
    pub(crate) providers: String,
    overrides: Option<Value>,
    /// How long one create, destroy, stop or start may take (`api_operation_timeout`).
    pub(crate) operation_timeout: Duration,
}

/// Builds an [`AzureProvider`]; [`AzureProviderBuilder::build`] checks the config.
#[derive(Debug)]
pub struct AzureProviderBuilder {
    config: AzureVmConfig,
    request_timeout: Option<Duration>,
}

/// Resource names of one server: `kasm-<server id>` and its `-nic`, `-ip`, `-osdisk`.
pub(crate) struct Names {
    pub(crate) vm: String,
    pub(crate) nic: String,
    pub(crate) ip: String,
    pub(crate) disk: String,
}

impl Names {
    pub(crate) fn of(vm: &str) -> Names {
        Names {
            vm: vm.into(),
            nic: format!("{vm}-nic"),
            ip: format!("{vm}-ip"),
            disk: format!("{vm}-osdisk"),
        }
    }

    pub(crate) fn for_server(id: ServerId) -> Names {
        Names::of(&format!("kasm-{}", id.0.simple()))
    }
}

/// Why `value` cannot be one segment of a URL path as it is, if it cannot: a `/`, `\\`, `?`,
/// `#` or `%`, a space or control character, or a bare `.` or `..` would take the request (and
/// its bearer token) to another resource.
pub(crate) fn unsafe_segment(value: &str) -> Option<String> {
    if value.is_empty() || value == "." || value == ".." {
        return Some(format!(
            "`{}` cannot be part of a URL path",
            value.escape_debug()
        ));
    }
    value
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
        .map(|c| {
            format!(
                "`{}` has `{}`, which cannot be part of a URL path",
                value.escape_debug(),
                c.escape_debug()
            )
        })
}

/// Whether `name` is a VM name kasm-scale gives (`kasm-` and 32 hex digits).
pub(crate) fn is_our_vm_name(name: &str) -> bool {
    name.strip_prefix("kasm-")
        .is_some_and(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The identity keys of lists in the VM body, for merging the override.
fn identity(field: &str) -> Option<&'static str> {
    match field {
        "networkInterfaces" => Some("id"),
        "dataDisks" => Some("lun"),
        _ => None,
    }
}

impl AzureProvider {
    /// A builder for `config`.
    pub fn builder(config: AzureVmConfig) -> AzureProviderBuilder {
        AzureProviderBuilder {
            config,
            request_timeout: None,
        }
    }
}

impl AzureProviderBuilder {
    /// How long one request to ARM or the login authority may take (default: the config's
    /// `api_call_timeout`, 30 s unless set); a slower one is a transient failure. A
    /// long-running operation is polled, one request at a time, within its own budget
    /// (`api_operation_timeout`).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Checks the config (and `azure_config_override` by path: keys, types, and the keys
    /// kasm-scale owns) and prepares the credential and the Resource Manager client. Nothing is
    /// called until the first operation.
    pub fn build(self) -> Result<AzureProvider, BackendError> {
        let c = self.config;
        let invalid = |m: &str| BackendError::InvalidRequest(format!("{}: {m}", c.name));
        if let Some((field, message)) = c.problems().into_iter().next() {
            return Err(invalid(&format!("{field}: {message}")));
        }
        let overrides = match &c.azure_config_override {
            Some(o) if !o.0.is_empty() => {
                check_override(o).map_err(|m| invalid(&m))?;
                Some(Value::Object(o.0.clone()))
            }
            _ => None,
        };
        let cloud = CloudEndpoints::of(c.azure_authority);
        let base = c
            .azure_resource_manager_url
            .clone()
            .unwrap_or(cloud.resource_manager);
        // Checked again where they enter the URL, whatever validation said.
        for (field, value) in [
            ("azure_subscription_id", &c.azure_subscription_id),
            ("azure_resource_group", &c.azure_resource_group),
        ] {
            if let Some(why) = unsafe_segment(value) {
                return Err(invalid(&format!("{field}: {why}")));
            }
        }
        let providers = format!(
            "/subscriptions/{}/resourceGroups/{}/providers",
            c.azure_subscription_id, c.azure_resource_group
        );
        let request_timeout = self.request_timeout.unwrap_or_else(|| {
            Duration::from_secs(u64::from(c.api_call_timeout).clamp(1, MAX_CALL_TIMEOUT_SECONDS))
        });
        let http = http_client(request_timeout)?;
        let operation_timeout = c.operation_timeout();
        let credential = AzureCredential::from_config(http.clone(), &c);
        Ok(AzureProvider {
            arm: ResourceManager::new(http, &base, credential)
                .with_operation_timeout(operation_timeout),
            config: c,
            providers,
            overrides,
            operation_timeout,
        })
    }
}

impl AzureProvider {
    pub(crate) fn vm_path(&self, name: &str) -> String {
        format!(
            "{}/Microsoft.Compute/virtualMachines/{name}",
            self.providers
        )
    }
    pub(crate) fn nic_path(&self, name: &str) -> String {
        format!(
            "{}/Microsoft.Network/networkInterfaces/{name}",
            self.providers
        )
    }
    pub(crate) fn ip_path(&self, name: &str) -> String {
        format!(
            "{}/Microsoft.Network/publicIPAddresses/{name}",
            self.providers
        )
    }
    pub(crate) fn disk_path(&self, name: &str) -> String {
        format!("{}/Microsoft.Compute/disks/{name}", self.providers)
    }

    /// The name in `id` when `id` is a resource of type `kind` (`Microsoft.Compute/virtualMachines`)
    /// in the configured subscription and resource group (case-insensitive, as ARM is).
    pub(crate) fn name_in_scope<'a>(&self, id: &'a str, kind: &str) -> Option<&'a str> {
        let prefix = format!("{}/{kind}/", self.providers);
        let name = match id.get(..prefix.len()) {
            Some(p) if p.eq_ignore_ascii_case(&prefix) => &id[prefix.len()..],
            _ => return None,
        };
        (!name.is_empty() && !name.contains(['/', '?', '#'])).then_some(name)
    }

    /// A VM from its resource and, when known, its power state.
    fn to_vm(&self, resource: &Value, power: Option<&str>) -> Option<Vm> {
        let owner = owner_of(resource)?;
        let properties = resource.get("properties");
        let provisioning = properties
            .and_then(|p| p.get("provisioningState"))
            .and_then(Value::as_str);
        let created_at = properties
            .and_then(|p| p.get("timeCreated"))
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok());
        Some(Vm {
            vm_id: resource.get("id")?.as_str()?.to_owned(),
            owner,
            state: state_of(provisioning, power),
            private_ip: None,
            created_at,
        })
    }

    /// PUT and follow the operation.
    async fn put(
        &self,
        path: &str,
        version: &str,
        body: &Value,
        what: &str,
    ) -> Result<Value, BackendError> {
        let answer = self
            .arm
            .send(Method::PUT, path, version, Some(body), what)
            .await?;
        self.arm.wait(&answer, version, what).await?;
        Ok(answer.body)
    }

    /// DELETE and follow the operation; a missing resource is done.
    pub(crate) async fn delete(
        &self,
        path: &str,
        version: &str,
        what: &str,
    ) -> Result<(), BackendError> {
        match self
            .arm
            .send(Method::DELETE, path, version, None, what)
            .await
        {
            Ok(answer) => self.arm.wait(&answer, version, what).await,
            Err(BackendError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The VM body: kasm-scale's fields (the size and zone of the offering), the override
    /// merged in, then the owner tags and the size and zone an alternative sets (an override
    /// shapes the config's own fields, never an alternative's).
    fn vm_body(&self, spec: &VmSpec, names: &Names, custom_data: &str, choice: &Choice) -> Value {
        let c = &self.config;
        let image = &c.azure_image_reference.0;
        let image_reference = match image.get("id") {
            Some(id) => json!({ "id": id }),
            None => Value::Object(image.clone()),
        };
        let mut os_disk = json!({
            "name": names.disk,
            "createOption": "FromImage",
            "managedDisk": {"storageAccountType": c.azure_os_disk_type},
            "deleteOption": "Delete",
        });
        if let Some(size) = c.azure_os_disk_size_gb {
            os_disk["diskSizeGB"] = json!(size);
        }
        let mut os_profile = json!({
            "computerName": spec.hostname,
            "adminUsername": c.azure_os_username,
            "customData": custom_data,
        });
        if let Some(pw) = &c.azure_os_password {
            os_profile["adminPassword"] = json!(pw.expose());
        }
        if c.azure_is_windows {
            os_profile["windowsConfiguration"] = json!({"provisionVMAgent": true});
        } else {
            let mut linux = json!({"disablePasswordAuthentication": c.azure_os_password.is_none()});
            if let Some(key) = &c.azure_ssh_public_key {
                linux["ssh"] = json!({"publicKeys": [{
                    "path": format!("/home/{}/.ssh/authorized_keys", c.azure_os_username),
                    "keyData": key,
                }]});
            }
            os_profile["linuxConfiguration"] = linux;
        }
        let mut body = json!({
            "location": c.azure_region,
            "tags": self.tags(spec),
            "properties": {
                "hardwareProfile": {"vmSize": choice.size},
                "storageProfile": {"imageReference": image_reference, "osDisk": os_disk},
                "osProfile": os_profile,
                "networkProfile": {"networkInterfaces": [{
                    "id": self.nic_path(&names.nic),
                    "properties": {"primary": true, "deleteOption": "Delete"},
                }]},
            },
        });
        if let Some(zone) = &choice.zone {
            body["zones"] = json!([zone]);
        }
        if let Some(o) = &self.overrides {
            merge_json(&mut body, o, identity);
            merge_json(&mut body, &json!({"tags": spec.owner.tags()}), identity);
        }
        if choice.size_from_alternative {
            body["properties"]["hardwareProfile"]["vmSize"] = json!(choice.size);
        }
        if let (true, Some(zone)) = (choice.zone_from_alternative, &choice.zone) {
            body["zones"] = json!([zone]);
        }
        body
    }

    /// `azure_tags` and the owner tags, carried by the VM and every part of it.
    fn tags(&self, spec: &VmSpec) -> BTreeMap<String, String> {
        let mut tags = self.config.azure_tags.0.clone();
        tags.extend(spec.owner.tags());
        tags
    }

    /// Public IP (when asked) and NIC, each call followed to its end.
    async fn create_parts(&self, spec: &VmSpec, names: &Names) -> Result<(), BackendError> {
        let c = &self.config;
        let tags = self.tags(spec);
        let mut ip_config = json!({
            "subnet": {"id": c.azure_subnet},
            "privateIPAllocationMethod": "Dynamic",
        });
        if c.azure_public_ip {
            let ip = json!({
                "location": c.azure_region,
                "tags": tags,
                "sku": {"name": "Standard"},
                "properties": {"publicIPAllocationMethod": "Static"},
            });
            self.put(
                &self.ip_path(&names.ip),
                NETWORK_API_VERSION,
                &ip,
                "cannot create the public IP",
            )
            .await?;
            ip_config["publicIPAddress"] =
                json!({"id": self.ip_path(&names.ip), "properties": {"deleteOption": "Delete"}});
        }
        let mut nic = json!({
            "location": c.azure_region,
            "tags": tags,
            "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": ip_config}]},
        });
        if let Some(nsg) = &c.azure_network_sg {
            nic["properties"]["networkSecurityGroup"] = json!({ "id": nsg });
        }
        self.put(
            &self.nic_path(&names.nic),
            NETWORK_API_VERSION,
            &nic,
            "cannot create the network interface",
        )
        .await?;
        Ok(())
    }

    /// The owner tags on the VM's OS disk (ARM does not pass the VM's tags on).
    pub(crate) async fn tag_disk(&self, spec: &VmSpec, names: &Names) -> Result<(), BackendError> {
        let disk = self.disk_path(&names.disk);
        let what = "cannot tag the OS disk";
        let answer = self
            .arm
            .send(
                Method::PATCH,
                &disk,
                DISK_API_VERSION,
                Some(&json!({ "tags": self.tags(spec) })),
                what,
            )
            .await?;
        self.arm.wait(&answer, DISK_API_VERSION, what).await
    }

    /// `create` within its budget: the VM found and taken up, or its parts, the VM and the
    /// disk's tags made, each operation followed to its end.
    async fn create_within(
        &self,
        spec: &VmSpec,
        names: &Names,
        choice: &Choice,
    ) -> Result<Vm, BackendError> {
        let path = self.vm_path(&names.vm);
        // A repeat, or a create resumed after a restart: the VM exists. Its custom data cannot
        // change (and the guest has read it), so it is taken up as it is, not PUT again.
        // Unless an earlier attempt's VM failed (an allocation failure, maybe on another
        // offering, whose cleanup did not go through): it will never serve, and its zone cannot
        // change, so it and its parts are removed and the VM is made again.
        if let Some(vm) = self.get(&path).await? {
            let failed = vm.state == VmState::Failed
                || self
                    .provisioning_state(&path)
                    .await?
                    .is_some_and(|s| s.eq_ignore_ascii_case("Failed"));
            if !failed {
                return self.adopt(spec, names, vm).await;
            }
            self.check_owner(spec, names, &vm)?;
            tracing::info!(vm = %names.vm, "removing the failed VM of an earlier attempt before making it again");
            self.remove(names).await?;
        }
        let script = spec.startup_script.expose();
        let custom_data = base64::engine::general_purpose::STANDARD.encode(script);
        // No half-made server is left behind; the first error is the one reported. What cannot
        // be removed now is listed by `list_leftovers` and removed later.
        if let Err(e) = self.create_parts(spec, names).await {
            let _ = self.remove(names).await;
            return Err(e);
        }
        let body = self.vm_body(spec, names, &custom_data, choice);
        let what = "cannot create the VM";
        let answer = match self
            .arm
            .send(Method::PUT, &path, VM_API_VERSION, Some(&body), what)
            .await
        {
            Ok(answer) => answer,
            // Refused, maybe because the VM exists by now: an earlier attempt's PUT that ARM
            // was still carrying out when this create looked (ARM then refuses to change its
            // custom data, `PropertyChangeNotAllowed`). That VM is taken up.
            Err(e) => {
                return match self.get(&path).await {
                    Ok(Some(vm)) => self.adopt(spec, names, vm).await,
                    _ => {
                        let _ = self.remove(names).await;
                        Err(e)
                    }
                };
            }
        };
        let made = match self.arm.wait(&answer, VM_API_VERSION, what).await {
            Ok(()) => self.tag_disk(spec, names).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            let _ = self.remove(names).await;
            return Err(e);
        }
        self.get(&path).await?.ok_or_else(|| {
            BackendError::Transient("the VM was created but cannot be read back".into())
        })
    }

    /// Every resource of a type in the resource group, following `nextLink`.
    pub(crate) async fn pages(
        &self,
        kind: &str,
        version: &str,
        what: &str,
    ) -> Result<Vec<Value>, BackendError> {
        let mut next = Some(format!("{}/{kind}", self.providers));
        let mut all = Vec::new();
        while let Some(page) = next.take() {
            let mut answer = self
                .arm
                .send(Method::GET, &page, version, None, what)
                .await?;
            if let Some(Value::Array(items)) = answer.body.get_mut("value").map(Value::take) {
                all.extend(items);
            }
            next = answer
                .body
                .get("nextLink")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Ok(all)
    }

    /// The power state of a VM (`PowerState/…`) from its instance view, `None` when it has
    /// none yet; `Err(NotFound)` when the VM is gone.
    async fn power(&self, vm_id: &str) -> Result<Option<String>, BackendError> {
        let view = self
            .arm
            .send(
                Method::GET,
                &format!("{vm_id}/instanceView"),
                VM_API_VERSION,
                None,
                "cannot read the VM's instance view",
            )
            .await?;
        Ok(power_of(&view.body))
    }
}

#[async_trait]
impl VmProvider for AzureProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_startup_script_bytes: Some(AZURE_CUSTOM_DATA_LIMIT),
            retrieve_password: false,
            operation_timeout: Some(self.operation_timeout),
            stop_start: true,
            hibernate: false,
            resize_stopped: true,
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let script = spec.startup_script.expose();
        if script.len() > AZURE_CUSTOM_DATA_LIMIT {
            return Err(BackendError::InvalidRequest(format!(
                "the startup script is {} bytes, over the {AZURE_CUSTOM_DATA_LIMIT}-byte Azure custom-data limit",
                script.len()
            )));
        }
        let choice = self.choice(spec.offering)?;
        let names = Names::for_server(spec.owner.server_id);
        let budget = self.operation_timeout;
        let span = tracing::info_span!(
            "azure_create",
            vm = %names.vm,
            offering = spec.offering,
            size = %choice.size,
            zone = choice.zone.as_deref().unwrap_or("none")
        );
        tokio::time::timeout(
            budget,
            self.create_within(spec, &names, &choice).instrument(span),
        )
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Transient(format!(
                    "cannot create the VM {}: not done within {} s (api_operation_timeout); the next create of this server takes it up",
                    names.vm,
                    budget.as_secs()
                )))
            })
    }

    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        let budget = self.operation_timeout;
        let span = tracing::info_span!("azure_destroy", vm = %vm_id);
        tokio::time::timeout(budget, self.destroy_checked(vm_id).instrument(span))
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Transient(format!(
                    "cannot delete the VM {vm_id}: not done within {} s (api_operation_timeout)",
                    budget.as_secs()
                )))
            })
    }

    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        // Only a VM of this resource group can be ours; anything else does not exist here.
        if self
            .name_in_scope(vm_id, "Microsoft.Compute/virtualMachines")
            .is_none()
        {
            return Ok(None);
        }
        let answer = match self
            .arm
            .send(
                Method::GET,
                &format!("{vm_id}?$expand=instanceView"),
                VM_API_VERSION,
                None,
                "cannot read the VM",
            )
            .await
        {
            Ok(answer) => answer,
            Err(BackendError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let power = answer
            .body
            .get("properties")
            .and_then(|p| p.get("instanceView"))
            .and_then(power_of);
        let Some(mut vm) = self.to_vm(&answer.body, power.as_deref()) else {
            return Ok(None);
        };
        if let Some(nic) = nic_id(&answer.body) {
            vm.private_ip = match self
                .arm
                .send(
                    Method::GET,
                    &nic,
                    NETWORK_API_VERSION,
                    None,
                    "cannot read the NIC",
                )
                .await
            {
                Ok(n) => private_ip(&n.body),
                Err(BackendError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
        }
        Ok(Some(vm))
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        let vms = self
            .pages(
                "Microsoft.Compute/virtualMachines",
                VM_API_VERSION,
                "cannot list VMs",
            )
            .await?;
        let ours: Vec<&Value> = vms
            .iter()
            .filter(|r| {
                r.get("tags")
                    .and_then(|t| t.get(OWNER_TAG))
                    .and_then(Value::as_str)
                    == Some(owner_id)
            })
            .collect();
        if ours.is_empty() {
            return Ok(Vec::new());
        }
        // Private addresses live on the NICs: one listing of them instead of a GET per VM.
        let nics = self
            .pages(
                "Microsoft.Network/networkInterfaces",
                NETWORK_API_VERSION,
                "cannot list network interfaces",
            )
            .await?;
        let addresses: BTreeMap<String, String> = nics
            .iter()
            .filter_map(|n| {
                let id = n.get("id")?.as_str()?.to_ascii_lowercase();
                Some((id, private_ip(n)?))
            })
            .collect();
        let mut found = Vec::new();
        for r in ours {
            let Some(mut vm) = self.to_vm(r, None) else {
                continue;
            };
            // The list has no power state (its `$expand=instanceView` needs a scale-set
            // filter): a provisioned VM's instance view tells whether it is stopped, a failed
            // one's whether it is a deallocated VM whose start failed (stopped, not dead).
            if matches!(vm.state, VmState::Running | VmState::Failed) {
                match self.power(&vm.vm_id).await {
                    Ok(power) => {
                        let provisioning = r["properties"]["provisioningState"].as_str();
                        vm.state = state_of(provisioning, power.as_deref());
                    }
                    Err(BackendError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            vm.private_ip = nic_id(r).and_then(|id| addresses.get(&id).cloned());
            found.push(vm);
        }
        Ok(found)
    }

    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        self.leftovers(owner_id).await
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

    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        self.remove_part(id).await
    }
}

/// The id (lower case) of a VM's first network interface.
fn nic_id(vm: &Value) -> Option<String> {
    let nics = vm
        .get("properties")?
        .get("networkProfile")?
        .get("networkInterfaces")?;
    Some(nics.get(0)?.get("id")?.as_str()?.to_ascii_lowercase())
}

/// The private address of a NIC's first IP configuration.
fn private_ip(nic: &Value) -> Option<String> {
    let config = nic.get("properties")?.get("ipConfigurations")?.get(0)?;
    Some(
        config
            .get("properties")?
            .get("privateIPAddress")?
            .as_str()?
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::unsafe_segment;

    #[test]
    fn values_that_would_leave_their_url_segment_are_refused() {
        for ok in [
            "kasm",
            "Kasm_VDI-(prod).eu",
            "grüße",
            "00000000-0000-0000-0000-000000000001",
        ] {
            assert_eq!(unsafe_segment(ok), None, "{ok}");
        }
        for bad in [
            "", ".", "..", "a/b", "a\\b", "a?b", "a#b", "a%2Fb", "a b", "a\u{7}",
        ] {
            assert!(unsafe_segment(bad).is_some(), "{bad:?}");
        }
        assert_eq!(
            unsafe_segment("rg/../x").unwrap(),
            "`rg/../x` has `/`, which cannot be part of a URL path"
        );
    }
}
