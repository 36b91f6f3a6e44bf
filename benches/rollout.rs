//! A rolling image rollout of a 500-server pool (one pool, 2,000 free sessions kept at 4 per
//! server, room for 600 servers): the CPU time of one controller tick while the rollout runs
//! (500 outdated servers, the surge booting) beside a tick of the same pool without one, and
//! the wall time of simulating the pool over 8 hours with the new image at 02:00 (which runs the
//! same 8 hours without the change too, as its baseline) beside the 8 hours alone. The figures
//! of the rollout (when the last outdated server went, minutes below the baseline) are printed.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::SignedDuration;
use kasm_scale::config::{Config, VmProviderConfig};
use kasm_scale::controller::Autoscaler;
use kasm_scale::engine::ServerState;
use kasm_scale::memory::MemoryCloud;
use kasm_scale::sim::{
    ConfigChange, SimOptions, deliver_checkins, large_pool, parse_trace, simulate,
};

/// The pool; `image` goes into the startup script (a new image is a new script).
fn config(image: &str) -> Config {
    large_pool(image)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn memory(config: &Config) -> kasm_scale::config::MemoryVmConfig {
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        unreachable!("the bench config has a memory provider")
    };
    mem
}

/// The pool once its 500 servers are ready.
async fn steady() -> (Autoscaler, Arc<MemoryCloud>) {
    let config = config("2026-11");
    let cloud = Arc::new(MemoryCloud::new(memory(&config), 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .concurrency(64)
        .epoch("2026-11-30T08:00:00Z".parse().expect("time"))
        .build()
        .expect("autoscaler");
    while scaler
        .servers()
        .iter()
        .filter(|s| s.state == ServerState::Running)
        .count()
        < 500
    {
        scaler.tick().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        deliver_checkins(&scaler, &cloud).await;
    }
    (scaler, cloud)
}

fn tick(c: &mut Criterion) {
    let rt = runtime();
    let (scaler, cloud) = rt.block_on(steady());
    assert_eq!(cloud.vm_count(), 500);
    let mut group = c.benchmark_group("rollout_500_servers");
    group.bench_function("tick_without_rollout", |b| {
        b.iter(|| {
            rt.block_on(async {
                scaler.tick().await;
                scaler.settle().await;
            })
        })
    });
    // The new image: the same cloud serving the new config. Its first ticks start the canary
    // and the surge; no guest checks in while the ticks are measured, so every measured tick
    // plans the rollout with all 500 servers outdated.
    let next = config("2026-12");
    let changes = rt.block_on(async {
        let reloaded = scaler
            .reconfiguration(next.clone())
            .provider(Arc::new(cloud.with_config(memory(&next))))
            .apply()
            .await
            .expect("reload");
        scaler.tick().await;
        scaler.settle().await;
        reloaded
    });
    assert_eq!(changes.new_generations, ["office-mem"]);
    group.bench_function("tick_during_rollout", |b| {
        b.iter(|| {
            rt.block_on(async {
                scaler.tick().await;
                scaler.settle().await;
            })
        })
    });
    group.finish();
    let status = scaler.generations();
    println!(
        "during the measured ticks: {} outdated, {} current servers (rollout {:?})",
        status[0].outdated,
        status[0].current,
        status[0].rollout.as_ref().map(|r| r.started_at)
    );
}

/// The 8 hours, a few sessions, and the options with the new image at 02:00.
fn eight_hours() -> (
    Config,
    Vec<kasm_scale::sim::TraceEvent>,
    SimOptions,
    SimOptions,
) {
    let config = config("2026-11");
    let plain = SimOptions {
        duration: Some(SignedDuration::from_hours(8)),
        ..SimOptions::default()
    };
    let trace = parse_trace(
        "600,start,a,office,alice\n7000,start,b,office,bob\n9000,end,a,office\n12000,end,b,office\n",
        plain.start,
    )
    .expect("trace");
    let changed = SimOptions {
        changes: vec![ConfigChange {
            at: SignedDuration::from_hours(2),
            config: crate::config("2026-12"),
            label: "new image".into(),
        }],
        ..plain.clone()
    };
    (config, trace, plain, changed)
}

fn simulation(c: &mut Criterion) {
    let (config, trace, plain, changed) = eight_hours();
    let (m, _) = simulate(&config, &trace, &changed).expect("simulation");
    let r = &m.changes[0];
    println!(
        "500-server rollout: {} outdated at the change, the last gone {} after it, \
         {} built ({} of an older generation), {} minutes below the baseline, {} sessions \
         ended by us; VM-hours {:.1} vs {:.1} without the change",
        r.outdated_at_change,
        r.last_outdated_gone_after_s
            .map_or("not by the end".to_owned(), |s| format!("{:.0} s", s)),
        r.built.iter().map(|b| b.servers).sum::<u64>(),
        r.built_outdated,
        r.minutes_below_baseline,
        r.sessions_ended_by_us,
        m.vm_hours,
        m.baseline.as_ref().map_or(0.0, |b| b.vm_hours)
    );
    let mut group = c.benchmark_group("rollout_500_servers");
    group.sample_size(10);
    group.bench_function("simulate_8h", |b| {
        b.iter(|| simulate(&config, &trace, &plain).expect("simulation"))
    });
    group.bench_function("simulate_8h_with_rollout_and_baseline", |b| {
        b.iter(|| simulate(&config, &trace, &changed).expect("simulation"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = tick, simulation
}
criterion_main!(benches);
