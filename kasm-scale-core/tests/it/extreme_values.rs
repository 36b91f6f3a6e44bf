//! Extreme numbers in a configuration or in the simulator's inputs never panic: they are refused
//! with a clear error naming the field and the allowed range, or (for values built in code that
//! skipped validation) clamped where they are turned into durations.

use std::cell::Cell;
use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::config::{Config, Distribution, Format, MemoryVmConfig, VmProviderConfig};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory};
use kasm_scale_core::sim::{SimOptions, deliver_checkins, parse_trace, simulate};
use kasm_scale_core::traits::{BackendError, Owner, VmProvider, VmSpec};
use kasm_scale_core::{ConfigError, load_str};
use proptest::prelude::*;
use proptest::test_runner::{TestRng, TestRunner};

/// A one-pool document on a memory provider; `provider` and `autoscale` are extra TOML lines
/// for the provider and the auto-scale config (which may set `max_instances`,
/// `minimum_pool_standby_sessions` and `reusable`, else 5, 1 and false).
fn text(provider: &str, autoscale: &str) -> String {
    let default = |section: &str, field: &str, value: &str| {
        if section.contains(&format!("{field} =")) {
            String::new()
        } else {
            format!("{field} = {value}\n")
        }
    };
    let max_instances = default(provider, "max_instances", "5");
    let minimum = default(autoscale, "minimum_pool_standby_sessions", "1");
    let reusable = default(autoscale, "reusable", "false");
    format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
{max_instances}{provider}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
{minimum}{reusable}{autoscale}
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
        offering: 0,
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
        (Distribution::Uniform([0.0, f64::INFINITY]), Some(1e300)),
        (Distribution::Uniform([-f64::MAX, f64::MAX]), None),
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

#[test]
fn simulation_options_and_trace_times_out_of_range_are_refused() {
    let config = load_str(&text("", ""), Format::Toml).unwrap().config;
    let (options, trace) = short_run();
    let refused = |options: &SimOptions, trace: &[kasm_scale_core::sim::TraceEvent]| {
        simulate(&config, trace, options)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let long = SimOptions {
        duration: Some(jiff::SignedDuration::from_hours(1000 * 366 * 24)),
        ..options.clone()
    };
    assert_eq!(
        refused(&long, &trace),
        "cannot simulate: the duration must be between 0 and 366 days, got 8784000h"
    );
    let stuck = SimOptions {
        tick: Duration::ZERO,
        ..options.clone()
    };
    assert_eq!(
        refused(&stuck, &trace),
        "cannot simulate: the tick interval must be between 1 second and 1 day, got 0ns"
    );
    let mut late = trace.clone();
    late[1].at = jiff::SignedDuration::MAX;
    assert!(
        refused(&options, &late).starts_with(
            "cannot simulate: trace event 2 (session `a`) at 2562047788015215h 30m 7s 999ms 999µs 999ns: its time must be from 0 to 31622400 seconds (366 days) after the start"
        ),
        "{}",
        refused(&options, &late)
    );
    let err = parse_trace("1e300,start,a,p\n", options.start).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: time 1e300 must be from 0 to 31622400 seconds (366 days) after the start"
    );
}

// ---- property: extreme numbers anywhere are refused clearly, or the config runs ----

/// Numbers at and beyond the edges: zero, subnormals, tiny and huge floats, the integer
/// limits, non-finite values (TOML `inf`, `nan`), and the bounds themselves.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "5e-324",
    "2.2250738585072014e-308",
    "1e-300",
    "0.001",
    "0.5",
    "1",
    "1.5",
    "1024",
    "3600",
    "604800",
    "2592000",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "inf",
    "-inf",
    "nan",
];

const SECONDS: &[&str] = &["0", "5e-324", "0.5", "604800"];
const PROBABILITY: &[&str] = &["0", "5e-324", "0.5", "1"];
const RATE: &[&str] = &["0.001", "100000"];
const CALL_TIMEOUT: &[&str] = &["1", "3600"];

