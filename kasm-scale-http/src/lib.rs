//! kasm-scale over HTTP: an axum [`Router`] built from an [`Autoscaler`], so a broker that runs
//! axum mounts the guests' check-in API and the health probes in one line:
//!
//! ```no_run
//! # async fn demo(scaler: kasm_scale_core::controller::Autoscaler) {
//! let app = axum::Router::new().merge(kasm_scale_http::router(scaler));
//! # let _ = app;
//! # }
//! ```
//!
//! - **Guest API**, as the startup scripts written for Kasm call it (see [`guest`]):
//!   `POST /api/set_server_status?token=…`, `GET /api/admin/get_server_file_mappings?token=…`,
//!   `POST /api/component_log`.
//! - **Broker API** (bearer keys from the config's `broker_api`, see [`broker`]): pools,
//!   sessions, servers, drains, generations and rollouts, an event stream, and (with
//!   [`serve`] and a [`Reloader`]) the reload.
//! - **Health**: `GET /healthz` (the process answers), `GET /readyz` (the saved state is loaded
//!   and the controller ticked recently).
//! - **Metrics**: `GET /metrics`, Prometheus text (the names are listed in the module
//!   `metrics`' documentation and the README).
//!
//! [`serve`] runs a controller as a service (its tick loop and these routes, over TLS) until a
//! shutdown signal; `kasm-scale serve` is that, from a configuration file.
//!
//! Every answer is JSON with a short reason on failure (`{"error_message": "…"}`), never a
//! token, a secret or a stack trace. Request bodies are limited to [`BODY_LIMIT`] bytes and
//! every request to [`REQUEST_TIMEOUT`].

mod abuse;
pub mod broker;
mod extract;
pub mod guest;
mod health;
mod listener;
mod metrics;
mod operations;
pub mod reload;
mod reply;
mod serve;

pub use abuse::{BAD_TOKEN_BURST, BAD_TOKENS_PER_SECOND, MAX_SOURCES, PRUNE_EVERY};
pub use listener::ConnectionLimits;
pub use reload::{ReloadDone, ReloadFuture, ReloadRefused, Reloader};
pub use serve::{ServeError, ServeOptions, TlsFiles, serve};

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use kasm_scale_core::controller::Autoscaler;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The largest request body accepted (64 KiB): a check-in is a few hundred bytes, a component
/// log a few KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long one request may take, its body included, before it is answered `408` (a client
/// that sends its body slowly does not hold a connection for ever).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The guests' API, behind the per-source limit of refused tokens.
fn guest_routes() -> Router<Autoscaler> {
    Router::new()
        .route("/api/set_server_status", post(guest::set_server_status))
        .route(
            "/api/admin/get_server_file_mappings",
            get(guest::get_server_file_mappings),
        )
        .route("/api/component_log", post(guest::component_log))
        .route_layer(axum::middleware::from_fn_with_state(
            abuse::BadTokens::new(),
            abuse::guard,
        ))
}

/// The broker API, behind its key check.
fn broker_routes(scaler: Autoscaler) -> Router<Autoscaler> {
    Router::new()
        .route("/api/v1/pools", get(broker::pools))
        .route(
            "/api/v1/pools/{pool}/sessions",
            post(broker::request_session),
        )
        .route(
            "/api/v1/sessions/{id}",
            get(broker::session).delete(broker::end_session),
        )
        .route("/api/v1/servers", get(broker::servers))
        .route(
            "/api/v1/servers/{id}/sessions",
            post(broker::report_sessions),
        )
        .route("/api/v1/events", get(broker::events))
        .route(
            "/api/v1/drains",
            get(operations::drains).post(operations::drain),
        )
        .route(
            "/api/v1/drains/{kind}/{name}",
            axum::routing::delete(operations::undrain),
        )
        .route("/api/v1/generations", get(operations::generations))
        .route(
            "/api/v1/rollouts/{config}/resume",
            post(operations::resume_rollout),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            scaler,
            broker::authorize,
        ))
}

/// How long a reload may take before its caller is answered `408`: longer than the reload's
/// own limit ([`reload::RELOAD_LIMIT`]), which answers first with its refusal.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST /api/v1/reload` with `reloader`, behind the broker keys: merged into the app by
/// [`serve`] when its options hold a [`Reloader`].
fn reload_routes(scaler: Autoscaler, reloader: Reloader) -> Router {
    Router::new()
        .route(
            "/api/v1/reload",
            post(move || reload::reload(reloader.clone())),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            scaler.clone(),
            broker::authorize,
        ))
        .with_state(scaler)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            RELOAD_TIMEOUT,
        ))
}

/// The routes of this crate over `scaler` (guest API and health probes), with the body limit
/// and the request timeout applied.
pub fn router(scaler: Autoscaler) -> Router {
    // Installed before the controller does anything worth counting.
    metrics::recorder();
    Router::new()
        .merge(guest_routes())
        .merge(broker_routes(scaler.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(reply::not_found)
        .with_state(scaler)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}
