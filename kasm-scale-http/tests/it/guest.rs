//! The guest API and the probes through the router (tower's `oneshot`, no socket): Kasm's
//! requests work; bad tokens, bodies and routes get the documented status and a short reason.

use crate::common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use common::world;
use kasm_scale_core::engine::ServerState;
use serde_json::{Value, json};
use tower::ServiceExt;

fn running() -> Value {
    json!({"status": "running", "status_message": "ready", "status_progress": "100"})
}

fn reason(body: &Value) -> &str {
    body["error_message"].as_str().unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn kasm_check_in_makes_the_server_ready_and_repeats_are_harmless() {
    let w = world().await;
    w.tick().await;
    let tokens = w.tokens();
    assert_eq!(tokens.len(), 2);
    let (id, token) = &tokens[0];
    // Progress as a number is accepted too.
    let (status, body) = w
        .post(
            &format!("/api/set_server_status?token={token}"),
            json!({"status": "installing", "status_progress": 40}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.state(*id), Some(ServerState::Starting));
    for _ in 0..3 {
        let (status, body) = w
            .post(&format!("/api/set_server_status?token={token}"), running())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["server_id"], id.to_string());
        assert_eq!(w.state(*id), Some(ServerState::Running));
    }
    // The token as a body field works the same.
    let (other, token) = &tokens[1];
    let mut with_token = running();
    with_token["token"] = json!(token);
    let (status, _) = w.post("/api/set_server_status", with_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.state(*other), Some(ServerState::Running));
    let shown = w
        .scaler
        .servers()
        .into_iter()
        .find(|s| s.id == *id)
        .and_then(|s| s.reported_status)
        .unwrap();
    assert!(shown.starts_with("running"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn refused_tokens_are_401_with_the_reason_and_never_echoed() {
    let w = world().await;
    w.tick().await;
    let tokens = w.tokens();
    let (id, token) = tokens[0].clone();
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        engine.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut signature = parts[2].to_owned();
    // A character in the middle (the last one also carries padding bits).
    let flipped = if &signature[10..11] == "A" { "B" } else { "A" };
    signature.replace_range(10..11, flipped);
    let tampered = format!("{}.{}.{signature}", parts[0], parts[1]);
    let cases: Vec<(&str, String, &str)> = vec![
        // jsonwebtoken knows no `none` algorithm: the header itself is refused.
        ("alg none", none, "malformed token"),
        ("tampered", tampered, "signature"),
        ("garbage", "not-a-jwt".into(), "malformed"),
    ];
    for (what, bad, why) in &cases {
        let (status, body) = w
            .post(&format!("/api/set_server_status?token={bad}"), running())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(reason(&body).contains(why), "{what}: {body}");
        assert!(!body.to_string().contains(bad.as_str()), "{what} echoed");
    }
    let (status, body) = w.post("/api/set_server_status", running()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason(&body).starts_with("token: missing"), "{body}");
    let mut twice = running();
    twice["token"] = json!(tokens[1].1);
    let (status, body) = w
        .post(&format!("/api/set_server_status?token={token}"), twice)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(w.state(id), Some(ServerState::Starting), "nothing changed");

    // Expired: the token lives 4 hours (verification allows a minute of clock skew).
    tokio::time::advance(Duration::from_secs(4 * 3600 + 300)).await;
    let (status, body) = w
        .post(&format!("/api/set_server_status?token={token}"), running())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason(&body).contains("expired"), "{body}");
    assert!(!body.to_string().contains(&token));
}

#[tokio::test(start_paused = true)]
async fn file_mappings_say_access_denied_until_the_token_names_a_live_server() {
    let w = world().await;
    let (status, body) = w.get("/api/admin/get_server_file_mappings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reason(&body), "Access Denied!");
    w.tick().await;
    let (_, token) = w.tokens()[0].clone();
    let (status, body) = w
        .get(&format!(
            "/api/admin/get_server_file_mappings?token={token}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"file_mappings": []}));
    let (_, body) = w
        .get("/api/admin/get_server_file_mappings?token=eyJhbGciOi.x.y")
        .await;
    assert_eq!(reason(&body), "Access Denied!");
}

#[tokio::test(start_paused = true)]
async fn component_logs_are_taken_with_the_token_and_bounded() {
    let w = world().await;
    w.tick().await;
    let (_, token) = w.tokens()[0].clone();
    let entry = json!({"host": "KASM-1", "application": "install", "levelname": "INFO",
                       "message": "agent installed", "ingest_date": "2026-12-03T10:00:00Z"});
    let (status, body) = w
        .post(
            "/api/component_log",
            json!({"token": token, "logs": [entry, entry]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    let many: Vec<Value> = (0..201).map(|_| entry.clone()).collect();
    let (status, body) = w
        .post("/api/component_log", json!({"token": token, "logs": many}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "body.logs: 201 entries, at most 200");
    let (status, _) = w
        .post("/api/component_log", json!({"token": "x", "logs": []}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn bad_bodies_and_routes_get_the_documented_status() {
    let w = world().await;
    w.tick().await;
    let (_, token) = w.tokens()[0].clone();
    let uri = format!("/api/set_server_status?token={token}");
    // No content type, or another one: 415.
    let (status, body) = w
        .send(
            Request::post(&uri)
                .body(Body::from(running().to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _) = w
        .send(
            Request::post(&uri)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(running().to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Malformed JSON, a missing field, a wrong type: 400 naming where.
    let raw = |text: &'static str| {
        Request::post(&uri)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from(text))
            .unwrap()
    };
    let (status, body) = w.send(raw(r#"{"status": "running""#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "body: not valid JSON (line 1, column 20)");
    let (_, body) = w.send(raw(r#"{"status_message": "x"}"#)).await;
    assert_eq!(reason(&body), "body: missing field `status`");
    let (_, body) = w.send(raw(r#"{"status": ["eyJsecret"]}"#)).await;
    assert_eq!(
        reason(&body),
        "body.status: invalid type: sequence, expected a string"
    );
    // Too large: 413.
    let big = json!({"status": "running", "status_message": "x".repeat(70 * 1024)});
    let response = w
        .app
        .clone()
        .oneshot(
            Request::post(&uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(big.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // No such route (path traversal included): 404.
    for path in [
        "/api/nope",
        "/api/../api/set_server_status/../../etc/passwd",
    ] {
        let (status, body) = w.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reason(&body), "no such route");
    }
}

/// A body that never comes (a slow client).
struct Never;

impl HttpBody for Never {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_comes_times_out() {
    let w = world().await;
    let response = w
        .app
        .clone()
        .oneshot(
            Request::post("/api/set_server_status?token=x")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(Never))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn ready_once_loaded_and_ticking() {
    let w = world().await;
    let (status, body) = w.get("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = w.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    w.tick().await;
    let (status, body) = w.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state_loaded"], true);
    tokio::time::advance(Duration::from_secs(600)).await;
    let (status, _) = w.get("/readyz").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a controller that stopped ticking is not ready"
    );
}

/// A request from `ip` (as the server sees its peer).
fn from(ip: &str, request: Request<Body>) -> Request<Body> {
    let mut request = request;
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_bad_tokens_is_cut_off_and_good_check_ins_go_on() {
    let w = world().await;
    w.tick().await;
    let tokens = w.tokens();
    let check_in = |token: &str| {
        Request::post(format!("/api/set_server_status?token={token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(running().to_string()))
            .unwrap()
    };
    let limit = kasm_scale_http::BAD_TOKEN_BURST as usize;
    let mut refused = 0;
    let mut cut_off = 0;
    for _ in 0..limit * 3 {
        let (status, body) = w.send(from("203.0.113.9", check_in("bad"))).await;
        match status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                cut_off += 1;
                assert!(
                    reason(&body).starts_with("too many refused tokens"),
                    "{body}"
                );
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        refused <= limit + 2,
        "the burst is {limit}: {refused} refused"
    );
    assert!(cut_off >= limit, "{cut_off} cut off");
    // The probe's Access Denied! counts too, and the blocked source gets 429 there as well.
    let response = w
        .app
        .clone()
        .oneshot(from(
            "203.0.113.9",
            Request::get("/api/admin/get_server_file_mappings?token=bad")
                .body(Body::empty())
                .unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    // Another source checks in with a good token at once.
    let (status, body) = w.send(from("198.51.100.7", check_in(&tokens[0].1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Many guests behind one address with good tokens are never limited.
    for _ in 0..limit * 3 {
        let (status, _) = w.send(from("198.51.100.8", check_in(&tokens[1].1))).await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// The rest of the token matrix: a token signed by another controller's key, and the token of a
/// server that was destroyed, are refused; a good token changes its own server only.
#[tokio::test(start_paused = true)]
async fn tokens_of_another_key_or_a_destroyed_server_are_refused_and_touch_no_other_server() {
    let w = world().await;
    w.tick().await;
    let tokens = w.tokens();
    let (first, token) = tokens[0].clone();
    let (second, _) = tokens[1].clone();

    let elsewhere = world().await;
    elsewhere.tick().await;
    let (_, foreign) = elsewhere.tokens()[0].clone();
    let (status, body) = w
        .post(
            &format!("/api/set_server_status?token={foreign}"),
            running(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(reason(&body).contains("signature"), "{body}");
    assert_eq!(w.state(first), Some(ServerState::Starting));
    assert_eq!(w.state(second), Some(ServerState::Starting));

    let (status, _) = w
        .post(&format!("/api/set_server_status?token={token}"), running())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.state(first), Some(ServerState::Running));
    assert_eq!(
        w.state(second),
        Some(ServerState::Starting),
        "the other server is untouched"
    );

    // Its VM stops (the user shut it down): the controller destroys the server.
    let vm = w
        .scaler
        .servers()
        .into_iter()
        .find(|s| s.id == first)
        .and_then(|s| s.vm_id)
        .unwrap();
    assert!(w.cloud.stop(&vm));
    for _ in 0..30 {
        w.tick().await;
        w.scaler.settle().await;
        if w.state(first).is_none() {
            break;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(w.state(first), None, "the stopped server is destroyed");
    let (status, body) = w
        .post(&format!("/api/set_server_status?token={token}"), running())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(reason(&body).contains("not a live server"), "{body}");
    assert!(!body.to_string().contains(&token), "token echoed");
    let (status, body) = w
        .get(&format!(
            "/api/admin/get_server_file_mappings?token={token}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reason(&body), "Access Denied!");
}

#[tokio::test(start_paused = true)]
async fn one_guest_flooding_logs_is_limited_alone() {
    let w = world().await;
    w.tick().await;
    let tokens = w.tokens();
    assert_eq!(tokens.len(), 2);
    let (flooder, quiet) = (&tokens[0].1, &tokens[1].1);
    let log = |token: &str| json!({"token": token, "logs": [{"message": "line\nforged", "levelname": "INFO"}]});
    let mut limited = 0;
    for _ in 0..50 {
        let (status, body) = w.post("/api/component_log", log(flooder)).await;
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(reason(&body).contains("component_log"), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        limited >= 50 - kasm_scale_http::guest::LOG_BURST as usize - 2,
        "{limited}"
    );
    let (status, _) = w.post("/api/component_log", log(quiet)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another server's guest is not limited"
    );
}