/// Where a number can go: (section, field, how the value is written, the edges of its range).
const PLACES: &[(&str, &str, &str, &[&str])] = &[
    ("provider", "boot_latency", "{ fixed = V }", SECONDS),
    ("provider", "boot_latency", "{ uniform = [0, V] }", SECONDS),
    (
        "provider",
        "checkin_delay",
        "{ normal = { mean = V, std_dev = V } }",
        SECONDS,
    ),
    ("provider", "create_failure_rate", "V", PROBABILITY),
    ("provider", "destroy_failure_rate", "V", PROBABILITY),
    ("provider", "never_checkin_rate", "V", PROBABILITY),
    ("provider", "rate_limit_per_second", "V", RATE),
    ("provider", "api_concurrency", "V", &["1", "1024"]),
    ("provider", "api_rate_limit_per_second", "V", RATE),
    ("provider", "api_call_timeout", "V", CALL_TIMEOUT),
    ("ldap", "connection_timeout", "V", CALL_TIMEOUT),
    ("ldap", "api_concurrency", "V", &["1", "1024"]),
    ("ldap", "api_rate_limit_per_second", "V", RATE),
    ("ldap", "api_call_timeout", "V", CALL_TIMEOUT),
    ("autoscale", "checkin_timeout", "V", &["1", "2592000"]),
    ("autoscale", "downscale_backoff", "V", &["0", "2592000"]),
    ("provider", "max_instances", "V", &["1", "10000"]),
    (
        "autoscale",
        "minimum_pool_standby_sessions",
        "V",
        &["0", "100000"],
    ),
    (
        "autoscale",
        "max_simultaneous_sessions_per_server",
        "V",
        &["1", "1000"],
    ),
];

/// One value for a place: an extreme (`true`) or an edge of the place's range, by index.
type Edit = (usize, bool, usize);

/// A document with an LDAP config used for computer records, and `edits` applied.
fn extreme_text(edits: &[Edit]) -> (String, Vec<&'static str>) {
    let (mut provider, mut ldap, mut autoscale) = (String::new(), String::new(), String::new());
    let mut fields = Vec::new();
    for &(place, extreme, value) in edits {
        let (section, field, form, edges) = PLACES[place];
        let value = if extreme {
            EXTREMES[value % EXTREMES.len()]
        } else {
            edges[value % edges.len()]
        };
        let line = format!("{field} = {}\n", form.replace('V', value));
        match section {
            "provider" => provider += &line,
            "ldap" => ldap += &line,
            _ => autoscale += &line,
        }
        fields.push(field);
    }
    let text = format!(
        r#"{}
[[ldap_configs]]
name = "ad"
url = "ldaps://dc1.example.local"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "pw"
{ldap}"#,
        text(
            &provider,
            &format!(
                "ad_create_machine_record = true\nldap_id = \"ad\"\n\
                 ad_computer_container_dn = \"OU=Kasm,DC=example,DC=local\"\n\
                 reusable = true\nconnection_credential_type = \"SSO User Accounts\"\n{autoscale}"
            ),
        )
    );
    (text, fields)
}

/// Builds an autoscaler for `config` on in-memory backends and lets it work for a few
/// virtual minutes.
fn run_autoscaler(config: Config) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
            unreachable!()
        };
        let cloud = std::sync::Arc::new(MemoryCloud::new(m, 1));
        let scaler = kasm_scale_core::controller::Autoscaler::builder(config)
            .provider(cloud.clone())
            .directory(std::sync::Arc::new(MemoryDirectory::new(
                "ad",
                "example.local",
                1,
            )))
            .build()
            .unwrap_or_else(|e| panic!("a valid config must build: {e}"));
        for _ in 0..5 {
            scaler.tick().await;
            deliver_checkins(&scaler, &cloud).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
}

#[test]
fn extreme_numbers_are_refused_clearly_or_run() {
    // A fixed seed: the same 64 cases every run, so that the counts below are stable.
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let edit = (0..PLACES.len(), any::<bool>(), 0..EXTREMES.len());
    let (ran, refused) = (Cell::new(0), Cell::new(0));
    let outcome = runner.run(&prop::collection::vec(edit, 1..4), |edits| {
        let (text, fields) = extreme_text(&edits);
        match load_str(&text, Format::Toml) {
            Ok(loaded) => {
                run_autoscaler(loaded.config.clone());
                let (options, trace) = short_run();
                let run = simulate(&loaded.config, &trace, &options);
                prop_assert!(
                    run.is_ok(),
                    "{text}\n{:?}",
                    run.err().map(|e| e.to_string())
                );
                ran.set(ran.get() + 1);
            }
            Err(ConfigError::Invalid { problems }) => {
                // Every error names one of the fields that got an extreme value.
                for p in &problems {
                    prop_assert!(
                        p.path.split(['.', '[']).any(|part| fields.contains(&part)),
                        "{p} names none of {fields:?}\n{text}"
                    );
                }
                refused.set(refused.get() + 1);
            }
            // An integer beyond TOML's 64 bits is a syntax error with its line.
            Err(ConfigError::Syntax { line, message, .. }) => {
                prop_assert!(line > 1 && !message.is_empty(), "{message}");
                refused.set(refused.get() + 1);
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // Both outcomes were exercised: runs at the edges, refusals beyond them.
    assert!(
        ran.get() >= 5 && refused.get() >= 5,
        "ran {}, refused {}",
        ran.get(),
        refused.get()
    );
}
