//! What the broker API does not know is `404` with the reason: an unknown pool or server
//! whatever the request's body (the path is checked before the body is read), a session id
//! that no session has (also one too large to be an id). A follower, whose records may lag,
//! leaves an unknown server to the leader.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{NEW_KEY, world};
use serde_json::{Value, json};

/// The bodies a client may send with a request (no body, not JSON, malformed, wrong field
/// type, well formed), each as (content type, text).
const BODIES: [(Option<&str>, &str); 5] = [
    (None, ""),
    (Some("text/plain"), "five sessions please"),
    (Some("application/json"), r#"{"user": "#),
    (
        Some("application/json"),
        r#"{"sessions": "two", "user": 5}"#,
    ),
    (Some("application/json"), r#"{"sessions": 1}"#),
];

fn request(method: &str, uri: &str, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {NEW_KEY}"));
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_unknown_pool_is_404_whatever_the_body() {
    let w = world().await;
    w.tick().await;
    for (content_type, body) in BODIES {
        let (status, answer) = w
            .send(request(
                "POST",
                "/api/v1/pools/nope/sessions",
                content_type,
                body,
            ))
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{content_type:?} {body:?}: {answer}"
        );
        assert_eq!(answer, json!({"error_message": "no pool `nope`"}));
    }
    // The name a client sent is cut in the reason.
    let long = "n".repeat(300);
    let (status, answer) = w
        .send(request(
            "POST",
            &format!("/api/v1/pools/{long}/sessions"),
            None,
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer["error_message"],
        format!("no pool `{}`", "n".repeat(64))
    );
    // A known pool still checks its body.
    let (status, answer) = w
        .send(request(
            "POST",
            "/api/v1/pools/p/sessions",
            Some("text/plain"),
            "x",
        ))
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_server_is_404_whatever_the_body() {
    let w = world().await;
    w.tick().await;
    let unknown = uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001);
    assert!(w.scaler.servers().iter().all(|s| s.id.0 != unknown));
    for (content_type, body) in BODIES {
        let (status, answer) = w
            .send(request(
                "POST",
                &format!("/api/v1/servers/{unknown}/sessions"),
                content_type,
                body,
            ))
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{content_type:?} {body:?}: {answer}"
        );
        assert_eq!(
            answer,
            json!({"error_message": format!("no server {unknown}")})
        );
    }
    // An id that is not one is 400; a known server still checks its body.
    let (status, answer) = w
        .send(request("POST", "/api/v1/servers/KASM-1/sessions", None, ""))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error_message"], "server id `KASM-1` is not a UUID");
    let known = w.scaler.servers()[0].id;
    let (status, answer) = w
        .send(request(
            "POST",
            &format!("/api/v1/servers/{known}/sessions"),
            None,
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    let (status, answer) = w
        .send(request(
            "POST",
            &format!("/api/v1/servers/{known}/sessions"),
            Some("application/json"),
            r#"{"sessions": 1}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["server"], known.to_string());
}

#[tokio::test(start_paused = true)]
async fn an_unknown_session_is_404() {
    let w = world().await;
    w.tick().await;
    // Never made, ended, or past any id a session can have.
    let (status, answer) = w
        .send(request("POST", "/api/v1/pools/p/sessions", None, ""))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "no server is ready yet: {answer}"
    );
    let made = answer["session"].as_u64().unwrap();
    let (status, _) = w
        .send(request(
            "DELETE",
            &format!("/api/v1/sessions/{made}"),
            None,
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let too_large = "99999999999999999999999";
    for id in [
        made.to_string(),
        (made + 1000).to_string(),
        too_large.to_owned(),
    ] {
        for method in ["GET", "DELETE"] {
            let (status, answer) = w
                .send(request(method, &format!("/api/v1/sessions/{id}"), None, ""))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}: {answer}");
            assert_eq!(answer, json!({"error_message": format!("no session {id}")}));
        }
    }
    // Text that is no id is 400.
    let (status, answer): (StatusCode, Value) = w
        .send(request("GET", "/api/v1/sessions/-1", None, ""))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error_message"], "session id `-1` is not a number");
}

#[tokio::test(start_paused = true)]
async fn a_follower_leaves_an_unknown_server_to_the_leader() {
    let w = world().await;
    w.tick().await;
    w.scaler.step_down(Some("https://10.0.0.7:8443".into()));
    let unknown = uuid::Uuid::from_u128(7);
    let (status, answer) = w
        .send(request(
            "POST",
            &format!("/api/v1/servers/{unknown}/sessions"),
            Some("application/json"),
            r#"{"sessions": 1}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["leader"], "https://10.0.0.7:8443");
    // The configuration is the same on every replica: an unknown pool is 404 here too.
    let (status, answer) = w
        .send(request("POST", "/api/v1/pools/nope/sessions", None, ""))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}
