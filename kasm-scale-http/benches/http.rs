//! Check-ins per second through HTTP (loopback, HTTP/1.1 keep-alive, 32 connections): Kasm's
//! `POST /api/set_server_status?token=…` with EdDSA verification by the router, next to a bare
//! axum handler that answers 200 to the same request, in the same run. Also prints the p50 /
//! p99 latency of one check-in under that load, and the resident memory of a controller that
//! knows 10,000 servers. The router is served twice: by `axum::serve` (no connection cap, no
//! timeouts: the listener before the hardening) and by [`kasm_scale_http::serve`] with its
//! default limits (connection cap, header-read and idle timeouts), so the hardening's cost is
//! the difference of the two in the same run.
//!
//! The broker's hot path is measured beside it on the same 1,000-server controller:
//! `session_lookup` (`GET /api/v1/sessions/{id}` of a seated session) and `session_cycle`
//! (`POST /api/v1/pools/p/sessions` with a JSON body, then `DELETE /api/v1/sessions/{id}`).

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyper::Request;
use hyper_util::rt::TokioIo;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus};
use kasm_scale_core::engine::ServerState;
use kasm_scale_core::memory::{MemoryCloud, token_in};

const CONNECTIONS: usize = 32;
const REQUESTS: usize = 4_000;

/// The broker API key of the bench's configuration.
const BROKER_KEY: &str = "bench-key-0123456789-0123456789-0123456789";

/// Sessions seated before the session benches (each bench client looks up its own).
const SEATED: usize = 256;

fn config(servers: u32) -> kasm_scale_core::config::Config {
    let text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "127.0.0.1"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = {servers}
startup_script = "{{checkin_jwt}}"
boot_latency = {{ fixed = 0 }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = {servers}
require_checkin = true
reusable = true

[broker_api]
keys = ["{BROKER_KEY}"]
"#
    );
    kasm_scale_core::load_str(&text, Format::Toml)
        .expect("bench config")
        .config
}

