//! ResourceManager against the ARM test server: api-versions, long-running operations, token
//! renewal on 401, throttling, faults and error classes.

mod support;

use std::time::{Duration, Instant};

use kasm_scale_azure::{AzureCredential, NETWORK_API_VERSION, ResourceManager, classify};
use kasm_scale_core::Secret;
use kasm_scale_core::traits::BackendError;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::resources::Fault;
use support::{ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

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
            "get NIC: InvalidApiVersionParameter: The api-version '2019-01-01' is invalid. The supported versions are '2024-05-01'.".into()
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

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_classified() {
    let server = ArmServer::start().await;
    let arm = arm(&server);
    server.state.lock().unwrap().store.faults.extend([
        fault(Method::GET, "n4", 429, "TooManyRequests", Some(1)),
        fault(Method::GET, "n4", 503, "ServiceUnavailable", None),
    ]);
    let started = Instant::now();
    let err = arm
        .send(
            Method::GET,
            &nic("n4"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::NotFound(_)),
        "served after the faults: {err}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    server
        .state
        .lock()
        .unwrap()
        .store
        .faults
        .extend((0..5).map(|_| fault(Method::GET, "n5", 429, "TooManyRequests", Some(0))));
    let err = arm
        .send(
            Method::GET,
            &nic("n5"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::RateLimited { retry_after: Some(d), .. } if d == Duration::ZERO),
        "{err}"
    );
    server.state.lock().unwrap().store.faults.push(fault(
        Method::GET,
        "n6",
        429,
        "TooManyRequests",
        Some(3600),
    ));
    let err = arm
        .send(
            Method::GET,
            &nic("n6"),
            NETWORK_API_VERSION,
            None,
            "get NIC",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "a long Retry-After goes back to the caller: {err}"
    );
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
    let answer = kasm_scale_azure::Answer {
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
