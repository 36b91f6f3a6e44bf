//! AzureProvider against the ARM test server: the conformance suite, the documented request
//! shapes, custom data, paging, cleanup and failures.

use crate::support;

use base64::Engine;
use kasm_scale_azure::AzureProvider;
use kasm_scale_core::config::AzureVmConfig;
use kasm_scale_core::testkit::{vm_provider_contract, vm_spec as spec};
use kasm_scale_core::traits::{BackendError, VmProvider};
use serde_json::Value;
use support::resources::Fault;
use support::{ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

const SUBNET: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/vdi";
const NSG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/net/providers/Microsoft.Network/networkSecurityGroups/vdi";

fn config(server: &ArmServer, extra: &str) -> AzureVmConfig {
    let text = format!(
        r#"
name = "azure-test"
azure_subscription_id = "00000000-0000-0000-0000-000000000001"
azure_resource_group = "kasm"
azure_tenant_id = "{TENANT}"
azure_client_id = "{CLIENT_ID}"
azure_client_secret = "{CLIENT_SECRET}"
azure_region = "eastus"
max_instances = 50
azure_vm_size = "Standard_D4s_v5"
azure_os_disk_type = "Premium_LRS"
azure_image_reference = {{ publisher = "MicrosoftWindowsDesktop", offer = "windows-11", sku = "win11-23h2-avd", version = "latest" }}
azure_subnet = "{SUBNET}"
azure_os_username = "kasmadmin"
azure_resource_manager_url = "{url}"
azure_authority_url = "{url}"
{extra}
"#,
        url = server.url
    );
    toml::from_str(&text).expect("test config")
}

const WINDOWS: &str = r#"
azure_is_windows = true
azure_os_password = "Adm1n-Passw0rd!"
azure_network_sg = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/net/providers/Microsoft.Network/networkSecurityGroups/vdi"
azure_public_ip = true
azure_os_disk_size_gb = 128
azure_tags = { team = "vdi" }
azure_config_override = '{"properties": {"securityProfile": {"securityType": "TrustedLaunch"}}, "zones": ["1"]}'
"#;

fn stored(server: &ArmServer, kind: &str) -> Vec<Value> {
    let state = server.state.lock().unwrap();
    state
        .store
        .resources
        .values()
        .filter(|r| r["type"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = ArmServer::start().await;
    let p = AzureProvider::builder(config(
        &server,
        "azure_ssh_public_key = \"ssh-ed25519 AAAA test\"",
    ))
    .build()
    .unwrap();
    vm_provider_contract(&p, "azure-conformance").await;
}

#[tokio::test]
async fn requests_have_the_documented_shapes_and_destroy_leaves_nothing() {
    let server = ArmServer::start().await;
    let p = AzureProvider::builder(config(&server, WINDOWS))
        .build()
        .unwrap();
    let script = "Write-Output 'ünïcode ✓'\r\n";
    let vm = p.create(&spec("azure-shapes", 1, script)).await.unwrap();
    assert!(vm.vm_id.ends_with(&format!(
        "/virtualMachines/kasm-{}",
        uuid::Uuid::from_u128(1).simple()
    )));

    let vms = stored(&server, "microsoft.compute/virtualmachines");
    let body = &vms[0];
    let props = &body["properties"];
    assert_eq!(body["location"], "eastus");
    assert_eq!(body["zones"][0], "1", "the override is merged");
    assert_eq!(props["securityProfile"]["securityType"], "TrustedLaunch");
    assert_eq!(body["tags"]["kasm-scale:owner"], "azure-shapes");
    assert_eq!(body["tags"]["team"], "vdi");
    assert_eq!(props["hardwareProfile"]["vmSize"], "Standard_D4s_v5");
    assert_eq!(
        props["storageProfile"]["imageReference"]["offer"],
        "windows-11"
    );
    let disk = &props["storageProfile"]["osDisk"];
    assert_eq!(disk["createOption"], "FromImage");
    assert_eq!(disk["managedDisk"]["storageAccountType"], "Premium_LRS");
    assert_eq!(disk["diskSizeGB"], 128);
    assert_eq!(disk["deleteOption"], "Delete");
    let os = &props["osProfile"];
    assert_eq!(os["computerName"], "KASM-0000000001");
    assert_eq!(os["adminUsername"], "kasmadmin");
    assert_eq!(os["windowsConfiguration"]["provisionVMAgent"], true);
    let data = base64::engine::general_purpose::STANDARD
        .decode(os["customData"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(data).unwrap(),
        script,
        "custom data round trip"
    );
    let nic_ref = &props["networkProfile"]["networkInterfaces"][0];
    assert_eq!(nic_ref["properties"]["deleteOption"], "Delete");

    let nics = stored(&server, "microsoft.network/networkinterfaces");
    let ip_config = &nics[0]["properties"]["ipConfigurations"][0]["properties"];
    assert_eq!(ip_config["subnet"]["id"], SUBNET);
    assert_eq!(nics[0]["properties"]["networkSecurityGroup"]["id"], NSG);
    assert_eq!(
        ip_config["publicIPAddress"]["properties"]["deleteOption"],
        "Delete"
    );
    assert_eq!(
        stored(&server, "microsoft.network/publicipaddresses").len(),
        1
    );
    assert_eq!(stored(&server, "microsoft.compute/disks").len(), 1);
    p.destroy(&vm.vm_id).await.unwrap();
    {
        // Each resource type at its own api-version, as Azure's reference publishes them (the
        // server refuses any other), operations polled at the version that started them.
        let state = server.state.lock().unwrap();
        let versions: std::collections::BTreeSet<(String, &str)> = state
            .store
            .requests
            .iter()
            .map(|(_, path, v, _)| {
                let path = path.to_ascii_lowercase();
                let kind = path
                    .rsplit_once("/providers/")
                    .map(|(_, k)| k.split('/').take(2).collect::<Vec<_>>().join("/"))
                    .unwrap_or_default();
                (kind, v.as_str())
            })
            .collect();
        let expected: std::collections::BTreeSet<(String, &str)> = [
            ("microsoft.compute/virtualmachines", "2024-07-01"),
            ("microsoft.compute/disks", "2025-01-02"),
            ("microsoft.network/networkinterfaces", "2024-05-01"),
            ("microsoft.network/publicipaddresses", "2024-05-01"),
            ("microsoft.compute/locations", "2024-07-01"),
            ("microsoft.compute/locations", "2025-01-02"),
            ("microsoft.network/locations", "2024-05-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let unexpected: Vec<_> = versions.difference(&expected).collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        assert!(
            versions.contains(&("microsoft.compute/disks".into(), "2025-01-02")),
            "the disk is deleted at the disks' own version: {versions:?}"
        );
    }
    assert!(
        !format!("{p:?}").contains("Adm1n-Passw0rd") && !format!("{p:?}").contains(CLIENT_SECRET)
    );

    assert!(
        server.state.lock().unwrap().store.resources.is_empty(),
        "VM, NIC, IP and disk are gone"
    );
    p.destroy(&vm.vm_id).await.unwrap();
}

#[tokio::test]
async fn custom_data_is_limited_to_64_kib() {
    let server = ArmServer::start().await;
    let p = AzureProvider::builder(config(&server, WINDOWS))
        .build()
        .unwrap();
    p.create(&spec("azure-limit", 1, &"x".repeat(65_535)))
        .await
        .unwrap();
    let err = p
        .create(&spec("azure-limit", 2, &"x".repeat(65_536)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::InvalidRequest(
            "the startup script is 65536 bytes, over the 65535-byte Azure custom-data limit".into()
        )
    );
}

#[tokio::test]
async fn lists_across_pages_by_owner() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.page_size = 2;
    let p = AzureProvider::builder(config(
        &server,
        "azure_ssh_public_key = \"ssh-ed25519 AAAA test\"",
    ))
    .build()
    .unwrap();
    for n in 0..5 {
        p.create(&spec("azure-pages", n, "#!/bin/sh\n"))
            .await
            .unwrap();
    }
    p.create(&spec("someone-else", 99, "#!/bin/sh\n"))
        .await
        .unwrap();
    assert_eq!(p.list("azure-pages").await.unwrap().len(), 5);
    let lists = server
        .state
        .lock()
        .unwrap()
        .store
        .requests
        .iter()
        .filter(|r| r.1.to_ascii_lowercase().ends_with("/virtualmachines"))
        .count();
    assert!(
        lists >= 3,
        "followed nextLink over 3 pages ({lists} list requests)"
    );
}

#[tokio::test]
async fn a_failed_vm_create_is_capacity_and_leaves_nothing_behind() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.vm_create_failure = Some((
        "AllocationFailed".into(),
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.".into(),
    ));
    let p = AzureProvider::builder(config(&server, WINDOWS))
        .build()
        .unwrap();
    let err = p.create(&spec("azure-fail", 1, "x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Capacity(m) if m.contains("AllocationFailed")),
        "{err}"
    );
    assert!(
        server.state.lock().unwrap().store.resources.is_empty(),
        "{:?}",
        server
            .state
            .lock()
            .unwrap()
            .store
            .resources
            .keys()
            .collect::<Vec<_>>()
    );
}

/// How many `method` requests the server received whose path contains `part` (lower case).
fn requests(server: &ArmServer, method: &str, part: &str) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(m, path, _, _)| m.as_str() == method && path.to_ascii_lowercase().contains(part))
        .count()
}

#[tokio::test]
async fn a_throttled_create_is_one_attempt_and_the_next_create_makes_the_server() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.faults.push(Fault {
        method: Some(hyper::Method::PUT),
        path_contains: "microsoft.compute/virtualmachines/kasm-".into(),
        status: 429,
        code: "TooManyRequests".into(),
        retry_after: Some(7),
    });
    let p = AzureProvider::builder(config(&server, WINDOWS))
        .build()
        .unwrap();
    let s = spec("azure-throttled", 1, "x");
    let started = std::time::Instant::now();
    let err = p.create(&s).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 7),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "the wait is the controller's: {:?}",
        started.elapsed()
    );
    let vm_puts = || requests(&server, "PUT", "microsoft.compute/virtualmachines/");
    assert_eq!(vm_puts(), 1, "one attempt");
    assert!(
        server.state.lock().unwrap().store.resources.is_empty(),
        "nothing half-made left"
    );
    // The controller's retry.
    let vm = p.create(&s).await.unwrap();
    assert_eq!(vm_puts(), 2);
    assert_eq!(
        p.create(&s).await.unwrap().vm_id,
        vm.vm_id,
        "found, not made again"
    );
    assert_eq!(vm_puts(), 2);
    assert_eq!(
        stored(&server, "microsoft.compute/virtualmachines").len(),
        1
    );
}

