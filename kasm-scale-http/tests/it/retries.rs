//! A broker that retries: a session request whose call timed out (its save held up by a
//! stalling store) is repeated with the same `Idempotency-Key`, and the repeat answers the
//! session the first attempt made (saying it is a replay), never a second one; a first attempt
//! that died before its save is made anew by the repeat, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, Records};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::traits::{StateStore, StoreError};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "retry-test-key-0123456789-0123456789";

const CONFIG: &str = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 4
boot_latency = { fixed = 0 }
checkin_delay = { fixed = 0 }
startup_script = "{checkin_jwt}"

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
max_simultaneous_sessions_per_server = 4
reusable = true
minimum_pool_standby_sessions = 4

[[pools]]
server_pool_name = "other"

[broker_api]
keys = ["retry-test-key-0123456789-0123456789"]
"#;

/// A durable store whose saves hang while `stalled` is set.
#[derive(Debug, Default)]
struct Stalling {
    inner: MemoryStore,
    stalled: AtomicBool,
}

#[async_trait]
impl StateStore for Stalling {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        while self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.inner.save(records).await
    }
}

async fn controller(store: Arc<Stalling>) -> (Autoscaler, Router) {
    let config = kasm_scale_core::load_str(CONFIG, Format::Toml)
        .unwrap()
        .config;
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 3));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .store(store)
        .build()
        .unwrap();
    for _ in 0..3 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
    }
    assert!(
        scaler.pools().iter().any(|p| p.free_sessions >= 1),
        "a ready server: {:?} {:?}",
        scaler.pools(),
        scaler.servers()
    );
    let app = kasm_scale_http::router(scaler.clone());
    (scaler, app)
}

async fn ask(app: &Router, pool: &str, key: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::post(format!("/api/v1/pools/{pool}/sessions"))
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, replayed, body)
}

fn used(scaler: &Autoscaler) -> u32 {
    scaler.pools().iter().map(|p| p.used_sessions).sum()
}

#[tokio::test(start_paused = true)]
async fn a_retried_request_gets_the_session_its_timed_out_attempt_made() {
    let store = Arc::new(Stalling::default());
    let (scaler, app) = controller(store.clone()).await;

    store.stalled.store(true, Ordering::SeqCst);
    let (status, _, body) = ask(&app, "p", Some("order-1")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(used(&scaler), 1, "the timed-out attempt took effect here");
    store.stalled.store(false, Ordering::SeqCst);

    // The broker retries, twice: the same session and server, said to be a replay.
    let (status, replayed, first) = ask(&app, "p", Some("order-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(first["replayed"], true);
    let (status, _, again) = ask(&app, "p", Some("order-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["session"], first["session"]);
    assert_eq!(again["server"]["id"], first["server"]["id"]);
    assert_eq!(used(&scaler), 1, "one session, not three");
    // It is saved, with its key.
    let saved = store.inner.load().await.unwrap().unwrap();
    assert_eq!(saved.sessions.len(), 1);
    assert!(saved.requests.contains_key("order-1"));

    // A new key makes a new session; the same key for another pool is refused.
    let (status, replayed, other) = ask(&app, "p", Some("order-2")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed.as_deref(), Some("false"));
    assert_ne!(other["session"], first["session"]);
    let (status, _, body) = ask(&app, "other", Some("order-1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error_message"].as_str().unwrap().contains("pool `p`"),
        "{body}"
    );
    let long = "k".repeat(300);
    let (status, _, body) = ask(&app, "p", Some(&long)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Idempotency-Key:")
    );
    assert_eq!(used(&scaler), 2);

    // A day later the key is forgotten (on the reconcile cadence) and makes a new session.
    tokio::time::advance(Duration::from_secs(24 * 3600 + 60)).await;
    for _ in 0..10 {
        scaler.tick().await;
    }
    let (_, replayed, late) = ask(&app, "p", Some("order-1")).await;
    assert_eq!(replayed.as_deref(), Some("false"));
    assert_ne!(late["session"], first["session"]);
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_that_died_unsaved_is_made_once_by_its_retry() {
    let store = Arc::new(Stalling::default());
    let (scaler, app) = controller(store.clone()).await;
    store.stalled.store(true, Ordering::SeqCst);
    let (status, _, _) = ask(&app, "p", Some("order-9")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    // The process dies before the save lands: its memory is gone.
    drop(app);
    drop(scaler);
    store.stalled.store(false, Ordering::SeqCst);
    let (scaler, app) = controller(store.clone()).await;
    let (status, replayed, body) = ask(&app, "p", Some("order-9")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        replayed.as_deref(),
        Some("false"),
        "nothing of it was saved"
    );
    let (_, replayed, again) = ask(&app, "p", Some("order-9")).await;
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again["session"], body["session"]);
    assert_eq!(used(&scaler), 1);
}
