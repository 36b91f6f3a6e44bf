//! Embedding the auto-scaler in a broker: build it from a configuration, let it tick, ask for
//! sessions and pass the guests' check-ins on. Runs on tokio's paused clock against the
//! in-memory cloud, so it finishes at once: `cargo run --example embed`.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale::config::{Format, VmProviderConfig};
use kasm_scale::controller::{Autoscaler, CheckinStatus, Event, SessionOutcome};
use kasm_scale::engine::SessionRequest;
use kasm_scale::memory::MemoryCloud;

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
    let config = kasm_scale::load_str(CONFIG, Format::Toml)?.config;
    let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    let cloud = Arc::new(MemoryCloud::new(memory, 42));
    let scaler = Autoscaler::builder(config)
        .owner_id("example-broker")
        .provider(cloud.clone())
        .build()?;
    let mut events = scaler.subscribe();

    // A user arrives before anything runs: the request waits and the next tick provisions.
    let outcome = scaler
        .request_session(
            "desktops",
            &SessionRequest {
                user: Some("alice".into()),
            },
        )
        .await?;
    println!("alice: {outcome:?}");
    for _ in 0..12 {
        scaler.tick().await;
        scaler.settle().await;
        // The broker's HTTP endpoint would receive this from the guest; the in-memory cloud
        // hands over what the startup script would have sent.
        for checkin in cloud.due_checkins() {
            let script = checkin.startup_script.expose();
            let token = script
                .split("\"token\":\"")
                .nth(1)
                .and_then(|t| t.split('"').next());
            if let Some(token) = token {
                scaler
                    .check_in(checkin.server_id, token, &CheckinStatus::running())
                    .await?;
            }
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
