//! ResourceManager against the ARM test server (`tests/support`, shared with the integration
//! tests): api-versions, long-running operations, token renewal on 401, one attempt per request
//! with its class, pacing and error classes.

use std::time::{Duration, Instant};

use kasm_scale_core::Secret;
use kasm_scale_core::traits::BackendError;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Answer, NETWORK_API_VERSION, ResourceManager, VM_API_VERSION, classify};
use crate::auth::AzureCredential;
use crate::test_support::resources::Fault;
use crate::test_support::{ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/kasm";

fn arm(server: &ArmServer) -> ResourceManager {
    let credential = AzureCredential::new(
        reqwest::Client::new(),
        &server.url,
        TENANT,
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
        "https://management.azure.com",
    );
    ResourceManager::new(reqwest::Client::new(), &server.url, credential)
}

fn nic_body() -> serde_json::Value {
    json!({
        "location": "eastus",
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": format!("{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s")}
        }}]}
    })
}

fn nic(name: &str) -> String {
    format!("{RG}/providers/Microsoft.Network/networkInterfaces/{name}")
}

fn fault(method: Method, path: &str, status: u16, code: &str, retry_after: Option<u64>) -> Fault {
    Fault {
        method: Some(method),
        path_contains: path.to_ascii_lowercase(),
        status,
        code: code.into(),
        retry_after,
    }
}

#[tokio::test]
async fn puts_follow_their_operation_and_gets_see_the_result() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let body = nic_body();
    let created = arm
        .send(
            Method::PUT,
            &nic("n1"),
            NETWORK_API_VERSION,
            Some(&body),
            "create NIC",
        )
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED);
    arm.wait(&created, NETWORK_API_VERSION, "create NIC")
        .await
        .unwrap();
    let got = arm
        .send(
            Method::GET,
            &nic("n1"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap();
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");

    let deleted = arm
        .send(
            Method::DELETE,
            &nic("n1"),
            NETWORK_API_VERSION,
            None,
            "delete NIC",
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    arm.wait(&deleted, NETWORK_API_VERSION, "delete NIC")
        .await
        .unwrap();
    let err = arm
        .send(
            Method::GET,
            &nic("n1"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::NotFound(_)), "{err}");
    let again = arm
        .send(
            Method::DELETE,
            &nic("n1"),
            NETWORK_API_VERSION,
            None,
            "delete NIC",
        )
        .await
        .unwrap();
    assert_eq!(again.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_wrong_api_version_or_a_missing_field_is_an_invalid_request_with_arms_words() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let err = arm
        .send(Method::GET, &nic("n1"), "2019-01-01", None, "get NIC")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::InvalidRequest(
            "get NIC: NoRegisteredProviderFound: No registered resource provider found for location 'eastus' and API version '2019-01-01' for type 'networkInterfaces'. The supported api-versions are '2023-09-01, 2023-11-01, 2024-01-01, 2024-03-01, 2024-05-01, 2024-07-01'. The supported locations are 'eastus, westeurope'.".into()
        )
    );
    let err = arm
        .send(
            Method::PUT,
            &nic("n2"),
            NETWORK_API_VERSION,
            Some(&json!({"properties": {}})),
            "create NIC",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest(m) if m.contains("Required property 'location'")),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_token_is_renewed_once() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    arm.send(Method::GET, &nic("x"), NETWORK_API_VERSION, None, "get")
        .await
        .unwrap_err();
    assert_eq!(server.issued(), 1);
    // ARM stops accepting the cached token (revoked, or the clocks disagree about expiry).
    server.state.lock().unwrap().valid_tokens.clear();
    let body = nic_body();
    arm.send(
        Method::PUT,
        &nic("n3"),
        NETWORK_API_VERSION,
        Some(&body),
        "create NIC",
    )
    .await
    .unwrap();
    assert_eq!(server.issued(), 2, "a new token after the 401");
}

/// How many requests the server received whose path contains `part`.
fn requests_to(server: &ArmServer, part: &str) -> usize {
    let state = server.state.lock().unwrap();
    state
        .store
        .requests
        .iter()
        .filter(|(_, path, _, _)| path.to_ascii_lowercase().contains(part))
        .count()
}

#[tokio::test]
async fn throttling_and_server_errors_are_one_attempt_with_their_class() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let get = |name: &'static str| {
        let arm = &arm;
        async move {
            let started = Instant::now();
            let err = arm
                .send(
                    Method::GET,
                    &nic(name),
                    NETWORK_API_VERSION,
                    None,
                    "get NIC",
                )
                .await
                .unwrap_err();
            (err, started.elapsed())
        }
    };
    server.state.lock().unwrap().store.faults.extend([
        fault(Method::GET, "n4", 429, "TooManyRequests", Some(1)),
        fault(Method::GET, "n5", 429, "TooManyRequests", Some(3600)),
        fault(
            Method::GET,
            "n6",
            429,
            "SubscriptionRequestsThrottled",
            None,
        ),
        fault(Method::GET, "n7", 503, "ServiceUnavailable", Some(1)),
        fault(Method::GET, "n8", 500, "InternalServerError", None),
    ]);
    let (err, took) = get("n4").await;
    assert!(
        matches!(&err, BackendError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(1)),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(1),
        "no wait inside the call: {took:?}"
    );
    let (err, _) = get("n5").await;
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(3600)),
        "a long Retry-After goes back to the caller: {err}"
    );
    let (err, _) = get("n6").await;
    assert!(
        matches!(
            &err,
            BackendError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err}"
    );
    let (err, took) = get("n7").await;
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("ServiceUnavailable")),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(1),
        "no wait inside the call: {took:?}"
    );
    let (err, _) = get("n8").await;
    assert!(matches!(err, BackendError::Transient(_)), "{err}");
    for name in ["n4", "n5", "n6", "n7", "n8"] {
        assert_eq!(requests_to(&server, name), 1, "{name}: one attempt");
    }
    let (err, _) = get("n4").await;
    assert!(
        matches!(err, BackendError::NotFound(_)),
        "the fault was served once, the next call is answered: {err}"
    );
}

