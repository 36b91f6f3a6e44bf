//! `GET /metrics`: Prometheus text. The controller counts and times what it does through the
//! `metrics` facade (`kasm_scale_provisions_total{config, cause}`,
//! `kasm_scale_destroys_total{cause}`, `kasm_scale_failures_total{config}`,
//! `kasm_scale_checkins_total{result}`, `kasm_scale_checkin_seconds`,
//! `kasm_scale_time_to_ready_seconds{config}`, `kasm_scale_tick_seconds`,
//! `kasm_scale_backend_call_seconds{backend}`, `kasm_scale_backend_errors_total{backend, class}`,
//! …); this route installs the Prometheus recorder (once per process) and, at each scrape, sets
//! the gauges of the pools and servers as they stand:
//! `kasm_scale_sessions{pool, kind="free"|"used"|"starting"|"drained"}`,
//! `kasm_scale_requests_waiting{pool}`, `kasm_scale_servers{config, state}`, and (ours)
//! `kasm_scale_generation_servers{config, generation="current"|"outdated"}`,
//! `kasm_scale_drains{kind="server"|"config"|"pool"}` (drains in force) and
//! `kasm_scale_rollout_paused{config}` (1 while its rollout is paused). The controller counts
//! reloads itself (`kasm_scale_reloads_total{result}`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kasm_scale_core::controller::{Autoscaler, DrainTarget};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::reply::Failure;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use; `None` when the embedding program
/// installed another `metrics` recorder (then it exports the same names itself).
pub(crate) fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let seconds = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                120.0, 300.0, 600.0, 1800.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| b.install_recorder())
                .inspect_err(
                    |e| tracing::warn!(error = %e, "no Prometheus recorder: /metrics is off"),
                )
                .ok()
        })
        .as_ref()
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(scaler): State<Autoscaler>) -> Response {
    let Some(handle) = recorder() else {
        return Failure::new(
            StatusCode::NOT_IMPLEMENTED,
            "another metrics recorder is installed in this process",
        )
        .into_response();
    };
    gauges(&scaler);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// The pools and servers as they stand.
fn gauges(scaler: &Autoscaler) {
    for pool in scaler.pools() {
        for (kind, value) in [
            ("free", pool.free_sessions),
            ("used", pool.used_sessions),
            ("starting", pool.starting_sessions),
            ("drained", pool.drained_sessions),
            ("warm", pool.warm_sessions),
        ] {
            metrics::gauge!("kasm_scale_sessions", "pool" => pool.pool.clone(), "kind" => kind)
                .set(f64::from(value));
        }
        metrics::gauge!("kasm_scale_requests_waiting", "pool" => pool.pool.clone())
            .set(f64::from(pool.waiting));
    }
    // (ours) What each pool costs per hour now, by its offerings' prices.
    for spend in scaler.spend() {
        metrics::gauge!("kasm_scale_spend_per_hour", "pool" => spend.pool.clone())
            .set(spend.per_hour);
        metrics::gauge!("kasm_scale_unpriced_servers", "pool" => spend.pool)
            .set(f64::from(spend.unpriced));
    }
    // Every offering, so one whose skip ended shows 0 again.
    let skipped = scaler.skipped_offerings();
    for provider in &scaler.config().vm_providers {
        for offering in provider.offerings() {
            let on = skipped
                .iter()
                .any(|(p, label, _)| p == provider.name() && *label == offering.label);
            metrics::gauge!("kasm_scale_offering_skipped", "provider" => provider.name().to_owned(), "offering" => offering.label)
                .set(if on { 1.0 } else { 0.0 });
        }
    }
    // Every configured config and state, so a count that drops to zero shows zero.
    let mut counts: BTreeMap<(String, &'static str), u32> = BTreeMap::new();
    for (_, c) in scaler.config().autoscale_configs() {
        for state in [
            "provisioning",
            "starting",
            "running",
            "destroying",
            "stopping",
            "stopped",
        ] {
            counts.insert((c.autoscale_config_name.clone(), state), 0);
        }
    }
    for s in scaler.servers() {
        *counts.entry((s.config, s.state.as_str())).or_default() += 1;
    }
    for ((config, state), n) in counts {
        metrics::gauge!("kasm_scale_servers", "config" => config, "state" => state)
            .set(f64::from(n));
    }
    day_two(scaler);
}

/// Generations, drains and rollouts as they stand (ours).
fn day_two(scaler: &Autoscaler) {
    for g in scaler.generations() {
        for (generation, n) in [("current", g.current), ("outdated", g.outdated)] {
            metrics::gauge!("kasm_scale_generation_servers", "config" => g.config.clone(), "generation" => generation)
                .set(f64::from(n));
        }
        let paused = g
            .rollout
            .as_ref()
            .is_some_and(|r| r.paused.is_some() && r.finished_at.is_none());
        metrics::gauge!("kasm_scale_rollout_paused", "config" => g.config).set(if paused {
            1.0
        } else {
            0.0
        });
    }
    let mut kinds: BTreeMap<&'static str, u32> = [("server", 0), ("config", 0), ("pool", 0)]
        .into_iter()
        .collect();
    for drain in scaler.drains() {
        let kind = match drain.target {
            DrainTarget::Server(_) => "server",
            DrainTarget::Config(_) => "config",
            DrainTarget::Pool(_) => "pool",
        };
        *kinds.entry(kind).or_default() += 1;
    }
    for (kind, n) in kinds {
        metrics::gauge!("kasm_scale_drains", "kind" => kind).set(f64::from(n));
    }
}
