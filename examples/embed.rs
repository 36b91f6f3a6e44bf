//! Embedding the auto-scaler in a broker: build it from a configuration, mount its HTTP routes
//! (Kasm's guest check-in API) next to the broker's own, let it tick and ask for sessions. The
//! guests' check-ins go through the router as they would over HTTPS. Runs on tokio's paused
//! clock against the in-memory cloud, so it finishes at once: `cargo run --example embed`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use kasm_scale::config::VmProviderConfig;
use kasm_scale::memory::token_in;
use kasm_scale::prelude::*;
use tower::ServiceExt;

const CONFIG: &str = r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "cloud"
max_instances = 10
startup_script = "#!/bin/sh\ncurl -X POST https://{upstream_auth_address}/api/set_server_status -d '{{\"token\":\"{checkin_jwt}\",\"status\":\"running\"}}'\n"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-cloud"
vm_provider_config_id = "cloud"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
require_checkin = true
"##;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = load_str(CONFIG, Format::Toml)?.config;
    let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else {
        return Err("the example's config has one memory cloud".into());
    };
    let cloud = Arc::new(MemoryCloud::new(memory, 42));
    let scaler = Autoscaler::builder(config)
        .owner_id("example-broker")
        .provider(cloud.clone())
        .build()?;
    let mut events = scaler.subscribe();
    // The broker's own routes, and the guests' API mounted in one line.
    let app = axum::Router::new()
        .route("/broker/hello", axum::routing::get(|| async { "hello" }))
        .merge(kasm_scale::http::router(scaler.clone()));

    // A user arrives before anything runs: the request waits and the next tick provisions.
    let outcome = scaler
        .request_session(
            "desktops",
            &SessionRequest {
                user: Some("alice".into()),
                request_id: None,
                second_session: false,
            },
        )
        .await?;
    println!("alice: {outcome:?}");
    for _ in 0..12 {
        scaler.tick().await;
        scaler.settle().await;
        // Each guest runs its startup script, which posts the check-in Kasm's way; the
        // in-memory cloud hands over what that script would send.
        for checkin in cloud.due_checkins() {
            let Some(token) = token_in(checkin.startup_script.expose()) else {
                continue;
            };
            let request = Request::post(format!("/api/set_server_status?token={token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"status": "running", "status_progress": "100"}"#,
                ))?;
            let answer = app.clone().oneshot(request).await?;
            println!("check-in of {}: {}", checkin.server_id, answer.status());
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    while let Ok(event) = events.try_recv() {
        if let Event::SessionAssigned { session, server } = event {
            println!("alice's request {session:?} now runs on {server}");
        }
    }
    if let SessionOutcome::Assigned { server, .. } = scaler
        .request_session("desktops", &SessionRequest::default())
        .await?
    {
        println!("a second user lands on {server} at once");
    }
    for s in scaler.servers() {
        println!(
            "{} {:?} sessions {}/{}",
            s.hostname, s.state, s.sessions, s.capacity
        );
    }
    Ok(())
}
