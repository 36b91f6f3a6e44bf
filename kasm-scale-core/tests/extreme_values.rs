//! Extreme numbers in a configuration (0, subnormals, 1e-300, 1e300, f64::MAX, the largest
//! integers) never panic: loading refuses them with the field's path and its range, or the
//! configuration builds a controller and a short simulation runs to its end.

use std::sync::Arc;

use jiff::SignedDuration;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::sim::{SimOptions, parse_trace, simulate};
use kasm_scale_core::{ConfigError, load_str};
use proptest::prelude::*;

fn config(
    boot: &str,
    checkin: &str,
    rate: &str,
    api_rate: &str,
    checkin_timeout: &str,
    backoff: &str,
) -> String {
    format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 5
boot_latency = {{ fixed = {boot} }}
checkin_delay = {{ uniform = [0, {checkin}] }}
rate_limit_per_second = {rate}
api = {{ rate_limit_per_second = {api_rate} }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
minimum_pool_standby_sessions = 2
checkin_timeout = {checkin_timeout}
downscale_backoff = {backoff}
"#
    )
}

fn float() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0.0".to_owned()),
        Just("5e-324".to_owned()),
        Just("1e-300".to_owned()),
        Just("0.001".to_owned()),
        Just("1.5".to_owned()),
        Just("60.0".to_owned()),
        Just("1e300".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        Just("-1.0".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        (0.0f64..1e6).prop_map(|x| format!("{x:?}")),
    ]
}

fn integer() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("600".to_owned()),
        Just("4294967295".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("-1".to_owned()),
        (0u64..10_000_000).prop_map(|x| x.to_string()),
    ]
}

/// Runs one configuration as far as it goes: load → build → a 30-minute simulation.
fn exercise(text: &str) -> Result<(), String> {
    let config = match load_str(text, Format::Toml) {
        Ok(loaded) => loaded.config,
        Err(ConfigError::Invalid { problems }) => {
            // Every refusal names its field.
            for p in &problems {
                assert!(!p.path.is_empty() && !p.message.is_empty(), "{p:?}");
            }
            return Err(problems[0].to_string());
        }
        Err(e) => return Err(e.to_string()),
    };
    // A controller builds from it (the builder checks what loading checked).
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let scaler = Autoscaler::builder(config.clone())
            .provider(Arc::new(MemoryCloud::new(m, 1)))
            .build()
            .expect("a loaded configuration builds");
        scaler.tick().await;
    });
    let options = SimOptions::default();
    let trace = parse_trace(
        "0,start,s1,p\n120,start,s2,p\n600,end,s1,p\n",
        options.start,
    )
    .unwrap();
    let options = SimOptions {
        duration: Some(SignedDuration::from_mins(30)),
        ..options
    };
    simulate(&config, &trace, &options).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_boot_latency_of_1e300_is_refused_with_its_path() {
    let text = config("1e300", "30", "10.0", "10.0", "600", "600");
    let error = exercise(&text).unwrap_err();
    assert_eq!(
        error,
        "vm_providers[0].boot_latency: seconds must be 0 to 604800 (7 days), got 1e300"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn extreme_numbers_never_panic(
        boot in float(),
        checkin in float(),
        rate in float(),
        api_rate in float(),
        checkin_timeout in integer(),
        backoff in integer(),
    ) {
        let text = config(&boot, &checkin, &rate, &api_rate, &checkin_timeout, &backoff);
        let _ = exercise(&text);
    }
}

#[test]
fn the_largest_and_smallest_accepted_values_build_and_simulate() {
    let largest = config("604800", "604800", "0.001", "0.001", "604800", "2592000");
    assert_eq!(exercise(&largest), Ok(()));
    let smallest = config("5e-324", "0", "100000", "100000", "1", "0");
    assert_eq!(exercise(&smallest), Ok(()));
}
