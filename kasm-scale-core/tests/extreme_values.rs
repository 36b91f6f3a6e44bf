//! Extreme numbers in a configuration or in the simulator's inputs never panic: they are refused
//! with a clear error naming the field and the allowed range, or (for values built in code that
//! skipped validation) clamped where they are turned into durations.

use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::config::{Config, Distribution, Format, MemoryVmConfig, VmProviderConfig};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::sim::{SimOptions, parse_trace, simulate};
use kasm_scale_core::traits::{BackendError, Owner, VmProvider, VmSpec};
use kasm_scale_core::{ConfigError, load_str};

/// A one-pool document on a memory provider; `provider` and `autoscale` are extra TOML lines
/// for the provider and the auto-scale config.
fn text(provider: &str, autoscale: &str) -> String {
    format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 5
{provider}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
minimum_pool_standby_sessions = 1
{autoscale}
"#
    )
}

fn errors_of(text: &str) -> Vec<String> {
    match load_str(text, Format::Toml) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems.iter().map(|p| p.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn short_run() -> (SimOptions, Vec<kasm_scale_core::sim::TraceEvent>) {
    let options = SimOptions {
        duration: Some(jiff::SignedDuration::from_mins(10)),
        ..SimOptions::default()
    };
    let trace = parse_trace("0,start,a,p\n300,end,a,p\n", options.start).unwrap();
    (options, trace)
}

#[test]
fn a_huge_boot_latency_is_refused_when_loading() {
    assert_eq!(
        errors_of(&text("boot_latency = { fixed = 1e300 }", "")),
        ["vm_providers[0].boot_latency: must be between 0 and 604800 seconds (7 days), got 1e300"]
    );
}

#[test]
fn a_huge_boot_latency_built_in_code_does_not_panic_the_simulation() {
    let mut config: Config = load_str(&text("", ""), Format::Toml).unwrap().config;
    let VmProviderConfig::Memory(m) = &mut config.vm_providers[0] else {
        unreachable!()
    };
    m.boot_latency = Distribution::Fixed(1e300);
    m.rate_limit_per_second = Some(1e-300);
    let (options, trace) = short_run();
    let err = simulate(&config, &trace, &options).unwrap_err().to_string();
    assert!(
        err.contains(
            "vm_providers[0].boot_latency: must be between 0 and 604800 seconds (7 days), got 1e300"
        ) && err.contains(
            "vm_providers[0].rate_limit_per_second: must be between 0.001 and 100000 calls per second, got 1e-300"
        ),
        "{err}"
    );
}

fn spec(n: u128) -> VmSpec {
    VmSpec {
        owner: Owner {
            owner_id: "o".into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
        hostname: format!("H{n}"),
        startup_script: Secret::new(format!("token-{n}")),
    }
}

fn memory(boot: Distribution, rate: Option<f64>) -> MemoryVmConfig {
    let config = load_str(&text("", ""), Format::Toml).unwrap().config;
    let VmProviderConfig::Memory(mut m) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    m.boot_latency = boot;
    m.checkin_delay = Distribution::Normal {
        mean: f64::MAX,
        std_dev: f64::MAX,
    };
    m.rate_limit_per_second = rate;
    m
}

#[tokio::test(start_paused = true)]
async fn the_memory_cloud_clamps_extreme_values_built_in_code() {
    for (boot, rate) in [
        (Distribution::Fixed(1e300), Some(1e-300)),
        (Distribution::Fixed(f64::MAX), Some(0.0)),
        (Distribution::Uniform([f64::MAX, f64::MAX]), Some(-1.0)),
        (Distribution::Fixed(f64::NAN), Some(f64::NAN)),
        (Distribution::Fixed(f64::INFINITY), Some(f64::INFINITY)),
        (Distribution::Fixed(5e-324), Some(5e-324)),
    ] {
        let cloud = MemoryCloud::new(memory(boot.clone(), rate), 1);
        let mut created = 0;
        for n in 0..3 {
            match cloud.create(&spec(n)).await {
                Ok(_) => created += 1,
                Err(BackendError::RateLimited { retry_after, .. }) => {
                    let wait = retry_after.expect("a wait");
                    assert!(wait <= Duration::from_secs(366 * 86_400), "{wait:?}");
                }
                Err(e) => panic!("{boot:?} {rate:?}: {e}"),
            }
        }
        assert!(created >= 1, "{boot:?} {rate:?}");
        // The far-away boot and check-in are reported as the next event, not as an overflow.
        assert!(cloud.next_event().is_some());
        assert!(cloud.due_checkins().is_empty());
    }
}
