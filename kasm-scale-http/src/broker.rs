//! The broker API (JSON, `Authorization: Bearer <key>` with a key of the config's
//! `broker_api.keys`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/pools` | every pool: servers by state, used, free and starting session slots, waiting requests |
//! | `POST /api/v1/pools/{pool}/sessions` (body optional: `{"user", "second_session"}`; header `Idempotency-Key` optional) | `201` with the session and its server (id, host name, address), or `202` with the session and its place in the queue; `replayed` (and the header `Idempotent-Replayed`) says whether the key was seen before: then nothing was made and the answer is the first attempt's session as it stands; `reconnected` says whether the user already had this session in the pool (user affinity; `"second_session": true` asks for a new one anyway); `422` for a key used for another pool |
//! | `GET /api/v1/sessions/{id}` | where the session is (`assigned` with its server, or `queued` with its place) |
//! | `DELETE /api/v1/sessions/{id}` | `204`: the session ended (or the request was withdrawn) |
//! | `POST /api/v1/servers/{id}/sessions` with `{"sessions": N, "used": true}` | `200` with the server and one new session id per session: the broker's report of a server's sessions (after a restart that lost the saved state, servers adopted with `sessions_unknown` are held full until it comes, or until the unknown-sessions timeout takes them as empty) |
//! | `GET /api/v1/servers` | every server: state, sessions, address, reported status, last error, age |
//! | `GET /api/v1/events` | the controller's events as they happen (server-sent events, one JSON object each) |
//! | `GET /api/v1/drains` | every drain in force: target, who, why, since, until, then, `age_seconds` |
//! | `POST /api/v1/drains` with `{"target": {"kind": "server"\|"config"\|"pool", "name"}, "by", "reason", "until"?, "then"?: "destroy"\|"keep"}` | `201` with the drain (a drain of the same target is replaced); `404` for an unknown target, `422` for a drain that cannot be (empty `by`, `until` past) |
//! | `DELETE /api/v1/drains/{kind}/{name}` | `200` with the drain that ended; `404` when the target is not drained |
//! | `GET /api/v1/generations` | each auto-scale config's generation, its `current` and `outdated` servers and its rollout (paused: why) |
//! | `POST /api/v1/rollouts/{config}/resume` | `200` with the rollout, resumed; `404` for an unknown config, `409` when its rollout is not paused |
//! | `POST /api/v1/reload` (with [`serve`](crate::serve) and a [`Reloader`](crate::Reloader)) | `200` with what changed (`new_generations`, `configs_added`, …, `tls_reloaded`), `422` with `problems`, every one: the running configuration stays |
//!
//! A missing or wrong key is `401`; without any configured key the API is off (`403`). An
//! unknown pool, session or server is `404` with the reason (`no pool `…``, `no session N`,
//! `no server <id>`), whatever the request's body: the path is checked before the body is
//! read. A body is JSON (`415` otherwise, `400` naming the field when it is malformed).

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use kasm_scale_core::controller::{
    Autoscaler, ControllerError, PoolStatus, SessionOutcome, SessionStatus,
};
use kasm_scale_core::engine::{ServerId, ServerState, SessionRequest};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::extract::{JsonBody, KnownPool, KnownServer, SessionParam};
use crate::reply::Failure;

