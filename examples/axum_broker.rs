//! An existing axum broker app with kasm-scale mounted in it: the broker keeps its own routes
//! behind its own login check (a middleware), and kasm-scale's router adds the guests' check-in
//! API, its broker API (with its own keys) and the health probes next to them. Each side's auth
//! guards only its own routes: a guest checking in never sees the broker's login, and a
//! logged-in user of the broker cannot call kasm-scale's API without one of its keys.
//!
//! Every request goes through the app as a served request would (tower's `oneshot`). Runs on
//! tokio's paused clock against the in-memory cloud, so it finishes at once:
//! `cargo run --example axum_broker --features http`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use kasm_scale::config::VmProviderConfig;
use kasm_scale::memory::token_in;
use kasm_scale::prelude::*;
use tower::ServiceExt;

/// The broker's configuration of kasm-scale. `broker_api.keys` are kasm-scale's own bearer keys
/// for its JSON API (`/api/v1/...`); they are not the broker's user logins.
const CONFIG: &str = r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "broker.example.com"

[broker_api]
keys = ["kasm-scale-api-key-0123456789abcdefghijkl"]

[[vm_providers]]
provider = "memory"
name = "cloud"
max_instances = 4
startup_script = "#!/bin/sh\ncurl -d '{{\"token\":\"{checkin_jwt}\"}}' https://{upstream_auth_address}/api/set_server_status\n"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-cloud"
vm_provider_config_id = "cloud"
connection_type = "RDP"
minimum_pool_standby_sessions = 1
require_checkin = true
"##;

/// kasm-scale's API key from [`CONFIG`], as the broker's own back office would hold it.
const API_KEY: &str = "kasm-scale-api-key-0123456789abcdefghijkl";

/// Who is logged in to the broker: its own session cookies (a real broker checks them against
/// its user database or identity provider).
#[derive(Clone)]
struct Logins(Arc<HashMap<&'static str, &'static str>>);

/// The user a request of the broker's own routes runs as (set by [`require_login`]).
#[derive(Clone)]
struct User(String);

/// The broker's own auth: a `session=` cookie that names a logged-in user, or 401. Applied with
/// `route_layer` to the broker's routes only, before kasm-scale's router is merged in.
async fn require_login(State(logins): State<Logins>, mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| {
            cookies
                .split(';')
                .find_map(|c| c.trim().strip_prefix("session="))
        })
        .and_then(|session| logins.0.get(session).copied());
    match user {
        Some(user) => {
            request.extensions_mut().insert(User(user.to_owned()));
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "log in to the broker first").into_response(),
    }
}

/// The broker's own route: "give me a desktop". It calls the embedded controller directly (no
/// HTTP between the broker and kasm-scale: it is a library in the same process).
async fn launch(
    State(scaler): State<Autoscaler>,
    Extension(User(user)): Extension<User>,
    Path(pool): Path<String>,
) -> Response {
    let request = SessionRequest {
        user: Some(user.clone()),
        request_id: None,
        second_session: false,
    };
    match scaler.request_session(&pool, &request).await {
        Ok(SessionOutcome::Assigned { session, server }) => Json(serde_json::json!({
            "user": user, "session": session.0, "server": server.to_string(),
        }))
        .into_response(),
        Ok(SessionOutcome::Queued { session }) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "user": user, "queued": session.0 })),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// One request through the app: its status and its body as text.
async fn call(
    app: &Router,
    request: Request<Body>,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    let answer = app.clone().oneshot(request).await?;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = load_str(CONFIG, Format::Toml)?.config;
    let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else {
        return Err("the example's config has one memory cloud".into());
    };
    let cloud = Arc::new(MemoryCloud::new(memory, 7));
    let scaler = Autoscaler::builder(config)
        .owner_id("example-axum-broker")
        .provider(cloud.clone())
        .build()?;

    // The broker's app as it was before kasm-scale: its routes and its login middleware.
    let logins = Logins(Arc::new(HashMap::from([("c00kie-of-alice", "alice")])));
    let broker = Router::new()
        .route("/broker/pools/{pool}/launch", get(launch))
        .route_layer(middleware::from_fn_with_state(logins, require_login))
        .with_state(scaler.clone());
    // kasm-scale mounted beside it, in one line. Its routes carry their own auth (check-in
    // tokens for guests, `broker_api.keys` for its API); the broker's middleware is not on them.
    let app = broker.merge(kasm_scale::http::router(scaler.clone()));

    // The controller makes its standby server; its guest checks in through the app without
    // any broker login (its check-in token is its credential).
    for _ in 0..12 {
        scaler.tick().await;
        scaler.settle().await;
        for checkin in cloud.due_checkins() {
            let Some(token) = token_in(checkin.startup_script.expose()) else {
                continue;
            };
            let request = Request::post(format!("/api/set_server_status?token={token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"status": "running"}"#))?;
            let (status, _) = call(&app, request).await?;
            println!("guest check-in (no broker login): {status}");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    let launch = |cookie: Option<&str>| {
        let request = Request::get("/broker/pools/desktops/launch");
        match cookie {
            Some(c) => request.header(header::COOKIE, c),
            None => request,
        }
        .body(Body::empty())
    };
    let (status, body) = call(&app, launch(None)?).await?;
    println!("broker route without a login: {status} {body}");
    let (status, body) = call(&app, launch(Some("session=forged"))?).await?;
    println!("broker route with an unknown session: {status} {body}");
    let (status, body) = call(&app, launch(Some("theme=dark; session=c00kie-of-alice"))?).await?;
    println!("broker route as alice: {status} {body}");

    // kasm-scale's own API: its keys, not the broker's cookies.
    let pools = |auth: Option<&str>| {
        let request =
            Request::get("/api/v1/pools").header(header::COOKIE, "session=c00kie-of-alice");
        match auth {
            Some(a) => request.header(header::AUTHORIZATION, a),
            None => request,
        }
        .body(Body::empty())
    };
    let (status, _) = call(&app, pools(None)?).await?;
    println!("kasm-scale API with the broker's cookie only: {status}");
    let (status, body) = call(&app, pools(Some(&format!("Bearer {API_KEY}")))?).await?;
    let pools: serde_json::Value = serde_json::from_str(&body)?;
    let free: Vec<String> = pools["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} ({} used)", p["pool"], p["used_sessions"]))
        .collect();
    println!(
        "kasm-scale API with its key: {status}, pools {}",
        free.join(", ")
    );
    let (status, body) = call(&app, Request::get("/healthz").body(Body::empty())?).await?;
    println!("health probe: {status} {body}");
    Ok(())
}