#[tokio::test]
async fn a_connection_failure_is_one_attempt_and_transient() {
    // Accepts connections and closes them at once, counting them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let server = ArmServer::start().await;
    let credential = AzureCredential::new(
        reqwest::Client::new(),
        &server.url,
        TENANT,
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
        "https://management.azure.com",
    );
    let arm = ResourceManager::new(reqwest::Client::new(), &url, credential);
    let started = Instant::now();
    let err = arm
        .send(Method::GET, &nic("x"), NETWORK_API_VERSION, None, "get NIC")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("cannot reach Resource Manager")),
        "{err}"
    );
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    task.abort();
}

#[tokio::test]
async fn a_failed_poll_ends_the_wait_with_its_class() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let body = nic_body();
    for (name, status, code) in [
        ("p1", 503, "ServiceUnavailable"),
        ("p2", 429, "TooManyRequests"),
    ] {
        let created = arm
            .send(
                Method::PUT,
                &nic(name),
                NETWORK_API_VERSION,
                Some(&body),
                "create NIC",
            )
            .await
            .unwrap();
        assert!(created.headers.contains_key("azure-asyncoperation"));
        let polls = requests_to(&server, "/operations/");
        server.state.lock().unwrap().store.faults.push(fault(
            Method::GET,
            "/operations/",
            status,
            code,
            Some(2),
        ));
        let err = arm
            .wait(&created, NETWORK_API_VERSION, "create NIC")
            .await
            .unwrap_err();
        assert_eq!(
            requests_to(&server, "/operations/"),
            polls + 1,
            "{code}: the failed poll is not sent again"
        );
        let class_ok = match status {
            429 => err.retry_after() == Some(Duration::from_secs(2)),
            _ => matches!(err, BackendError::Transient(_)),
        };
        assert!(class_ok, "{code}: {err}");
        assert!(err.to_string().contains("create NIC: "), "{err}");
    }
}

#[tokio::test]
async fn a_low_remaining_write_budget_slows_calls_down() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    server.state.lock().unwrap().store.remaining_writes = Some(0);
    arm.send(Method::GET, &nic("a"), NETWORK_API_VERSION, None, "get")
        .await
        .unwrap_err();
    let started = Instant::now();
    arm.send(Method::GET, &nic("a"), NETWORK_API_VERSION, None, "get")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    server.state.lock().unwrap().store.remaining_writes = Some(1000);
    arm.send(Method::GET, &nic("a"), NETWORK_API_VERSION, None, "get")
        .await
        .unwrap_err();
    let started = Instant::now();
    arm.send(Method::GET, &nic("a"), NETWORK_API_VERSION, None, "get")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1000));
}

