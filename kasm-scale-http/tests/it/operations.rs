//! The day-two routes through the router: drains (made, listed with their age, ended, refused
//! for an unknown target or a bad body), generations after a reload, the resume of a rollout
//! that is not paused, and a user's second request answered with their own session.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{NEW_KEY, World, broker_keys, fixture, world, world_with};
use serde_json::{Value, json};

async fn call(w: &World, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {NEW_KEY}"));
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    };
    w.send(request.unwrap()).await
}

#[tokio::test(start_paused = true)]
async fn drains_are_made_listed_with_their_age_and_ended() {
    let w = world().await;
    w.tick().await;
    let (status, body) = call(&w, "GET", "/api/v1/drains", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"drains": []}));

    let drain = json!({
        "target": {"kind": "pool", "name": "p"},
        "by": "ops@example.com",
        "reason": "patch night",
        "then": "keep",
    });
    let (status, body) = call(&w, "POST", "/api/v1/drains", Some(drain)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["target"], json!({"kind": "pool", "name": "p"}));
    assert_eq!(body["by"], "ops@example.com");
    assert_eq!(body["then"], "keep");
    assert_eq!(body["age_seconds"], 0);

    tokio::time::advance(Duration::from_secs(90)).await;
    let (status, body) = call(&w, "GET", "/api/v1/drains", None).await;
    assert_eq!(status, StatusCode::OK);
    let drains = body["drains"].as_array().unwrap();
    assert_eq!(drains.len(), 1, "{body}");
    assert_eq!(drains[0]["reason"], "patch night");
    assert!(
        drains[0]["age_seconds"].as_i64().unwrap() >= 90,
        "its age: {body}"
    );

    let (status, body) = call(&w, "DELETE", "/api/v1/drains/pool/p", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], "patch night");
    let (status, body) = call(&w, "DELETE", "/api/v1/drains/pool/p", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_message"], "pool:p is not drained");
    let (_, body) = call(&w, "GET", "/api/v1/drains", None).await;
    assert_eq!(body, json!({"drains": []}));
}

#[tokio::test(start_paused = true)]
async fn a_drain_of_what_does_not_exist_or_that_cannot_be_is_refused_with_the_reason() {
    let w = world().await;
    w.tick().await;
    let server = w.scaler.servers()[0].id;
    let cases = [
        (
            json!({"target": {"kind": "config", "name": "nope"}, "by": "a", "reason": "b"}),
            StatusCode::NOT_FOUND,
            "no auto-scale config `nope`".to_owned(),
        ),
        (
            json!({"target": {"kind": "pool", "name": "nope"}, "by": "a", "reason": "b"}),
            StatusCode::NOT_FOUND,
            "no pool `nope`".to_owned(),
        ),
        (
            json!({"target": {"kind": "server", "name": uuid::Uuid::from_u128(1)}, "by": "a", "reason": "b"}),
            StatusCode::NOT_FOUND,
            format!("no server {}", uuid::Uuid::from_u128(1)),
        ),
        (
            json!({"target": {"kind": "server", "name": server}, "by": " ", "reason": "b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid drain: `by` must be 1 to 512 characters, got 1".to_owned(),
        ),
        (
            json!({"target": {"kind": "server", "name": server}, "by": "a", "reason": "b", "until": "2000-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid drain: `until` 2000-01-01T00:00:00Z is not after now".to_owned(),
        ),
    ];
    for (body, status, reason) in cases {
        let (got, answer) = call(&w, "POST", "/api/v1/drains", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error_message"].as_str().unwrap();
        assert!(message.starts_with(&reason), "{body}: {message}");
    }
    // A body of another shape names the field.
    let (status, answer) = call(
        &w,
        "POST",
        "/api/v1/drains",
        Some(json!({"target": {"kind": "host", "name": "x"}, "by": "a", "reason": "b"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error_message"]
            .as_str()
            .unwrap()
            .starts_with("body.target"),
        "{answer}"
    );
    let (status, answer) = call(&w, "DELETE", "/api/v1/drains/server/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = call(&w, "DELETE", "/api/v1/drains/host/x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a key, nothing.
    let (status, _) = w
        .send(Request::get("/api/v1/drains").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(w.scaler.drains().is_empty());
}

#[tokio::test(start_paused = true)]
async fn generations_show_outdated_servers_after_a_new_image_and_resume_needs_a_pause() {
    let w = world().await;
    w.tick().await;
    let (status, body) = call(&w, "GET", "/api/v1/generations", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["generations"][0];
    assert_eq!(first["pool"], "p");
    assert_eq!(first["current"], 2, "{body}");
    assert_eq!(first["outdated"], 0);
    let before = first["generation"].clone();
    assert!(before.is_string(), "{body}");

    // A new startup script is a new generation: the two servers are outdated.
    let text = fixture()
        .startup_script("echo patched {checkin_jwt}")
        .toml(&broker_keys(&[NEW_KEY]))
        .to_toml();
    let config = kasm_scale_core::load_str(&text, kasm_scale_core::config::Format::Toml)
        .unwrap()
        .config;
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory")
    };
    let changes = w
        .scaler
        .reconfiguration(config)
        .provider(std::sync::Arc::new(w.cloud.with_config(m)))
        .apply()
        .await
        .unwrap();
    assert_eq!(changes.new_generations.len(), 1, "{changes:?}");
    let (_, body) = call(&w, "GET", "/api/v1/generations", None).await;
    let now = &body["generations"][0];
    assert_ne!(now["generation"], before, "{body}");
    assert_eq!(now["outdated"], 2, "{body}");
    assert_eq!(now["current"], 0, "{body}");

    let config = now["config"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &w,
        "POST",
        &format!("/api/v1/rollouts/{config}/resume"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["error_message"],
        format!("no rollout of `{config}` is paused")
    );
    let (status, body) = call(&w, "POST", "/api/v1/rollouts/nope/resume", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_message"], "no auto-scale config `nope`");
}

use kasm_scale_core::config::VmProviderConfig;

#[tokio::test(start_paused = true)]
async fn a_users_second_request_is_their_session_unless_they_ask_for_another() {
    let text = fixture()
        .require_checkin(false)
        .toml(&broker_keys(&[NEW_KEY]))
        .to_toml();
    let w = world_with(&text).await;
    w.tick().await;
    w.tick().await;
    let ask = |body: Value| call(&w, "POST", "/api/v1/pools/p/sessions", Some(body));
    let (status, first) = ask(json!({"user": "alice"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["reconnected"], false);
    let (status, again) = ask(json!({"user": "alice"})).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["reconnected"], true, "{again}");
    assert_eq!(again["session"], first["session"]);
    assert_eq!(again["server"]["id"], first["server"]["id"]);
    let (status, second) = ask(json!({"user": "alice", "second_session": true})).await;
    assert!(status.is_success(), "{second}");
    assert_eq!(second["reconnected"], false);
    assert_ne!(second["session"], first["session"]);
}