/// A controller with `servers` checked-in servers, and their tokens.
async fn controller(servers: u32) -> (Autoscaler, Vec<String>) {
    let config = config(servers);
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    let cloud = Arc::new(MemoryCloud::new(m, 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .concurrency(64)
        .build()
        .expect("autoscaler");
    scaler.tick().await;
    scaler.settle().await;
    let mut tokens = Vec::new();
    for s in scaler.servers() {
        let script = cloud
            .startup_script(s.vm_id.as_deref().expect("a VM"))
            .expect("a script");
        let token = token_in(script.expose()).expect("a token").to_owned();
        scaler
            .check_in_token(&token, &CheckinStatus::running())
            .await
            .expect("check-in");
        tokens.push(token);
    }
    assert!(
        scaler
            .servers()
            .iter()
            .all(|s| s.state == ServerState::Running)
    );
    (scaler, tokens)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The router served as `kasm-scale serve` serves it: the hardened listener, default limits.
async fn serve_hardened(scaler: Autoscaler) -> SocketAddr {
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let options = kasm_scale_http::ServeOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        tls: None,
        insecure_http: false,
        shutdown_grace: Duration::from_secs(1),
        limits: kasm_scale_http::ConnectionLimits::default(),
        reload: None,
    };
    let app = kasm_scale_http::router(scaler.clone());
    tokio::spawn(kasm_scale_http::serve(
        scaler,
        app,
        options,
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        std::future::pending(),
    ));
    bound_rx.await.expect("the hardened listener is bound")
}

/// `REQUESTS` check-ins over `CONNECTIONS` keep-alive connections; the latency of each.
async fn load(addr: SocketAddr, tokens: &Arc<Vec<String>>) -> Vec<Duration> {
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let tokens = tokens.clone();
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(REQUESTS / CONNECTIONS);
            for i in 0..REQUESTS / CONNECTIONS {
                let token = &tokens[(c * 7919 + i) % tokens.len()];
                let request = Request::post(format!("/api/set_server_status?token={token}"))
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes(
                        r#"{"status":"running","status_message":"ready","status_progress":"100"}"#,
                    )))
                    .expect("request");
                let began = Instant::now();
                let response = sender.send_request(request).await.expect("answer");
                assert_eq!(response.status(), StatusCode::OK);
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(REQUESTS);
    for c in clients {
        all.extend(c.await.expect("client"));
    }
    all
}

/// What a broker client does in one step of [`broker_load`].
#[derive(Debug, Clone, Copy)]
enum BrokerStep {
    /// `GET /api/v1/sessions/{id}` of a seated session.
    Lookup,
    /// `POST /api/v1/pools/p/sessions` (a JSON body), then `DELETE` of the session it made.
    Cycle,
}

/// `REQUESTS` broker steps over `CONNECTIONS` keep-alive connections; the latency of each.
async fn broker_load(addr: SocketAddr, seated: &Arc<Vec<u64>>, step: BrokerStep) -> Vec<Duration> {
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let seated = seated.clone();
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let request = |method: &str, uri: String, body: &'static str| {
                let mut builder = Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("host", "127.0.0.1")
                    .header("authorization", format!("Bearer {BROKER_KEY}"));
                if !body.is_empty() {
                    builder = builder.header("content-type", "application/json");
                }
                builder
                    .body(http_body_util::Full::new(bytes(body)))
                    .expect("request")
            };
            let mut latencies = Vec::with_capacity(REQUESTS / CONNECTIONS);
            for i in 0..REQUESTS / CONNECTIONS {
                let began = Instant::now();
                match step {
                    BrokerStep::Lookup => {
                        let id = seated[(c * 7919 + i) % seated.len()];
                        let response = sender
                            .send_request(request("GET", format!("/api/v1/sessions/{id}"), ""))
                            .await
                            .expect("answer");
                        assert_eq!(response.status(), StatusCode::OK);
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                    }
                    BrokerStep::Cycle => {
                        let response = sender
                            .send_request(request(
                                "POST",
                                "/api/v1/pools/p/sessions".into(),
                                r#"{"user":"bench"}"#,
                            ))
                            .await
                            .expect("answer");
                        assert_eq!(response.status(), StatusCode::CREATED);
                        let body = http_body_util::BodyExt::collect(response.into_body())
                            .await
                            .expect("body")
                            .to_bytes();
                        let answer: serde_json::Value =
                            serde_json::from_slice(&body).expect("a JSON answer");
                        let id = answer["session"].as_u64().expect("a session id");
                        let response = sender
                            .send_request(request("DELETE", format!("/api/v1/sessions/{id}"), ""))
                            .await
                            .expect("answer");
                        assert_eq!(response.status(), StatusCode::NO_CONTENT);
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                    }
                }
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(REQUESTS);
    for c in clients {
        all.extend(c.await.expect("client"));
    }
    all
}

/// `SEATED` sessions on the controller's servers, by id.
async fn seat(scaler: &Autoscaler) -> Vec<u64> {
    let mut ids = Vec::with_capacity(SEATED);
    for _ in 0..SEATED {
        let outcome = scaler
            .request_session("p", &kasm_scale_core::engine::SessionRequest::default())
            .await
            .expect("a session");
        match outcome {
            kasm_scale_core::controller::SessionOutcome::Assigned { session, .. } => {
                ids.push(session.0);
            }
            other => panic!("a seated session expected, got {other:?}"),
        }
    }
    ids
}

fn bytes(text: &'static str) -> hyper::body::Bytes {
    hyper::body::Bytes::from_static(text.as_bytes())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Resident memory of this process, in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn checkins(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (router_addr, hardened_addr, bare_addr, tokens) = rt.block_on(async {
        let (scaler, tokens) = controller(1_000).await;
        let router = serve(kasm_scale_http::router(scaler.clone())).await;
        let hardened = serve_hardened(scaler).await;
        let bare =
            serve(Router::new().route("/api/set_server_status", post(|| async { StatusCode::OK })))
                .await;
        (router, hardened, bare, Arc::new(tokens))
    });
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(REQUESTS as u64));
    group.sample_size(10);
    let targets = [
        ("checkin_router", router_addr),
        ("checkin_hardened", hardened_addr),
        ("bare_handler", bare_addr),
    ];
    for (name, addr) in targets {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(load(addr, &tokens)));
        });
    }
    group.finish();
    for (name, addr) in targets {
        let began = Instant::now();
        let mut latencies = rt.block_on(load(addr, &tokens));
        let rate = REQUESTS as f64 / began.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "{name}: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({CONNECTIONS} connections)",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        );
    }
}

fn sessions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (addr, seated) = rt.block_on(async {
        let (scaler, _) = controller(1_000).await;
        let seated = seat(&scaler).await;
        (
            serve(kasm_scale_http::router(scaler)).await,
            Arc::new(seated),
        )
    });
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(REQUESTS as u64));
    group.sample_size(10);
    let steps = [
        ("session_lookup", BrokerStep::Lookup),
        ("session_cycle", BrokerStep::Cycle),
    ];
    for (name, step) in steps {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(broker_load(addr, &seated, step)));
        });
    }
    group.finish();
    for (name, step) in steps {
        let began = Instant::now();
        let mut latencies = rt.block_on(broker_load(addr, &seated, step));
        let rate = REQUESTS as f64 / began.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "{name}: {rate:.0} steps/s, p50 {:.2} ms, p99 {:.2} ms ({CONNECTIONS} connections)",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        );
    }
}

fn memory(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = rss_mib();
    let scaler = rt.block_on(async { controller(10_000).await.0 });
    let after = rss_mib();
    println!(
        "a controller knowing {} servers: RSS {after:.1} MiB (this process before it: {before:.1} MiB)",
        scaler.servers().len()
    );
}

criterion_group!(benches, checkins, sessions, memory);
criterion_main!(benches);
