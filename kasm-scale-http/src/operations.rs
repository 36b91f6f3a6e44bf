//! The broker API's day-two routes *(ours)*: drains, generations and rollouts (see the table in
//! [`broker`](crate::broker)). Same keys, same answers on failure.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use kasm_scale_core::controller::{Autoscaler, Drain, DrainRequest, DrainTarget, GenerationStatus};
use kasm_scale_core::engine::{DrainThen, RolloutState, ServerId};
use serde::{Deserialize, Serialize};

use crate::extract::{JsonBody, KnownConfig};
use crate::reply::{Failure, short};

/// A drain in force, with its age.
#[derive(Debug, Serialize)]
pub(crate) struct DrainAnswer {
    #[serde(flatten)]
    drain: Drain,
    /// Seconds since it began.
    age_seconds: i64,
}

impl DrainAnswer {
    fn of(drain: Drain, now: Timestamp) -> Self {
        Self {
            age_seconds: now.duration_since(drain.since).as_secs().max(0),
            drain,
        }
    }
}

/// The answer of `GET /api/v1/drains`.
#[derive(Debug, Serialize)]
pub(crate) struct DrainsAnswer {
    drains: Vec<DrainAnswer>,
}

/// `GET /api/v1/drains`: every drain in force, with its age.
pub(crate) async fn drains(
    State(scaler): State<Autoscaler>,
) -> Result<Json<DrainsAnswer>, Failure> {
    scaler.start().await?;
    let now = scaler.now();
    Ok(Json(DrainsAnswer {
        drains: scaler
            .drains()
            .into_iter()
            .map(|d| DrainAnswer::of(d, now))
            .collect(),
    }))
}

/// The body of `POST /api/v1/drains` (a [`DrainRequest`], no other field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDrain {
    target: DrainTarget,
    by: String,
    reason: String,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    then: DrainThen,
}

/// `POST /api/v1/drains`: `201` with the drain (a drain of the same target is replaced).
pub(crate) async fn drain(
    State(scaler): State<Autoscaler>,
    JsonBody(body): JsonBody<NewDrain>,
) -> Result<Response, Failure> {
    let drain = scaler
        .drain(DrainRequest {
            target: body.target,
            by: body.by,
            reason: body.reason,
            until: body.until,
            then: body.then,
        })
        .await?;
    let now = scaler.now();
    Ok((StatusCode::CREATED, Json(DrainAnswer::of(drain, now))).into_response())
}

/// The target a path names: `server/<uuid>`, `config/<name>` or `pool/<name>`.
fn target(kind: &str, name: &str) -> Result<DrainTarget, Failure> {
    match kind {
        "server" => name
            .parse::<uuid::Uuid>()
            .map(|id| DrainTarget::Server(ServerId(id)))
            .map_err(|_| {
                Failure::bad_request(format!("server id `{}` is not a UUID", short(name)))
            }),
        "config" => Ok(DrainTarget::Config(name.to_owned())),
        "pool" => Ok(DrainTarget::Pool(name.to_owned())),
        other => Err(Failure::not_found(format!(
            "no drain kind `{}`: server, config or pool",
            short(other)
        ))),
    }
}

/// `DELETE /api/v1/drains/{kind}/{name}`: `200` with the drain that ended; `404` when that
/// target is not drained.
pub(crate) async fn undrain(
    State(scaler): State<Autoscaler>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<DrainAnswer>, Failure> {
    let target = target(&kind, &name)?;
    let drain = scaler.undrain(&target).await?;
    let now = scaler.now();
    Ok(Json(DrainAnswer::of(drain, now)))
}

/// The answer of `GET /api/v1/generations`.
#[derive(Debug, Serialize)]
pub(crate) struct GenerationsAnswer {
    generations: Vec<GenerationStatus>,
}

/// `GET /api/v1/generations`: each auto-scale config's generation, its current and outdated
/// servers and its rollout.
pub(crate) async fn generations(
    State(scaler): State<Autoscaler>,
) -> Result<Json<GenerationsAnswer>, Failure> {
    scaler.start().await?;
    Ok(Json(GenerationsAnswer {
        generations: scaler.generations(),
    }))
}

/// The answer of `POST /api/v1/rollouts/{config}/resume`.
#[derive(Debug, Serialize)]
pub(crate) struct ResumedAnswer {
    config: String,
    rollout: RolloutState,
}

/// `POST /api/v1/rollouts/{config}/resume`: `200` with the rollout, `409` when it is not
/// paused.
pub(crate) async fn resume_rollout(
    State(scaler): State<Autoscaler>,
    KnownConfig(config): KnownConfig,
) -> Result<Json<ResumedAnswer>, Failure> {
    let rollout = scaler.resume_rollout(&config).await?;
    Ok(Json(ResumedAnswer { config, rollout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_a_server_by_uuid_a_config_or_a_pool() {
        let id = uuid::Uuid::from_u128(5);
        assert_eq!(
            target("server", &id.to_string()).unwrap(),
            DrainTarget::Server(ServerId(id))
        );
        assert_eq!(
            target("config", "c").unwrap(),
            DrainTarget::Config("c".into())
        );
        assert_eq!(target("pool", "p").unwrap(), DrainTarget::Pool("p".into()));
        let e = target("server", "nope").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.reason, "server id `nope` is not a UUID");
        let e = target("host", "x").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
