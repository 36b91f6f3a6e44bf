//! The broker API (JSON, `Authorization: Bearer <key>` with a key of the config's
//! `broker_api.keys`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/pools` | every pool: servers by state, used, free and starting session slots, waiting requests |
//! | `POST /api/v1/pools/{pool}/sessions` (body optional: `{"user"}`; header `Idempotency-Key` optional) | `201` with the session and its server (id, host name, address), or `202` with the session and its place in the queue; `replayed` (and the header `Idempotent-Replayed`) says whether the key was seen before: then nothing was made and the answer is the first attempt's session as it stands; `422` for a key used for another pool |
//! | `GET /api/v1/sessions/{id}` | where the session is (`assigned` with its server, or `queued` with its place) |
//! | `DELETE /api/v1/sessions/{id}` | `204`: the session ended (or the request was withdrawn) |
//! | `POST /api/v1/servers/{id}/sessions` with `{"sessions": N, "used": true}` | `200` with the server and one new session id per session: the broker's report of a server's sessions (after a restart that lost the saved state, servers adopted with `sessions_unknown` are held full until it comes, or until the unknown-sessions timeout takes them as empty) |
//! | `GET /api/v1/servers` | every server: state, sessions, address, reported status, last error, age |
//! | `GET /api/v1/events` | the controller's events as they happen (server-sent events, one JSON object each) |
//!
//! A missing or wrong key is `401`; without any configured key the API is off (`403`).

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use kasm_scale_core::controller::{
    Autoscaler, ControllerError, SessionId, SessionOutcome, SessionStatus,
};
use kasm_scale_core::engine::SessionRequest;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::reply::Failure;

/// Refuses a request without a configured key, comparing in constant time with every key.
pub(crate) async fn authorize(
    State(scaler): State<Autoscaler>,
    request: Request,
    next: Next,
) -> Response {
    let keys = scaler
        .config()
        .broker_api
        .as_ref()
        .map(|b| b.keys.as_slice())
        .unwrap_or_default();
    if keys.is_empty() {
        return Failure::new(
            StatusCode::FORBIDDEN,
            "the broker API is off: configure broker_api.keys",
        )
        .into_response();
    }
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let Some(given) = given else {
        return Failure::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <key>",
        )
        .into_response();
    };
    // Every key is compared (no early exit), as SHA-256 digests of equal length: the time says
    // nothing about which key matched nor how long the keys are.
    let digest =
        |text: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let given = digest(given);
    let matched = keys.iter().fold(subtle::Choice::from(0), |any, key| {
        any | digest(key.expose()).as_ref().ct_eq(given.as_ref())
    });
    if bool::from(matched) {
        next.run(request).await
    } else {
        Failure::new(StatusCode::UNAUTHORIZED, "wrong API key").into_response()
    }
}

