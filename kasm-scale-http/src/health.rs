//! `/healthz` and `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kasm_scale_core::controller::{Autoscaler, Role};
use serde::Serialize;

/// The answer of `/healthz`: `{"status": "ok"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Alive {
    status: &'static str,
}

/// The process answers.
pub(crate) async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize)]
pub(crate) struct Readiness {
    ready: bool,
    state_loaded: bool,
    seconds_since_last_tick: Option<f64>,
    role: Role,
}

/// The saved state is loaded, the controller acts (alone or as the leader of its replicas) and
/// ticked recently (`503` otherwise, with why). A load balancer that sends traffic only to
/// ready replicas sends it to the leader.
pub(crate) async fn readyz(State(scaler): State<Autoscaler>) -> (StatusCode, Json<Readiness>) {
    let health = scaler.health();
    let ready = health.is_ready();
    let body = Readiness {
        ready,
        state_loaded: health.loaded,
        seconds_since_last_tick: health.since_last_tick.map(|d| d.as_secs_f64()),
        role: health.role,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
