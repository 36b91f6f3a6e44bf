//! The controller: CPU time of one tick for 100 pools × 100 servers (criterion), and, on virtual
//! time, the time to capacity for a burst of 1,000 session requests at 4 sessions per server with
//! 120 s boot and a create rate limit of 2 per second, next to its lower bound
//! (250 servers / 2 per second + 120 s = 245 s).

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kasm_scale::config::{Config, Format, VmProviderConfig};
use kasm_scale::controller::{Autoscaler, SessionOutcome};
use kasm_scale::engine::{ServerState, SessionRequest};
use kasm_scale::load_str;
use kasm_scale::memory::MemoryCloud;
use kasm_scale::sim::deliver_checkins;

fn config(pools: usize, minimum: u32, sessions: u32, max: u32) -> Config {
    let mut text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = {max}
startup_script = "{{checkin_jwt}}"
boot_latency = {{ fixed = 120 }}
checkin_delay = {{ fixed = 0 }}
rate_limit_per_second = 2.0
"#
    );
    for p in 0..pools {
        text += &format!(
            r#"
[[pools]]
server_pool_name = "pool-{p}"
[[pools.autoscale]]
autoscale_config_name = "cfg-{p}"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = {minimum}
max_simultaneous_sessions_per_server = {sessions}
reusable = {reusable}
connection_credential_type = "SSO User Accounts"
require_checkin = true
"#,
            reusable = sessions > 1
        );
    }
    load_str(&text, Format::Toml).expect("bench config").config
}

fn world(config: Config) -> (Autoscaler, Arc<MemoryCloud>) {
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .rate_limit("mem", 2.0)
        .concurrency(16)
        .epoch("2026-11-30T08:00:00Z".parse().expect("time"))
        .build()
        .expect("autoscaler");
    (scaler, cloud)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn tick(c: &mut Criterion) {
    let rt = runtime();
    // 100 pools, each keeping 100 free single-session servers: 10,000 servers once steady.
    let (scaler, cloud) = rt.block_on(async {
        let (scaler, cloud) = world(config(100, 100, 1, 10_000));
        while scaler
            .servers()
            .iter()
            .filter(|s| s.state == ServerState::Running)
            .count()
            < 10_000
        {
            scaler.tick().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            deliver_checkins(&scaler, &cloud).await;
        }
        (scaler, cloud)
    });
    assert_eq!(cloud.vm_count(), 10_000);
    c.bench_function("controller/tick_100_pools_x_100_servers", |b| {
        // The tick and the background work it starts (the reconcile every tenth tick).
        b.iter(|| {
            rt.block_on(async {
                scaler.tick().await;
                scaler.settle().await;
            })
        })
    });
    assert_eq!(
        cloud.vm_count(),
        10_000,
        "a steady pool ticks without changes"
    );
}

/// Virtual seconds from a burst of 1,000 requests until every one has a session.
fn time_to_capacity() -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let (scaler, cloud) = world(config(1, 0, 4, 1_000));
        let start = tokio::time::Instant::now();
        let mut waiting = 0;
        for _ in 0..1_000 {
            if let SessionOutcome::Queued { .. } = scaler
                .request_session("pool-0", &SessionRequest::default())
                .await
                .expect("request")
            {
                waiting += 1;
            }
        }
        assert_eq!(waiting, 1_000);
        // Aggressive scaling: the broker ticks at once; the guests check in as they boot.
        let ticking = tokio::spawn({
            let scaler = scaler.clone();
            async move { scaler.tick().await }
        });
        loop {
            deliver_checkins(&scaler, &cloud).await;
            let seated: u32 = scaler.servers().iter().map(|s| s.sessions).sum();
            if seated == 1_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ticking.await.expect("tick");
        start.elapsed().as_secs_f64()
    })
}

fn capacity(_: &mut Criterion) {
    let t = time_to_capacity();
    let bound = 250.0 / 2.0 + 120.0;
    println!(
        "time to capacity: {t:.1} s of virtual time; lower bound {bound:.0} s; ratio {:.3}",
        t / bound
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = tick, capacity
}
criterion_main!(benches);