#[test]
fn arm_error_codes_map_to_the_core_classes() {
    let class = |status: u16, code: &str, message: &str| {
        let body = json!({"error": {"code": code, "message": message}});
        match classify(StatusCode::from_u16(status).unwrap(), &body, "op") {
            BackendError::Capacity(_) => "capacity",
            BackendError::Quota(_) => "quota",
            BackendError::Auth(_) => "auth",
            BackendError::Permission(_) => "permission",
            BackendError::InvalidRequest(_) => "invalid request",
            BackendError::NotFound(_) => "not found",
            BackendError::Conflict(_) => "conflict",
            BackendError::Transient(_) => "transient",
            BackendError::RateLimited { .. } => "rate limited",
            _ => "other",
        }
    };
    for (status, code, message, expected) in [
        (409, "SkuNotAvailable", "", "capacity"),
        (200, "AllocationFailed", "", "capacity"),
        (200, "ZonalAllocationFailed", "", "capacity"),
        (409, "OverconstrainedAllocationRequest", "", "capacity"),
        (200, "OverconstrainedZonalAllocationRequest", "", "capacity"),
        (409, "QuotaExceeded", "", "quota"),
        (
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved Total Regional Cores quota.",
            "quota",
        ),
        (
            409,
            "OperationNotAllowed",
            "The VM is being deallocated.",
            "conflict",
        ),
        (403, "AuthorizationFailed", "", "permission"),
        (401, "InvalidAuthenticationToken", "", "auth"),
        (401, "Whatever", "", "auth"),
        (400, "InvalidParameter", "", "invalid request"),
        (404, "ResourceNotFound", "", "not found"),
        (429, "TooManyRequests", "", "rate limited"),
        (
            429,
            "OperationNotAllowed",
            "The server rejected the request because too many requests have been received for this subscription (quota of reads).",
            "rate limited",
        ),
        (500, "InternalServerError", "", "transient"),
        (503, "Unknown", "", "transient"),
    ] {
        assert_eq!(class(status, code, message), expected, "{status} {code}");
    }
}

#[tokio::test]
async fn an_operation_with_only_a_location_is_polled_until_it_stops_answering_202() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().store.lro_delay = Duration::from_millis(300);
    let arm = arm(&server);
    let body = nic_body();
    let created = arm
        .send(
            Method::PUT,
            &nic("n7"),
            NETWORK_API_VERSION,
            Some(&body),
            "create NIC",
        )
        .await
        .unwrap();
    // Keep only a Location pointing at the operation's result, as some ARM operations answer.
    let op = created.headers["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_owned();
    let result = op.replace("?api-version", "/result?api-version");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("location", result.parse().unwrap());
    headers.insert("retry-after", "0".parse().unwrap());
    let answer = Answer {
        status: StatusCode::ACCEPTED,
        headers,
        body: serde_json::Value::Null,
    };
    let started = Instant::now();
    arm.wait(&answer, NETWORK_API_VERSION, "create NIC")
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the operation"
    );
    let got = arm
        .send(
            Method::GET,
            &nic("n7"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap();
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
}

fn vm(name: &str) -> String {
    format!("{RG}/providers/Microsoft.Compute/virtualMachines/{name}")
}

fn vm_body(nic_name: &str, custom_data: &str) -> serde_json::Value {
    json!({
        "location": "eastus",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {"imageReference": {"publisher": "p", "offer": "o", "sku": "s", "version": "latest"},
                "osDisk": {"name": "d1", "createOption": "FromImage"}},
            "osProfile": {"computerName": "k1", "adminUsername": "kasm", "adminPassword": "Adm1n-Passw0rd!", "customData": custom_data},
            "networkProfile": {"networkInterfaces": [{"id": nic(nic_name)}]},
        }
    })
}