/// `GET /api/v1/pools`.
pub(crate) async fn pools(State(scaler): State<Autoscaler>) -> Json<Value> {
    Json(json!({ "pools": scaler.pools() }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    #[serde(default)]
    user: Option<String>,
}

/// The header a broker sets to make a session request idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header of the answer: `true` when the key was seen before and nothing was made now.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `POST /api/v1/pools/{pool}/sessions`, idempotent with an `Idempotency-Key` header.
pub(crate) async fn request_session(
    State(scaler): State<Autoscaler>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let request: NewSession = if body.is_empty() {
        NewSession::default()
    } else {
        crate::guest::json_body(&headers, &body)?
    };
    if scaler.config().pool(&pool).is_none() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no pool `{}`", short(&pool)),
        ));
    }
    let request_id = match headers.get(IDEMPOTENCY_KEY) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| Failure::bad_request("Idempotency-Key: not visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let requested = scaler
        .request_session_once(
            &pool,
            &SessionRequest {
                user: request.user,
                request_id,
            },
        )
        .await
        .map_err(|e| match e {
            ControllerError::InvalidRequestId(why) => {
                Failure::bad_request(format!("Idempotency-Key: {why}"))
            }
            e @ ControllerError::RequestIdReused { .. } => {
                Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            e => e.into(),
        })?;
    let replayed = [(
        IDEMPOTENT_REPLAYED,
        if requested.replayed { "true" } else { "false" },
    )];
    Ok(match requested.outcome {
        SessionOutcome::Assigned { session, server } => {
            let mut body = assigned(&scaler, session, server);
            body["replayed"] = requested.replayed.into();
            (StatusCode::CREATED, replayed, Json(body)).into_response()
        }
        SessionOutcome::Queued { session } => {
            let position = match scaler.session(session) {
                Some(SessionStatus::Queued { position }) => Some(position),
                _ => None,
            };
            (
                StatusCode::ACCEPTED,
                replayed,
                Json(json!({
                    "session": session.0,
                    "state": "queued",
                    "position": position,
                    "replayed": requested.replayed,
                })),
            )
                .into_response()
        }
    })
}

fn assigned(
    scaler: &Autoscaler,
    session: SessionId,
    server: kasm_scale_core::engine::ServerId,
) -> Value {
    let info = scaler.servers().into_iter().find(|s| s.id == server);
    json!({
        "session": session.0,
        "state": "assigned",
        "server": {
            "id": server.to_string(),
            "hostname": info.as_ref().map(|s| s.hostname.clone()),
            "address": info.as_ref().and_then(|s| s.address.clone()),
            "pool": info.as_ref().map(|s| s.pool.clone()),
        },
    })
}

fn session_id(text: &str) -> Result<SessionId, Failure> {
    text.parse::<u64>()
        .map(SessionId)
        .map_err(|_| Failure::bad_request(format!("session id `{}` is not a number", short(text))))
}

/// At most 64 characters of something a client sent, for a message.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// `GET /api/v1/sessions/{id}`.
pub(crate) async fn session(
    State(scaler): State<Autoscaler>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let id = session_id(&id)?;
    match scaler.session(id) {
        Some(SessionStatus::Assigned { server }) => Ok(Json(assigned(&scaler, id, server))),
        Some(SessionStatus::Queued { position }) => Ok(Json(
            json!({ "session": id.0, "state": "queued", "position": position }),
        )),
        _ => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no session {}", id.0),
        )),
    }
}

/// `DELETE /api/v1/sessions/{id}`.
pub(crate) async fn end_session(
    State(scaler): State<Autoscaler>,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    let id = session_id(&id)?;
    match scaler.end_session(id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(kasm_scale_core::controller::ControllerError::UnknownSession(_)) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no session {}", id.0),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionReport {
    sessions: u32,
    #[serde(default)]
    used: bool,
}

/// `POST /api/v1/servers/{id}/sessions` with `{"sessions", "used"}`: the broker tells how many
/// sessions a server has (after a restart that lost the saved state, for the servers adopted
/// with `sessions_unknown`); answers the new session ids, for `DELETE /api/v1/sessions/{id}`.
pub(crate) async fn report_sessions(
    State(scaler): State<Autoscaler>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let server = id
        .parse::<uuid::Uuid>()
        .map(kasm_scale_core::engine::ServerId)
        .map_err(|_| Failure::bad_request(format!("server id `{}` is not a UUID", short(&id))))?;
    let report: SessionReport = crate::guest::json_body(&headers, &body)?;
    match scaler
        .report_sessions(server, report.sessions, report.used)
        .await
    {
        Ok(ids) => Ok(Json(json!({
            "server": server.to_string(),
            "sessions": ids.iter().map(|s| s.0).collect::<Vec<_>>(),
        }))),
        Err(ControllerError::UnknownServer(_)) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no server {server}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/servers`.
pub(crate) async fn servers(State(scaler): State<Autoscaler>) -> Json<Value> {
    let now = scaler.now();
    let list: Vec<Value> = scaler
        .servers()
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "hostname": s.hostname,
                "pool": s.pool,
                "config": s.config,
                "provider": s.provider,
                "vm_id": s.vm_id,
                "state": s.state,
                "sessions": s.sessions,
                "capacity": s.capacity,
                "sessions_unknown": s.sessions_unknown,
                "address": s.address,
                "reported_status": s.reported_status,
                "last_error": s.last_error,
                "age_seconds": now.duration_since(s.created_at).as_secs(),
            })
        })
        .collect();
    Json(json!({ "servers": list }))
}

/// `GET /api/v1/events`: server-sent events, one JSON object each, from now on. A client that
/// reads too slowly misses events (a `lagged` event says how many).
pub(crate) async fn events(
    State(scaler): State<Autoscaler>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = scaler.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        use tokio::sync::broadcast::error::RecvError;
        let event = match receiver.recv().await {
            Ok(event) => SseEvent::default()
                .json_data(&event)
                .unwrap_or_else(|_| SseEvent::default().data("{}")),
            Err(RecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
