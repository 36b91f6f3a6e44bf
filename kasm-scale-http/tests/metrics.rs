//! `/metrics` is Prometheus text and its values follow the servers (one test in this binary:
//! the recorder is process-wide).

mod common;

use axum::http::StatusCode;
use common::world;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

async fn scrape(w: &common::World) -> String {
    let response = w
        .app
        .clone()
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Every line is a comment or `name{labels} value` with a number: the text format's grammar.
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("TYPE ") || comment.starts_with("HELP "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples.push((series.to_owned(), value));
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
}

#[tokio::test(start_paused = true)]
async fn metrics_parse_and_follow_the_servers() {
    let w = world().await;
    w.tick().await;
    let first = parse(&scrape(&w).await);
    assert_eq!(
        value(&first, r#"kasm_scale_servers{config="c",state="starting"}"#),
        2.0
    );
    assert_eq!(
        value(&first, r#"kasm_scale_sessions{pool="p",kind="starting"}"#),
        2.0
    );
    assert_eq!(
        value(
            &first,
            r#"kasm_scale_provisions_total{config="c",cause="below_minimum"}"#
        ),
        2.0
    );
    for (_, token) in w.tokens() {
        let (status, _) = w
            .post(
                &format!("/api/set_server_status?token={token}"),
                json!({"status": "running"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = w
        .post(
            "/api/set_server_status?token=bad",
            json!({"status": "running"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let second = parse(&scrape(&w).await);
    assert_eq!(
        value(
            &second,
            r#"kasm_scale_servers{config="c",state="starting"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&second, r#"kasm_scale_servers{config="c",state="running"}"#),
        2.0
    );
    assert_eq!(
        value(&second, r#"kasm_scale_sessions{pool="p",kind="free"}"#),
        2.0
    );
    assert_eq!(
        value(&second, r#"kasm_scale_checkins_total{result="accepted"}"#),
        2.0
    );
    assert_eq!(
        value(&second, r#"kasm_scale_checkins_total{result="refused"}"#),
        1.0
    );
    assert_eq!(
        value(
            &second,
            r#"kasm_scale_time_to_ready_seconds_count{config="c"}"#
        ),
        2.0
    );
    assert!(value(&second, "kasm_scale_tick_seconds_count") >= 1.0);
    assert!(
        second
            .iter()
            .any(|(s, _)| s.starts_with("kasm_scale_backend_call_seconds_bucket{backend=\"mem\"")),
        "backend latency per provider"
    );

    // Day-two gauges: servers by generation, drains in force, paused rollouts.
    assert_eq!(
        value(
            &second,
            r#"kasm_scale_generation_servers{config="c",generation="current"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &second,
            r#"kasm_scale_generation_servers{config="c",generation="outdated"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&second, r#"kasm_scale_rollout_paused{config="c"}"#),
        0.0
    );
    assert_eq!(value(&second, r#"kasm_scale_drains{kind="pool"}"#), 0.0);
    w.scaler
        .drain(kasm_scale_core::controller::DrainRequest {
            target: kasm_scale_core::controller::DrainTarget::Config("c".into()),
            by: "test".into(),
            reason: "metrics".into(),
            until: None,
            then: Default::default(),
        })
        .await
        .unwrap();
    let third = parse(&scrape(&w).await);
    assert_eq!(value(&third, r#"kasm_scale_drains{kind="config"}"#), 1.0);
    assert_eq!(value(&third, r#"kasm_scale_drains{kind="server"}"#), 0.0);
    assert_eq!(value(&third, "kasm_scale_drains_total"), 1.0);
}