#[tokio::test]
async fn a_failed_operation_poll_ends_the_create_and_the_next_create_makes_one_vm() {
    let server = ArmServer::start().await;
    let p = AzureProvider::builder(config(&server, WINDOWS))
        .build()
        .unwrap();
    server.state.lock().unwrap().store.faults.push(Fault {
        method: Some(hyper::Method::GET),
        path_contains: "/operations/".into(),
        status: 503,
        code: "ServiceUnavailable".into(),
        retry_after: None,
    });
    let s = spec("azure-poll", 1, "x");
    let err = p.create(&s).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("ServiceUnavailable")),
        "{err}"
    );
    assert!(
        server.state.lock().unwrap().store.resources.is_empty(),
        "nothing half-made left"
    );
    let vm = p.create(&s).await.unwrap();
    let vms = stored(&server, "microsoft.compute/virtualmachines");
    assert_eq!(vms.len(), 1);
    assert_eq!(p.list("azure-poll").await.unwrap()[0].vm_id, vm.vm_id);
}

#[tokio::test]
async fn bad_configs_are_refused_by_build() {
    let server = ArmServer::start().await;
    let mut c = config(&server, "");
    let err = AzureProvider::builder(c.clone()).build().unwrap_err();
    assert!(
        err.to_string()
            .contains("azure_ssh_public_key or azure_os_password"),
        "{err}"
    );
    c.azure_ssh_public_key = Some("ssh-ed25519 AAAA".into());
    c.azure_config_override = Some(
        toml::from_str::<toml::Value>(
            "o = { properties = { osProfile = { customData = \"eA==\" } } }",
        )
        .unwrap()["o"]
            .clone()
            .try_into()
            .unwrap(),
    );
    let err = AzureProvider::builder(c.clone()).build().unwrap_err();
    assert!(
        err.to_string().contains("customData: set by kasm-scale"),
        "{err}"
    );
    // The override is checked by path against the VM body of Azure's reference.
    for (text, expected) in [
        (
            r#"{"properties": {"hardwareProfile": {"vmSize": 5}}}"#,
            "azure-test: azure_config_override.properties.hardwareProfile.vmSize: invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"properties": {"securityProfile": {"securityTyp": "TrustedLaunch"}}}"#,
            "azure-test: azure_config_override.properties.securityProfile.securityTyp: unknown field `securityTyp`",
        ),
        (
            r#"{"properties": {"osProfile": {"adminPassword": "hunter2"}}}"#,
            "azure-test: azure_config_override.properties.osProfile.adminPassword: set by kasm-scale, cannot be overridden",
        ),
        (
            r#"{"tags": {"kasm-scale:server-id": "x"}}"#,
            "azure-test: azure_config_override.tags.kasm-scale:server-id: an owner tag of kasm-scale",
        ),
    ] {
        c.azure_config_override = Some(serde_json::from_str(text).unwrap());
        let err = AzureProvider::builder(c.clone()).build().unwrap_err();
        assert!(
            matches!(&err, BackendError::InvalidRequest(m) if m.starts_with(expected)),
            "{text}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn ids_that_would_change_the_url_path_are_refused_by_build_and_nothing_is_sent() {
    let server = ArmServer::start().await;
    let good = config(&server, "azure_ssh_public_key = \"ssh-ed25519 AAAA test\"");
    for (field, value, expected) in [
        (
            "azure_resource_group",
            "kasm/providers/Microsoft.Compute/virtualMachines/victim?",
            "azure-test: azure_resource_group: `kasm/providers/Microsoft.Compute/virtualMachines/victim?` has `/`",
        ),
        (
            "azure_resource_group",
            "..",
            "azure-test: azure_resource_group: `..` must not end with a period",
        ),
        (
            "azure_subscription_id",
            "00000000-0000-0000-0000-000000000001/resourceGroups/other",
            "azure-test: azure_subscription_id: `00000000-0000-0000-0000-000000000001/resourceGroups/other` is not a GUID",
        ),
        (
            "azure_tenant_id",
            "common/../organizations",
            "azure-test: azure_tenant_id: `common/../organizations` is not a GUID",
        ),
    ] {
        let mut c = good.clone();
        match field {
            "azure_resource_group" => c.azure_resource_group = value.into(),
            "azure_subscription_id" => c.azure_subscription_id = value.into(),
            _ => c.azure_tenant_id = value.into(),
        }
        let err = AzureProvider::builder(c).build().unwrap_err();
        assert!(
            matches!(&err, BackendError::InvalidRequest(m) if m.starts_with(expected)),
            "{value}: {err}"
        );
    }
    assert!(server.state.lock().unwrap().store.requests.is_empty());
    assert_eq!(server.issued(), 0);
}

#[tokio::test]
async fn a_hung_resource_manager_times_out_as_transient() {
    let server = ArmServer::start().await;
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(&server, "azure_ssh_public_key = \"ssh-ed25519 AAAA test\"");
    c.azure_resource_manager_url = Some(format!("http://{}", silent.local_addr().unwrap()));
    let p = AzureProvider::builder(c)
        .request_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = p.list("x").await.unwrap_err();
    assert!(matches!(err, BackendError::Transient(_)), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn tokens_are_asked_for_the_configured_clouds_resource_manager() {
    let server = ArmServer::start().await;
    let extra =
        "azure_ssh_public_key = \"ssh-ed25519 AAAA test\"\nazure_authority = \"AzureUSGovernment\"";
    let p = AzureProvider::builder(config(&server, extra))
        .build()
        .unwrap();
    p.list("x").await.unwrap();
    assert_eq!(
        server.state.lock().unwrap().scopes,
        vec!["https://management.usgovcloudapi.net/.default".to_owned()],
        "the audience stays the cloud's even with azure_resource_manager_url overridden"
    );
}
