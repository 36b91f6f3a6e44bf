//! AzureCredential against the ARM test server's token endpoint.

use crate::support;

use std::time::Duration;

use kasm_scale_azure::{AzureCredential, CloudEndpoints};
use kasm_scale_core::Secret;
use kasm_scale_core::config::AzureAuthority;
use kasm_scale_core::traits::BackendError;
use support::{ArmServer, CLIENT_ID, CLIENT_SECRET, TENANT};

fn credential(server: &ArmServer, secret: &str) -> AzureCredential {
    AzureCredential::new(
        reqwest::Client::new(),
        &server.url,
        TENANT,
        CLIENT_ID,
        Secret::new(secret),
        "https://management.azure.com",
    )
}

#[tokio::test]
async fn tokens_are_cached_shared_and_refreshed_before_expiry() {
    let server = ArmServer::start().await;
    let c = std::sync::Arc::new(credential(&server, CLIENT_SECRET));
    let first = c.token().await.unwrap();
    assert_eq!(c.token().await.unwrap().expose(), first.expose());
    assert_eq!(server.issued(), 1, "a 1-hour token is reused");

    c.invalidate().await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.token().await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.iter().all(|t| t.expose() == tokens[0].expose()));
    assert_eq!(server.issued(), 2, "concurrent callers share one fetch");

    // A 2-second token is fetched again after 90% of its life.
    server.state.lock().unwrap().token_lifetime = 2;
    c.invalidate().await;
    let short = c.token().await.unwrap();
    assert_eq!(c.token().await.unwrap().expose(), short.expose());
    tokio::time::sleep(Duration::from_millis(1900)).await;
    let renewed = c.token().await.unwrap();
    assert_ne!(renewed.expose(), short.expose());
    assert_eq!(server.issued(), 4);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(CLIENT_SECRET) && !shown.contains("test-token"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_names_aads_reason_but_not_the_secret() {
    let server = ArmServer::start().await;
    let err = credential(&server, "wrong-secret")
        .token()
        .await
        .unwrap_err();
    let BackendError::Auth(message) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        message,
        &format!(
            "cannot get a token for {CLIENT_ID}: invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."
        )
    );
    assert!(!message.contains("wrong-secret"));
}

#[tokio::test]
async fn an_unavailable_authority_is_transient() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().token_fault = Some(503);
    let err = credential(&server, CLIENT_SECRET)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Transient(_)), "{err}");
    let closed = AzureCredential::new(
        reqwest::Client::new(),
        "http://127.0.0.1:9",
        TENANT,
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
        "https://management.azure.com",
    );
    let err = closed.token().await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Transient(m) if m.contains("cannot reach")),
        "{err}"
    );
}

#[tokio::test]
async fn a_throttled_authority_is_rate_limited_with_its_retry_after() {
    let server = ArmServer::start().await;
    server.state.lock().unwrap().token_fault = Some(429);
    let err = credential(&server, CLIENT_SECRET)
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::RateLimited { retry_after: Some(d), message } if d.as_secs() == 5 && message.contains("temporarily_unavailable")),
        "{err}"
    );
}

#[test]
fn each_cloud_has_its_authority_and_resource_manager() {
    let e = CloudEndpoints::of(AzureAuthority::Government);
    assert_eq!(e.authority, "https://login.microsoftonline.us");
    assert_eq!(e.resource_manager, "https://management.usgovcloudapi.net");
    let e = CloudEndpoints::of(AzureAuthority::China);
    assert_eq!(e.authority, "https://login.chinacloudapi.cn");
    assert_eq!(e.resource_manager, "https://management.chinacloudapi.cn");
    let e = CloudEndpoints::of(AzureAuthority::Public);
    assert_eq!(e.resource_manager, "https://management.azure.com");
}

#[tokio::test]
async fn the_tenant_is_one_segment_of_the_token_url_whatever_it_holds() {
    let server = ArmServer::start().await;
    let c = AzureCredential::new(
        reqwest::Client::new(),
        &server.url,
        "x/../../elsewhere?y=1#z",
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
        "https://management.azure.com",
    );
    let shown = format!("{c:?}");
    assert!(
        shown.contains(&format!(
            "{}/x%2F..%2F..%2Felsewhere%3Fy%3D1%23z/oauth2/v2.0/token",
            server.url
        )),
        "{shown}"
    );
    for tenant in [".", ".."] {
        let c = AzureCredential::new(
            reqwest::Client::new(),
            &server.url,
            tenant,
            CLIENT_ID,
            Secret::new(CLIENT_SECRET),
            "https://management.azure.com",
        );
        let shown = format!("{c:?}");
        let encoded = tenant.replace('.', "%2E");
        assert!(shown.contains(&format!("/{encoded}/oauth2/")), "{shown}");
    }
    // The test server knows no such tenant: the secret went to that one path only.
    let err = c.token().await.unwrap_err();
    assert!(matches!(err, BackendError::Auth(_)), "{err}");
    assert_eq!(server.issued(), 0);
}
