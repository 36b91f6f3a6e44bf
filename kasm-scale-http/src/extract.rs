//! The extractors of the handlers: a JSON body, and the pool, session and server a path names.
//! Each rejects with the answer the API documents, so a handler starts from checked values:
//!
//! | extractor | rejection |
//! |---|---|
//! | [`JsonBody<T>`] (`Option<JsonBody<T>>`: an empty body is `None`) | `415` not JSON, `400` malformed (naming the field, never echoing a value), `413` too large (axum's own answer, as the body limit gives it) |
//! | [`KnownPool`] | `404 no pool `…`` for a pool the configuration does not name |
//! | [`KnownConfig`] | `404 no auto-scale config `…`` for a config the configuration does not name |
//! | [`SessionParam`] | `400` for an id that is not a number, `404` for one too large to be any session |
//! | [`KnownServer`] | `400` for an id that is not a UUID, `404` for a server the controller does not know |
//!
//! The path extractors run before the body is read, so a request for an unknown pool or server
//! is answered `404` whatever its body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kasm_scale_core::controller::{Autoscaler, SessionId};
use kasm_scale_core::engine::ServerId;
use serde::de::DeserializeOwned;

use crate::reply::{Failure, short};

/// A JSON request body of type `T` (`Content-Type: application/json`, parameters allowed).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (json, body) = read(request, state).await?;
        parse(json, &body)
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// An optional body: an empty one (of any content type) is `None`.
impl<S, T> OptionalFromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (json, body) = read(request, state).await?;
        if body.is_empty() {
            return Ok(None);
        }
        parse(json, &body)
            .map(|value| Some(Self(value)))
            .map_err(IntoResponse::into_response)
    }
}

/// Whether the body is said to be JSON, and the body (axum's `413` past the body limit).
async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<(bool, Bytes), Response> {
    let json = is_json(request.headers());
    let body = Bytes::from_request(request, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((json, body))
}

/// `Content-Type: application/json` (any case, parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The body as `T`, or `415` (not JSON) / `400` (malformed, naming the field).
fn parse<T: DeserializeOwned>(json: bool, body: &[u8]) -> Result<T, Failure> {
    if !json {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json's message, without the echo of a value (it could be a token).
        let syntax = matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        let what = if syntax {
            format!(
                "not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            )
        } else {
            strip_values(&inner.to_string())
        };
        if syntax || path == "." {
            Failure::bad_request(format!("body: {what}"))
        } else {
            Failure::bad_request(format!("body.{path}: {what}"))
        }
    })
}

/// serde's messages quote the offending value (`invalid type: string "eyJ…"`): keep the kind,
/// drop the value, and drop the position suffix.
fn strip_values(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    match (message.find('"'), message.rfind('"')) {
        (Some(a), Some(b)) if a < b => format!("{}…{}", &message[..a], &message[b + 1..]),
        _ => message.to_owned(),
    }
}

/// The path's one parameter, as text (axum's own rejection when it cannot be decoded).
async fn one_param<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, Response> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(text)| text)
        .map_err(IntoResponse::into_response)
}

/// A pool the configuration names (the path's `{pool}`).
#[derive(Debug)]
pub(crate) struct KnownPool(pub String);

impl FromRequestParts<Autoscaler> for KnownPool {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        scaler: &Autoscaler,
    ) -> Result<Self, Self::Rejection> {
        let pool = one_param(parts, scaler).await?;
        if scaler.config().pool(&pool).is_none() {
            return Err(Failure::not_found(format!("no pool `{}`", short(&pool))).into_response());
        }
        Ok(Self(pool))
    }
}

/// An auto-scale config the configuration names (the path's `{config}`).
#[derive(Debug)]
pub(crate) struct KnownConfig(pub String);

impl FromRequestParts<Autoscaler> for KnownConfig {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        scaler: &Autoscaler,
    ) -> Result<Self, Self::Rejection> {
        let config = one_param(parts, scaler).await?;
        let known = scaler
            .config()
            .autoscale_configs()
            .any(|(_, c)| c.autoscale_config_name == config);
        if !known {
            return Err(
                Failure::not_found(format!("no auto-scale config `{}`", short(&config)))
                    .into_response(),
            );
        }
        Ok(Self(config))
    }
}

/// A session id (the path's `{id}`): a number. Whether the session exists is the handler's
/// question (it may end between two lookups).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionParam(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionParam {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let text = one_param(parts, state).await?;
        session_id(&text)
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// `400` for text that is not a number, `404` for a number past any session id.
fn session_id(text: &str) -> Result<SessionId, Failure> {
    text.parse::<u64>().map(SessionId).map_err(|e| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            Failure::not_found(format!("no session {}", short(text)))
        } else {
            Failure::bad_request(format!("session id `{}` is not a number", short(text)))
        }
    })
}

/// A server the controller knows (the path's `{id}`, a UUID). On a replica that does not act,
/// only the id is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownServer(pub ServerId);

impl FromRequestParts<Autoscaler> for KnownServer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        scaler: &Autoscaler,
    ) -> Result<Self, Self::Rejection> {
        let text = one_param(parts, scaler).await?;
        let server = text.parse::<uuid::Uuid>().map(ServerId).map_err(|_| {
            Failure::bad_request(format!("server id `{}` is not a UUID", short(&text)))
                .into_response()
        })?;
        // A follower's records may lag the leader's: it leaves the answer to the controller
        // (which refuses its writes). The saved state is loaded before the lookup.
        if scaler.role().acts() {
            scaler
                .start()
                .await
                .map_err(|e| Failure::from(e).into_response())?;
            if scaler.server(server).is_none() {
                return Err(Failure::not_found(format!("no server {server}")).into_response());
            }
        }
        Ok(Self(server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_not_echoed_in_parse_errors() {
        assert_eq!(
            strip_values(
                r#"invalid type: string "eyJsecret", expected a sequence at line 1 column 9"#
            ),
            "invalid type: string …, expected a sequence"
        );
        assert_eq!(
            strip_values("missing field `status`"),
            "missing field `status`"
        );
    }

    #[test]
    fn a_session_id_is_a_number_and_one_past_any_session_is_unknown() {
        assert_eq!(session_id("42").unwrap(), SessionId(42));
        let too_large = session_id("99999999999999999999").unwrap_err();
        assert_eq!(too_large.status, StatusCode::NOT_FOUND);
        assert_eq!(too_large.reason, "no session 99999999999999999999");
        for text in ["", "-1", "4x", "..%2F..", "1.5"] {
            let e = session_id(text).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{text:?}");
            assert!(
                e.reason.ends_with("is not a number"),
                "{text:?}: {}",
                e.reason
            );
        }
    }

    #[test]
    fn only_json_is_parsed() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        let e = parse::<serde_json::Value>(false, b"{}").unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
