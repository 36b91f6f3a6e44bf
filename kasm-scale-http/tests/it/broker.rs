//! The broker API through the router: keys (missing, wrong, two during a rotation, none
//! configured), pools, sessions assigned and queued, servers, the event stream.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{NEW_KEY, OLD_KEY, World, broker_keys, fixture, world, world_with};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn with_key(key: &str, request: axum::http::request::Builder) -> axum::http::request::Builder {
    request.header(header::AUTHORIZATION, format!("Bearer {key}"))
}

async fn call(w: &World, key: Option<&str>, method: &str, uri: &str) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = with_key(key, builder);
    }
    w.send(builder.body(Body::empty()).unwrap()).await
}

/// Ready servers: the guests check in through the API.
async fn ready(w: &World) {
    w.tick().await;
    for (_, token) in w.tokens() {
        let (status, _) = w
            .post(
                &format!("/api/set_server_status?token={token}"),
                json!({"status": "running"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn keys_are_checked_and_rotate() {
    let w = world().await;
    let (status, body) = call(&w, None, "GET", "/api/v1/pools").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_message"], "missing Authorization: Bearer <key>");
    let wrong = "x".repeat(40);
    let (status, body) = call(&w, Some(&wrong), "GET", "/api/v1/pools").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_message"], "wrong API key");
    assert!(!body.to_string().contains(&wrong));
    for key in [OLD_KEY, NEW_KEY] {
        let (status, _) = call(&w, Some(key), "GET", "/api/v1/pools").await;
        assert_eq!(status, StatusCode::OK, "both keys work during a rotation");
    }
    // The rotation ends: the old key is removed from the config.
    let rotated = fixture().toml(&broker_keys(&[NEW_KEY])).to_toml();
    let w = world_with(&rotated).await;
    let (status, _) = call(&w, Some(OLD_KEY), "GET", "/api/v1/pools").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&w, Some(NEW_KEY), "GET", "/api/v1/pools").await;
    assert_eq!(status, StatusCode::OK);
    // No keys at all: the API is off.
    let off = fixture().to_toml();
    let w = world_with(&off).await;
    let (status, body) = call(&w, Some(NEW_KEY), "GET", "/api/v1/servers").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error_message"],
        "the broker API is off: configure broker_api.keys"
    );
    // The guest API does not need a key.
    let (status, _) = w.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn sessions_are_assigned_then_queued_and_end() {
    let w = world().await;
    let key = Some(NEW_KEY);
    let (_, body) = call(&w, key, "GET", "/api/v1/pools").await;
    assert_eq!(body["pools"][0]["pool"], "p");
    assert_eq!(body["pools"][0]["free_sessions"], 0);
    ready(&w).await;
    let (_, body) = call(&w, key, "GET", "/api/v1/pools").await;
    assert_eq!(body["pools"][0]["free_sessions"], 2, "{body}");
    assert_eq!(body["pools"][0]["servers"]["running"], 2);

    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (status, body) = call(&w, key, "POST", "/api/v1/pools/p/sessions").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["state"], "assigned");
        assert!(
            body["server"]["hostname"]
                .as_str()
                .unwrap()
                .starts_with("KASM-")
        );
        assert!(body["server"]["address"].as_str().is_some(), "{body}");
        sessions.push(body["session"].as_u64().unwrap());
    }
    // Full (single-session servers): the next request waits, first in line.
    let (status, body) = w
        .send(
            with_key(NEW_KEY, Request::post("/api/v1/pools/p/sessions"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"user": "ada"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["position"], 1);
    let waiting = body["session"].as_u64().unwrap();
    let (_, body) = call(&w, key, "GET", &format!("/api/v1/sessions/{waiting}")).await;
    assert_eq!(body["position"], 1);
    let (_, body) = call(&w, key, "GET", "/api/v1/pools").await;
    assert_eq!(body["pools"][0]["waiting"], 1);
    assert_eq!(body["pools"][0]["used_sessions"], 2);

    let (status, _) = call(
        &w,
        key,
        "DELETE",
        &format!("/api/v1/sessions/{}", sessions[0]),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &w,
        key,
        "DELETE",
        &format!("/api/v1/sessions/{}", sessions[0]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(&w, key, "GET", "/api/v1/sessions/..%2F..%2Fetc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&w, key, "POST", "/api/v1/pools/nope/sessions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_message"], "no pool `nope`");

    let (_, body) = call(&w, key, "GET", "/api/v1/servers").await;
    let servers = body["servers"].as_array().unwrap();
    assert!(servers.len() >= 2);
    assert!(
        servers
            .iter()
            .all(|s| s["reported_status"].is_string() || s["state"] != "running")
    );
}

#[tokio::test(start_paused = true)]
async fn events_stream_as_server_sent_events() {
    let w = world().await;
    let response = w
        .app
        .clone()
        .oneshot(
            with_key(NEW_KEY, Request::get("/api/v1/events"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    w.tick().await;
    let mut seen = String::new();
    while !seen.contains("\"event\":\"provisioning\"") {
        let frame = body.frame().await.expect("an event").unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let line = seen
        .lines()
        .find(|l| l.contains("provisioning"))
        .unwrap()
        .strip_prefix("data: ")
        .unwrap();
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["config"], "c");
    assert_eq!(event["cause"], "below_minimum");
}

/// Several replicas: a follower serves reads, refuses writes with `503`, `Retry-After` and the
/// leader's address, and is not ready; once it leads, it is ready and serves writes.
#[tokio::test(start_paused = true)]
async fn a_follower_refuses_writes_with_the_leaders_address_and_serves_reads() {
    let w = world().await;
    let key = Some(NEW_KEY);
    ready(&w).await;
    let (_, token) = w.tokens().pop().expect("a server with a token");
    w.scaler.step_down(Some("https://10.0.0.7:8443".into()));

    let request = Request::post("/api/v1/pools/p/sessions")
        .header(header::AUTHORIZATION, format!("Bearer {NEW_KEY}"))
        .body(Body::empty())
        .unwrap();
    let response = w.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["leader"], "https://10.0.0.7:8443", "{body}");

    let (status, body) = w
        .post(
            &format!("/api/set_server_status?token={token}"),
            json!({"status": "running"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a check-in is a write: {body}"
    );
    assert_eq!(body["leader"], "https://10.0.0.7:8443");

    let (status, body) = call(&w, key, "GET", "/api/v1/pools").await;
    assert_eq!(status, StatusCode::OK, "reads are served: {body}");
    assert_eq!(body["pools"][0]["free_sessions"], 2, "{body}");

    let (status, body) = w.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["role"]["role"], "follower", "{body}");
    assert_eq!(body["role"]["leader"], "https://10.0.0.7:8443");

    w.scaler.lead(7);
    w.tick().await;
    let (status, body) = w.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"]["role"], "leader");
    assert_eq!(body["role"]["epoch"], 7);
    let (status, body) = call(&w, key, "POST", "/api/v1/pools/p/sessions").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(start_paused = true)]
async fn the_bearer_scheme_is_case_insensitive_and_only_a_whole_key_matches() {
    let w = world().await;
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let response = w
            .send(
                axum::http::Request::get("/api/v1/pools")
                    .header(header::AUTHORIZATION, format!("{scheme} {NEW_KEY}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.0, StatusCode::OK, "scheme {scheme}");
    }
    // A prefix, an extension or an empty key of a configured one never matches.
    for wrong in [&NEW_KEY[..10], &format!("{NEW_KEY}x"), ""] {
        let (status, _) = call(&w, Some(wrong), "GET", "/api/v1/pools").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let response = w
        .send(
            axum::http::Request::get("/api/v1/pools")
                .header(header::AUTHORIZATION, format!("Basic {NEW_KEY}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED, "another scheme");
}
