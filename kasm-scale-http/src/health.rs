//! `/healthz` and `/readyz`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kasm_scale_core::controller::Autoscaler;
use serde_json::{Value, json};

/// The process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The saved state is loaded, the controller acts (alone or as the leader of its replicas) and
/// ticked recently (`503` otherwise, with why). A load balancer that sends traffic only to
/// ready replicas sends it to the leader.
pub(crate) async fn readyz(State(scaler): State<Autoscaler>) -> (StatusCode, Json<Value>) {
    let health = scaler.health();
    let since = health.since_last_tick.map(|d| d.as_secs_f64());
    let body = json!({
        "ready": health.is_ready(),
        "state_loaded": health.loaded,
        "seconds_since_last_tick": since,
        "role": health.role,
    });
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
