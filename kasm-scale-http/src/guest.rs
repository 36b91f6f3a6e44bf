//! The guests' API, as the startup scripts written for Kasm call it (the token is the server's
//! `{checkin_jwt}`; it names the server):
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/set_server_status?token=…` with `{"status", "status_message", "status_progress"}` (the token may be a body field instead) | `200 {"status": "ok", "server_id"}`; `running` makes the server ready, other statuses are kept as its reported status; repeating it is harmless |
//! | `GET /api/admin/get_server_file_mappings?token=…` | `200 {"file_mappings": []}` for a live server's token, else `200 {"error_message": "Access Denied!"}` (scripts poll until that text goes away) |
//! | `POST /api/component_log` with `{"token", "logs": [{host, application, levelname, message, ingest_date}]}` | `200 {"status": "ok", "accepted"}`; each entry is logged (`tracing`, target `kasm_scale::guest_log`) with the server id |
//!
//! A refused token is `401` with the reason (expired, bad signature, other server…), a body
//! that is not JSON `415`, a malformed one `400` naming the field. The token is never logged
//! or echoed.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus};
use kasm_scale_core::engine::ServerId;
use serde::{Deserialize, Serialize};

use crate::abuse::TokenRefused;
use crate::extract::JsonBody;
use crate::reply::Failure;

/// Log entries one `component_log` request may carry.
pub const MAX_LOG_ENTRIES: usize = 200;

/// Characters of one log field kept (longer ones are cut, with `…`).
pub const MAX_LOG_FIELD: usize = 4096;

/// `component_log` requests one server may send a second, on average (after a burst of
/// [`LOG_BURST`]); past it the request is answered `429` and its entries are not logged.
pub const LOG_REQUESTS_PER_SECOND: u32 = 1;

/// `component_log` requests one server may send at once.
pub const LOG_BURST: u32 = 10;

/// Kasm's text for a token that does not name a live server.
pub const ACCESS_DENIED: &str = "Access Denied!";

/// `set_server_status`'s body (unknown fields are ignored: scripts differ).
#[derive(Deserialize)]
pub(crate) struct StatusBody {
    #[serde(default)]
    token: Option<String>,
    status: String,
    #[serde(default)]
    status_message: String,
    #[serde(default, deserialize_with = "text_or_number")]
    status_progress: String,
}

/// `component_log`'s body.
#[derive(Deserialize)]
pub(crate) struct LogBody {
    #[serde(default)]
    token: Option<String>,
    logs: Vec<LogEntry>,
}

#[derive(Debug, Deserialize)]
struct LogEntry {
    #[serde(default)]
    host: String,
    #[serde(default)]
    application: String,
    #[serde(default)]
    levelname: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    ingest_date: String,
}

/// A token, as `Debug` shows it: whether there is one, never what it is.
fn redacted(token: &Option<String>) -> Option<&'static str> {
    token.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for StatusBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBody")
            .field("token", &redacted(&self.token))
            .field("status", &self.status)
            .field("status_message", &self.status_message)
            .field("status_progress", &self.status_progress)
            .finish()
    }
}

impl std::fmt::Debug for LogBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBody")
            .field("token", &redacted(&self.token))
            .field("logs", &self.logs)
            .finish()
    }
}

/// `"100"` or `100`: scripts send the progress either way.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Progress {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Progress::deserialize(d)? {
        Progress::Text(t) => t,
        Progress::Number(n) => n.to_string(),
    })
}

/// The token from the query or the body (both only when equal).
fn one_token(query: Option<&String>, body: Option<&String>) -> Result<String, Failure> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(Failure::bad_request(
            "token: given in the query and in the body, differently",
        )),
        (Some(t), _) | (None, Some(t)) if !t.is_empty() => Ok(t.clone()),
        _ => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "token: missing (?token= or the body's token field)",
        )),
    }
}

/// The answer of an accepted check-in: `{"status": "ok", "server_id"}`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckedIn {
    status: &'static str,
    server_id: String,
}

/// `POST /api/set_server_status`.
pub(crate) async fn set_server_status(
    State(scaler): State<Autoscaler>,
    Query(query): Query<HashMap<String, String>>,
    JsonBody(parsed): JsonBody<StatusBody>,
) -> Result<Json<CheckedIn>, Failure> {
    let token = one_token(query.get("token"), parsed.token.as_ref())?;
    let status = CheckinStatus {
        status: parsed.status,
        status_message: parsed.status_message,
        status_progress: parsed.status_progress,
    };
    let server = scaler.check_in_token(&token, &status).await?;
    Ok(Json(CheckedIn {
        status: "ok",
        server_id: server.to_string(),
    }))
}

/// Kasm's answers of `get_server_file_mappings`: the (empty) mappings, or its refusal.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum FileMappings {
    /// `{"file_mappings": []}`: the token names a live server (no files are mapped).
    Mapped { file_mappings: Vec<String> },
    /// `{"error_message": "Access Denied!"}`.
    Denied { error_message: &'static str },
}

/// `GET /api/admin/get_server_file_mappings`.
pub(crate) async fn get_server_file_mappings(
    State(scaler): State<Autoscaler>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let denied = || {
        let mut response = Json(FileMappings::Denied {
            error_message: ACCESS_DENIED,
        })
        .into_response();
        // Counts against the source like a 401 (see `abuse`).
        response.extensions_mut().insert(TokenRefused);
        response
    };
    let Some(token) = query.get("token") else {
        return denied();
    };
    match scaler.token_server(token).await {
        Ok(_) => Json(FileMappings::Mapped {
            file_mappings: Vec::new(),
        })
        .into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "file mappings refused");
            denied()
        }
    }
}

/// The answer of `component_log`: `{"status": "ok", "accepted"}` (entries logged).
#[derive(Debug, Serialize)]
pub(crate) struct LogsTaken {
    status: &'static str,
    accepted: usize,
}

/// `POST /api/component_log`.
pub(crate) async fn component_log(
    State(scaler): State<Autoscaler>,
    Query(query): Query<HashMap<String, String>>,
    JsonBody(parsed): JsonBody<LogBody>,
) -> Result<Json<LogsTaken>, Failure> {
    let token = one_token(query.get("token"), parsed.token.as_ref())?;
    let server = scaler.token_server(&token).await?;
    LOG_LIMIT.allow(server)?;
    if parsed.logs.len() > MAX_LOG_ENTRIES {
        return Err(Failure::bad_request(format!(
            "body.logs: {} entries, at most {MAX_LOG_ENTRIES}",
            parsed.logs.len()
        )));
    }
    for entry in &parsed.logs {
        tracing::info!(
            target: "kasm_scale::guest_log",
            %server,
            host = %cut(&entry.host),
            application = %cut(&entry.application),
            level = %cut(&entry.levelname),
            ingest_date = %cut(&entry.ingest_date),
            message = %cut(&entry.message),
            "guest log"
        );
    }
    Ok(Json(LogsTaken {
        status: "ok",
        accepted: parsed.logs.len(),
    }))
}

/// At most [`MAX_LOG_FIELD`] characters of a guest's text (`…` when cut), with every control
/// character escaped (`\n`, `\u{1b}`…): a guest cannot forge log lines or terminal escapes.
fn cut(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LOG_FIELD));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_LOG_FIELD {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The per-server allowance of `component_log` (a status report needs none: it changes one
/// field and is saved with the next tick, coalesced).
static LOG_LIMIT: PerServer = PerServer::new(LOG_REQUESTS_PER_SECOND, LOG_BURST, "component_log");

/// Requests per server a second, for one route, over every router of the process (keys are
/// servers whose token was verified, so the table is as big as the fleet; servers not heard of
/// for a minute are forgotten).
struct PerServer {
    per_second: u32,
    burst: u32,
    route: &'static str,
    limiter: std::sync::OnceLock<governor::DefaultKeyedRateLimiter<ServerId>>,
    last_prune: std::sync::Mutex<Option<std::time::Instant>>,
}

impl PerServer {
    const fn new(per_second: u32, burst: u32, route: &'static str) -> Self {
        Self {
            per_second,
            burst,
            route,
            limiter: std::sync::OnceLock::new(),
            last_prune: std::sync::Mutex::new(None),
        }
    }

    /// `429` when `server` is past its allowance.
    fn allow(&self, server: ServerId) -> Result<(), Failure> {
        let limiter = self.limiter.get_or_init(|| {
            let rate =
                std::num::NonZeroU32::new(self.per_second).unwrap_or(std::num::NonZeroU32::MIN);
            let burst = std::num::NonZeroU32::new(self.burst).unwrap_or(std::num::NonZeroU32::MIN);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                *last = Some(std::time::Instant::now());
                limiter.retain_recent();
            }
        }
        limiter.check_key(&server).map_err(|_| {
            metrics::counter!("kasm_scale_guest_requests_limited_total", "route" => self.route)
                .increment(1);
            tracing::debug!(%server, route = self.route, "guest past its allowance");
            Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many {} requests from this server; retry later",
                    self.route
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_shows_no_token_in_debug() {
        let body: StatusBody =
            serde_json::from_str(r#"{"token": "eyJsecret", "status": "running"}"#).unwrap();
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("eyJsecret") && shown.contains("<redacted>"),
            "{shown}"
        );
        let body: LogBody = serde_json::from_str(r#"{"token": "eyJsecret", "logs": []}"#).unwrap();
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("eyJsecret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            cut("ok\n2026-12-07 INFO forged line\r\u{1b}[2J\ttab"),
            "ok\\n2026-12-07 INFO forged line\\r\\u{1b}[2J\\ttab"
        );
        assert_eq!(cut("plain é ü"), "plain é ü");
    }

    #[test]
    fn long_fields_are_cut() {
        let long = "é".repeat(MAX_LOG_FIELD + 5);
        let kept = cut(&long);
        assert_eq!(kept.chars().count(), MAX_LOG_FIELD + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