#[tokio::test]
async fn the_test_server_is_as_strict_as_arm() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let body = nic_body();
    // Resource groups must exist.
    let elsewhere = nic("n1").replace("resourceGroups/kasm", "resourceGroups/nowhere");
    let err = arm
        .send(
            Method::PUT,
            &elsewhere,
            NETWORK_API_VERSION,
            Some(&body),
            "create NIC",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::NotFound(m) if m.contains("ResourceGroupNotFound: Resource group 'nowhere' could not be found.")),
        "{err}"
    );
    // Operations ask for a non-zero wait between polls, and the client waits for it.
    let created = arm
        .send(
            Method::PUT,
            &nic("n1"),
            NETWORK_API_VERSION,
            Some(&body),
            "create NIC",
        )
        .await
        .unwrap();
    assert_eq!(created.headers["retry-after"], "1");
    let started = Instant::now();
    arm.wait(&created, NETWORK_API_VERSION, "create NIC")
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // An operation is polled at the api-version that started it.
    let op = created.headers["azure-asyncoperation"].to_str().unwrap();
    assert!(
        op.starts_with(&server.url) && op.ends_with("api-version=2024-05-01"),
        "{op}"
    );
    let err = arm
        .send(
            Method::GET,
            &op.replace("2024-05-01", "2024-07-01"),
            VM_API_VERSION,
            None,
            "poll",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("InvalidApiVersionParameter"),
        "{err}"
    );

    // GET never shows the custom data or the administrator password; compute answers carry
    // the throttling header.
    let put = arm
        .send(
            Method::PUT,
            &vm("k1"),
            VM_API_VERSION,
            Some(&vm_body("n1", "YQ==")),
            "create VM",
        )
        .await
        .unwrap();
    let budget = put.headers["x-ms-ratelimit-remaining-resource"]
        .to_str()
        .unwrap();
    assert!(
        budget.starts_with("Microsoft.Compute/PutVM3Min;")
            && budget.contains(",Microsoft.Compute/PutVM30Min;"),
        "{budget}"
    );
    arm.wait(&put, VM_API_VERSION, "create VM").await.unwrap();
    let got = arm
        .send(Method::GET, &vm("k1"), VM_API_VERSION, None, "get VM")
        .await
        .unwrap();
    let os = &got.body["properties"]["osProfile"];
    assert_eq!(os["computerName"], "k1");
    assert!(
        os.get("customData").is_none() && os.get("adminPassword").is_none(),
        "{os}"
    );
    assert!(
        !put.body.to_string().contains("Adm1n"),
        "nor does the PUT's answer"
    );
    // The custom data of a VM cannot change.
    let err = arm
        .send(
            Method::PUT,
            &vm("k1"),
            VM_API_VERSION,
            Some(&vm_body("n1", "Yg==")),
            "update VM",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest(m) if m.contains("PropertyChangeNotAllowed")),
        "{err}"
    );
    arm.send(
        Method::PUT,
        &vm("k1"),
        VM_API_VERSION,
        Some(&vm_body("n1", "YQ==")),
        "update VM",
    )
    .await
    .unwrap();

    // A failed create leaves the VM Failed.
    arm.send(
        Method::PUT,
        &nic("n2"),
        NETWORK_API_VERSION,
        Some(&body),
        "create NIC",
    )
    .await
    .unwrap();
    server.state.lock().unwrap().store.vm_create_failure =
        Some(("OSProvisioningTimedOut".into(), "too slow".into()));
    let put = arm
        .send(
            Method::PUT,
            &vm("k2"),
            VM_API_VERSION,
            Some(&vm_body("n2", "YQ==")),
            "create VM",
        )
        .await
        .unwrap();
    let err = arm
        .wait(&put, VM_API_VERSION, "create VM")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("OSProvisioningTimedOut")),
        "{err}"
    );
    let got = arm
        .send(Method::GET, &vm("k2"), VM_API_VERSION, None, "get VM")
        .await
        .unwrap();
    assert_eq!(got.body["properties"]["provisioningState"], "Failed");

    // nextLink is absolute.
    server.state.lock().unwrap().store.page_size = 1;
    let page = arm
        .send(
            Method::GET,
            &format!("{RG}/providers/Microsoft.Network/networkInterfaces"),
            NETWORK_API_VERSION,
            None,
            "list",
        )
        .await
        .unwrap();
    let next = page.body["nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/subscriptions/", server.url)),
        "{next}"
    );
    let second = arm
        .send(Method::GET, next, NETWORK_API_VERSION, None, "list")
        .await
        .unwrap();
    assert_eq!(second.body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_operation_url_on_another_host_is_refused_without_the_token() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let server = ArmServer::start().await;
    let arm = arm(&server);
    let same_port = server.url.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!(
            "http://127.0.0.1:{port}/subscriptions/s/providers/Microsoft.Compute/locations/eastus/operations/x?api-version=2024-07-01"
        ),
        format!("http://localhost:{same_port}/subscriptions/s/operations/x?api-version=2024-07-01"),
        format!(
            "https://127.0.0.1:{same_port}/subscriptions/s/operations/x?api-version=2024-07-01"
        ),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("azure-asyncoperation", url.parse().unwrap());
        headers.insert("retry-after", "0".parse().unwrap());
        let answer = Answer {
            status: StatusCode::ACCEPTED,
            headers,
            body: serde_json::Value::Null,
        };
        let err = arm
            .wait(&answer, VM_API_VERSION, "create VM")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BackendError::InvalidRequest(m) if m.starts_with("create VM: Resource Manager pointed at ") && m.contains("the token is not sent there")),
            "{url}: {err}"
        );
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    task.abort();
}
