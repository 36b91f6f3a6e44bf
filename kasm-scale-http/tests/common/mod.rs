//! The test world shared by the router tests: a controller on the in-memory cloud and its
//! router, driven through tower's `oneshot` (no socket).
#![allow(dead_code)]

pub mod net;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::engine::ServerState;
use kasm_scale_core::memory::{MemoryCloud, token_in};
use kasm_scale_core::testkit::Fixture;
use serde_json::Value;
use tower::ServiceExt;

/// The broker API keys of [`world`] (two: a rotation in progress).
pub const OLD_KEY: &str = "old-key-0123456789-0123456789-0123456789";
pub const NEW_KEY: &str = "new-key-0123456789-0123456789-0123456789";

/// The configuration of [`world`] without its `[broker_api]`: pool `p` keeps two free
/// single-seat servers on the in-memory cloud, whose guests boot and check in at once.
pub fn fixture() -> Fixture {
    Fixture::memory_pool("p")
        .max_instances(4)
        .startup_script(
            "curl -k -f https://{upstream_auth_address}/api/set_server_status?token={checkin_jwt}",
        )
        .boot_latency(0)
        .checkin_delay(0)
        .minimum_standby(2)
        .require_checkin(true)
}

/// A `[broker_api]` section with `keys`.
pub fn broker_keys(keys: &[&str]) -> String {
    format!("[broker_api]\nkeys = {keys:?}\n")
}

pub struct World {
    pub scaler: Autoscaler,
    pub cloud: Arc<MemoryCloud>,
    pub app: Router,
}

pub async fn world() -> World {
    world_with(&fixture().toml(&broker_keys(&[OLD_KEY, NEW_KEY])).to_toml()).await
}

/// A world on another configuration.
pub async fn world_with(text: &str) -> World {
    let config = kasm_scale_core::load_str(text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 3));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .build()
        .unwrap();
    let app = kasm_scale_http::router(scaler.clone());
    World { scaler, cloud, app }
}

impl World {
    pub async fn tick(&self) {
        self.scaler.tick().await;
        self.scaler.settle().await;
    }

    /// The tokens of the servers, as their scripts hold them.
    pub fn tokens(&self) -> Vec<(kasm_scale_core::engine::ServerId, String)> {
        self.scaler
            .servers()
            .into_iter()
            .filter_map(|s| {
                let script = self.cloud.startup_script(s.vm_id.as_deref()?)?;
                Some((s.id, token_in(script.expose())?.to_owned()))
            })
            .collect()
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("a JSON answer: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub fn state(&self, id: kasm_scale_core::engine::ServerId) -> Option<ServerState> {
        self.scaler
            .servers()
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.state)
    }
}