/// Refuses a request without a configured key, comparing in constant time with every key.
pub(crate) async fn authorize(
    State(scaler): State<Autoscaler>,
    request: Request,
    next: Next,
) -> Response {
    let config = scaler.config();
    let keys = config
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
pub(crate) async fn pools(State(scaler): State<Autoscaler>) -> Json<PoolsAnswer> {
    Json(PoolsAnswer {
        pools: scaler.pools(),
    })
}

/// The answer of `GET /api/v1/pools`.
#[derive(Debug, Serialize)]
pub(crate) struct PoolsAnswer {
    pools: Vec<PoolStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSession {
    #[serde(default)]
    user: Option<String>,
    /// A new session even when the user has one in the pool (user affinity off for it).
    #[serde(default)]
    second_session: bool,
}

/// The header a broker sets to make a session request idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header of the answer: `true` when the key was seen before and nothing was made now.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Where a session is: the answer of the session routes.
#[derive(Debug, Serialize)]
pub(crate) struct SessionAnswer {
    session: u64,
    #[serde(flatten)]
    place: Place,
    /// Only in the answer of a request: whether its key was seen before.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
    /// Only in the answer of a request: whether it is the user's session already in the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnected: Option<bool>,
}

/// Seated (with the server) or waiting (with its place in the queue).
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Place {
    Assigned { server: SessionServer },
    Queued { position: Option<usize> },
}

/// What a broker needs of a session's server: where to connect.
#[derive(Debug, Serialize)]
struct SessionServer {
    id: String,
    hostname: Option<String>,
    address: Option<String>,
    pool: Option<String>,
}

impl SessionServer {
    /// `server`'s answer (its fields `null` when it is gone since the session was seated).
    fn of(scaler: &Autoscaler, server: ServerId) -> Self {
        let info = scaler.server(server);
        Self {
            id: server.to_string(),
            hostname: info.as_ref().map(|s| s.hostname.clone()),
            address: info.as_ref().and_then(|s| s.address.clone()),
            pool: info.map(|s| s.pool),
        }
    }
}

/// `POST /api/v1/pools/{pool}/sessions`, idempotent with an `Idempotency-Key` header.
pub(crate) async fn request_session(
    State(scaler): State<Autoscaler>,
    KnownPool(pool): KnownPool,
    headers: HeaderMap,
    body: Option<JsonBody<NewSession>>,
) -> Result<Response, Failure> {
    let request = body.map(|JsonBody(b)| b).unwrap_or_default();
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
                second_session: request.second_session,
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
    let (status, place, session) = match requested.outcome {
        SessionOutcome::Assigned { session, server } => (
            StatusCode::CREATED,
            Place::Assigned {
                server: SessionServer::of(&scaler, server),
            },
            session,
        ),
        SessionOutcome::Queued { session } => {
            let position = match scaler.session(session) {
                Some(SessionStatus::Queued { position }) => Some(position),
                _ => None,
            };
            (StatusCode::ACCEPTED, Place::Queued { position }, session)
        }
    };
    let answer = SessionAnswer {
        session: session.0,
        place,
        replayed: Some(requested.replayed),
        reconnected: Some(requested.reconnected),
    };
    Ok((status, replayed, Json(answer)).into_response())
}

/// `GET /api/v1/sessions/{id}`.
pub(crate) async fn session(
    State(scaler): State<Autoscaler>,
    SessionParam(id): SessionParam,
) -> Result<Json<SessionAnswer>, Failure> {
    let place = match scaler.session(id) {
        Some(SessionStatus::Assigned { server }) => Place::Assigned {
            server: SessionServer::of(&scaler, server),
        },
        Some(SessionStatus::Queued { position }) => Place::Queued {
            position: Some(position),
        },
        None => return Err(ControllerError::UnknownSession(id).into()),
    };
    Ok(Json(SessionAnswer {
        session: id.0,
        place,
        replayed: None,
        reconnected: None,
    }))
}

/// `DELETE /api/v1/sessions/{id}`.
pub(crate) async fn end_session(
    State(scaler): State<Autoscaler>,
    SessionParam(id): SessionParam,
) -> Result<StatusCode, Failure> {
    scaler.end_session(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionReport {
    sessions: u32,
    #[serde(default)]
    used: bool,
}

/// The answer of `POST /api/v1/servers/{id}/sessions`: the server and its new session ids.
#[derive(Debug, Serialize)]
pub(crate) struct ReportAnswer {
    server: String,
    sessions: Vec<u64>,
}

/// `POST /api/v1/servers/{id}/sessions` with `{"sessions", "used"}`: the broker tells how many
/// sessions a server has (after a restart that lost the saved state, for the servers adopted
/// with `sessions_unknown`); answers the new session ids, for `DELETE /api/v1/sessions/{id}`.
pub(crate) async fn report_sessions(
    State(scaler): State<Autoscaler>,
    KnownServer(server): KnownServer,
    JsonBody(report): JsonBody<SessionReport>,
) -> Result<Json<ReportAnswer>, Failure> {
    let ids = scaler
        .report_sessions(server, report.sessions, report.used)
        .await?;
    Ok(Json(ReportAnswer {
        server: server.to_string(),
        sessions: ids.iter().map(|s| s.0).collect(),
    }))
}

/// One server in the answer of `GET /api/v1/servers`.
#[derive(Debug, Serialize)]
pub(crate) struct ServerAnswer {
    id: String,
    hostname: String,
    pool: String,
    config: String,
    provider: String,
    vm_id: Option<String>,
    state: ServerState,
    sessions: u32,
    capacity: u32,
    sessions_unknown: bool,
    address: Option<String>,
    reported_status: Option<String>,
    last_error: Option<String>,
    age_seconds: i64,
}

/// The answer of `GET /api/v1/servers`.
#[derive(Debug, Serialize)]
pub(crate) struct ServersAnswer {
    servers: Vec<ServerAnswer>,
}

/// `GET /api/v1/servers`.
pub(crate) async fn servers(State(scaler): State<Autoscaler>) -> Json<ServersAnswer> {
    let now = scaler.now();
    let servers = scaler
        .servers()
        .into_iter()
        .map(|s| ServerAnswer {
            id: s.id.to_string(),
            age_seconds: now.duration_since(s.created_at).as_secs(),
            hostname: s.hostname,
            pool: s.pool,
            config: s.config,
            provider: s.provider,
            vm_id: s.vm_id,
            state: s.state,
            sessions: s.sessions,
            capacity: s.capacity,
            sessions_unknown: s.sessions_unknown,
            address: s.address,
            reported_status: s.reported_status,
            last_error: s.last_error,
        })
        .collect();
    Json(ServersAnswer { servers })
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
