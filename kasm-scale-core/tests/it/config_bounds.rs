//! The bounds of every duration, rate and concurrency of a configuration (see
//! `config::MAX_DELAY_SECONDS` and its siblings): feed the value out of range, check the exact
//! path and message, from a file and from a config built in code.

use crate::support;

use std::time::Duration;

use kasm_scale_core::config::{ApiLimits, Distribution, VmProviderConfig, validate};
use kasm_scale_core::{ConfigError, Format, load_str};
use serde_json::{Value, json};
use support::{asc, base, errors};

#[test]
fn memory_latencies_are_bounded() {
    errors(
        |d| {
            let p = &mut d["vm_providers"][2];
            p["boot_latency"] = json!({"fixed": 1e300});
            p["checkin_delay"] = json!({"uniform": [0, 604_801]});
        },
        &[
            "vm_providers[2].boot_latency: must be between 0 and 604800 seconds (7 days), got 1e300",
            "vm_providers[2].checkin_delay: uniform bounds must be between 0 and 604800 seconds (7 days), got [0, 604801]",
        ],
    );
    errors(
        |d| d["vm_providers"][2]["boot_latency"] = json!({"normal": {"mean": 60, "std_dev": -1}}),
        &[
            "vm_providers[2].boot_latency: mean and std_dev must be between 0 and 604800 seconds (7 days), got 60 and -1",
        ],
    );
    errors(
        |d| d["vm_providers"][2]["boot_latency"] = json!({"fixed": 604_800}),
        &[],
    );
}

#[test]
fn memory_outages_are_bounded() {
    errors(
        |d| {
            d["vm_providers"][2]["outages"] = json!([
                {"start": -1, "duration": 60},
                {"start": 0, "duration": 0},
                {"start": 31_622_401, "duration": 1e300},
                {"start": 36_000, "duration": 31_622_400},
            ]);
        },
        &[
            "vm_providers[2].outages[0].start: must be between 0 and 31622400 seconds (366 days), got -1",
            "vm_providers[2].outages[1].duration: must be more than 0 seconds, got 0",
            "vm_providers[2].outages[2].start: must be between 0 and 31622400 seconds (366 days), got 31622401",
            "vm_providers[2].outages[2].duration: must be between 0 and 31622400 seconds (366 days), got 1e300",
        ],
    );
    errors(
        |d| d["vm_providers"][2]["outages"] = json!([{"start": 60, "length": 60}]),
        &[
            "vm_providers[2].outages[0].length: unknown field; expected one of `start`, `duration`",
            "vm_providers[2].outages[0].duration: missing (required)",
        ],
    );
}

#[test]
fn memory_rate_limit_is_bounded() {
    for (rate, got) in [(json!(1e-300), "1e-300"), (json!(100_001), "100001")] {
        let want = format!(
            "vm_providers[2].rate_limit_per_second: must be between 0.001 and 100000 calls per second, got {got}"
        );
        errors(
            |d| d["vm_providers"][2]["rate_limit_per_second"] = rate,
            &[&want],
        );
    }
}

#[test]
fn non_finite_numbers_are_refused() {
    let toml = "[[vm_providers]]\nprovider = \"memory\"\nname = \"m\"\nmax_instances = 1\n\
                rate_limit_per_second = inf\napi_rate_limit_per_second = nan\n\
                boot_latency = { fixed = -inf }\n";
    let yaml = "vm_providers:\n- provider: memory\n  name: m\n  max_instances: 1\n  \
                rate_limit_per_second: .inf\n  api_rate_limit_per_second: .nan\n  \
                boot_latency: {fixed: -.inf}\n";
    for (text, format) in [(toml, Format::Toml), (yaml, Format::Yaml)] {
        let Err(ConfigError::Invalid { problems }) = load_str(text, format) else {
            panic!("{format:?}: non-finite numbers must be refused")
        };
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "vm_providers[0].rate_limit_per_second: must be a finite number, got inf",
                "vm_providers[0].api_rate_limit_per_second: must be a finite number, got NaN",
                "vm_providers[0].boot_latency: must be a finite number, got -inf",
                "warning: pools: no pools defined: there is nothing to scale (an empty document reads the same in every format)",
            ],
            "{format:?}"
        );
    }
}

#[test]
fn scaling_waits_are_bounded() {
    errors(
        |d| {
            asc(d)["downscale_backoff"] = json!(u64::MAX);
            asc(d)["checkin_timeout"] = json!(2_592_001);
        },
        &[
            "pools[0].autoscale[0].downscale_backoff: must be between 0 and 2592000 seconds (30 days), got 18446744073709551615",
            "pools[0].autoscale[0].checkin_timeout: must be between 1 and 2592000 seconds (30 days), got 2592001",
        ],
    );
    errors(
        |d| {
            asc(d)["downscale_backoff"] = json!(1e300);
            asc(d)["checkin_timeout"] = json!(0);
        },
        &[
            "pools[0].autoscale[0].downscale_backoff: must be between 0 and 2592000 seconds (30 days), got 1e300",
            "pools[0].autoscale[0].checkin_timeout: must be between 1 and 2592000 seconds (30 days), got 0",
        ],
    );
}

#[test]
fn ldap_connection_timeout_is_bounded() {
    for (v, got) in [(json!(0), "0"), (json!(3601), "3601")] {
        let want = format!(
            "ldap_configs[0].connection_timeout: must be between 1 and 3600 seconds (1 hour), got {got}"
        );
        errors(|d| d["ldap_configs"][0]["connection_timeout"] = v, &[&want]);
    }
}

/// Sets `field` to `values[i]` on the LDAP config and on each VM provider, in that order.
fn on_every_backend(field: &str, values: [Value; 4]) -> impl FnOnce(&mut Value) {
    move |d: &mut Value| {
        let [ldap, aws, azure, memory] = values;
        d["ldap_configs"][0][field] = ldap;
        d["vm_providers"][0][field] = aws;
        d["vm_providers"][1][field] = azure;
        d["vm_providers"][2][field] = memory;
    }
}

#[test]
fn counts_have_upper_bounds() {
    // The configuration that once grew a simulation past 2.7 GB, and the largest u32.
    errors(
        |d| {
            d["vm_providers"][0]["max_instances"] = json!(1_000_000);
            d["vm_providers"][1]["max_instances"] = json!(4_294_967_296u64);
            d["vm_providers"][2]["max_instances"] = json!(0);
            asc(d)["minimum_pool_standby_sessions"] = json!(2_147_483_647);
            asc(d)["reusable"] = json!(true);
            asc(d)["max_simultaneous_sessions_per_server"] = json!(1001);
            asc(d)["schedules"] = json!([{
                "active_start_time": "08:00", "active_end_time": "17:00",
                "minimum_pool_standby_sessions": 100_001
            }]);
        },
        &[
            "vm_providers[0].max_instances: must be between 1 and 10000, got 1000000",
            "vm_providers[1].max_instances: must be between 1 and 10000, got 4294967296",
            "vm_providers[2].max_instances: must be between 1 and 10000, got 0",
            "pools[0].autoscale[0].minimum_pool_standby_sessions: must be between 0 and 100000, got 2147483647",
            "pools[0].autoscale[0].max_simultaneous_sessions_per_server: must be between 1 and 1000, got 1001",
            "pools[0].autoscale[0].schedules[0].minimum_pool_standby_sessions: must be between 0 and 100000, got 100001",
        ],
    );
    // The bounds themselves are fine.
    errors(
        |d| {
            d["vm_providers"][0]["max_instances"] = json!(10_000);
            asc(d)["minimum_pool_standby_sessions"] = json!(100_000);
            asc(d)["reusable"] = json!(true);
            asc(d)["max_simultaneous_sessions_per_server"] = json!(1000);
        },
        &[],
    );
}

#[test]
fn api_concurrency_is_bounded() {
    errors(
        on_every_backend(
            "api_concurrency",
            [json!(0), json!(1025), json!(-1), json!(1e10)],
        ),
        &[
            "ldap_configs[0].api_concurrency: must be between 1 and 1024, got 0",
            "vm_providers[0].api_concurrency: must be between 1 and 1024, got 1025",
            "vm_providers[1].api_concurrency: must be between 1 and 1024, got -1",
            "vm_providers[2].api_concurrency: must be between 1 and 1024, got 10000000000",
        ],
    );
}

#[test]
fn api_rate_limit_is_bounded() {
    let m = "must be between 0.001 and 100000 calls per second";
    errors(
        on_every_backend(
            "api_rate_limit_per_second",
            [json!(0), json!(1e300), json!(0.0005), json!(100_000.5)],
        ),
        &[
            &format!("ldap_configs[0].api_rate_limit_per_second: {m}, got 0"),
            &format!("vm_providers[0].api_rate_limit_per_second: {m}, got 1e300"),
            &format!("vm_providers[1].api_rate_limit_per_second: {m}, got 0.0005"),
            &format!("vm_providers[2].api_rate_limit_per_second: {m}, got 100000.5"),
        ],
    );
}

#[test]
fn api_call_timeout_is_bounded() {
    let m = "must be between 1 and 3600 seconds (1 hour)";
    errors(
        on_every_backend(
            "api_call_timeout",
            [
                json!(0),
                json!(3601),
                json!(1.5),
                json!(u64::from(u32::MAX) + 1),
            ],
        ),
        &[
            &format!("ldap_configs[0].api_call_timeout: {m}, got 0"),
            &format!("vm_providers[0].api_call_timeout: {m}, got 3601"),
            "vm_providers[1].api_call_timeout: must be a whole number, got 1.5",
            &format!("vm_providers[2].api_call_timeout: {m}, got 4294967296"),
        ],
    );
}

#[test]
fn azure_operation_timeout_is_bounded_and_defaults_to_30_minutes() {
    let m = "must be between 1 and 86400 seconds (1 day)";
    for (value, expected) in [
        (json!(0), format!("{m}, got 0")),
        (json!(86_401), format!("{m}, got 86401")),
        (json!(-5), format!("{m}, got -5")),
        (json!(90.5), "must be a whole number, got 90.5".to_owned()),
    ] {
        errors(
            |d| d["vm_providers"][1]["api_operation_timeout"] = value,
            &[&format!(
                "vm_providers[1].api_operation_timeout: {expected}"
            )],
        );
    }
    let azure = |doc: &Value| match load_str(&doc.to_string(), Format::Json)
        .unwrap()
        .config
        .vm_providers[1]
        .clone()
    {
        VmProviderConfig::Azure(c) => c,
        other => panic!("{other:?}"),
    };
    let c = azure(&base());
    assert_eq!(c.api_operation_timeout, 1800);
    assert_eq!(c.operation_timeout(), Duration::from_secs(1800));
    for (written, taken) in [(1, 1), (600, 600), (86_400, 86_400)] {
        let mut doc = base();
        doc["vm_providers"][1]["api_operation_timeout"] = json!(written);
        assert_eq!(azure(&doc).operation_timeout(), Duration::from_secs(taken));
    }
    // Built in code out of range: validate refuses it; the provider clamps it.
    let mut config = load_str(&base().to_string(), Format::Json).unwrap().config;
    let VmProviderConfig::Azure(a) = &mut config.vm_providers[1] else {
        unreachable!()
    };
    a.api_operation_timeout = 0;
    assert_eq!(a.operation_timeout(), Duration::from_secs(1));
    a.api_operation_timeout = u32::MAX;
    assert_eq!(a.operation_timeout(), Duration::from_secs(86_400));
    let Err(ConfigError::Invalid { problems }) = validate(&config) else {
        panic!("out of range")
    };
    let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [format!(
            "vm_providers[1].api_operation_timeout: {m}, got 4294967295"
        )]
    );
}

#[test]
fn api_limits_come_from_the_config_with_defaults() {
    let default = ApiLimits {
        concurrency: 8,
        rate_limit_per_second: None,
        call_timeout: Duration::from_secs(30),
    };
    let config = load_str(&base().to_string(), Format::Json).unwrap().config;
    assert_eq!(config.ldap_configs[0].api_limits(), default);
    assert!(
        config
            .vm_providers
            .iter()
            .all(|p| p.api_limits() == default)
    );
    let mut doc = base();
    on_every_backend(
        "api_concurrency",
        [json!(1), json!(2), json!(3), json!(1024)],
    )(&mut doc);
    let rates = [json!(0.001), json!(2.5), json!(3), json!(100_000)];
    on_every_backend("api_rate_limit_per_second", rates)(&mut doc);
    on_every_backend(
        "api_call_timeout",
        [json!(1), json!(60), json!(90), json!(3600)],
    )(&mut doc);
    let config = load_str(&doc.to_string(), Format::Json).unwrap().config;
    let limits = |c: u32, r: f64, t: u64| ApiLimits {
        concurrency: c,
        rate_limit_per_second: Some(r),
        call_timeout: Duration::from_secs(t),
    };
    assert_eq!(config.ldap_configs[0].api_limits(), limits(1, 0.001, 1));
    let got: Vec<ApiLimits> = config.vm_providers.iter().map(|p| p.api_limits()).collect();
    assert_eq!(
        got,
        [
            limits(2, 2.5, 60),
            limits(3, 3.0, 90),
            limits(1024, 100_000.0, 3600)
        ]
    );
}

#[test]
fn out_of_range_values_built_in_code_are_reported_by_validate() {
    let mut config = load_str(&base().to_string(), Format::Json).unwrap().config;
    config.ldap_configs[0].connection_timeout = 0;
    config.ldap_configs[0].api_concurrency = 0;
    let VmProviderConfig::Memory(m) = &mut config.vm_providers[2] else {
        unreachable!()
    };
    m.boot_latency = Distribution::Fixed(f64::NAN);
    m.create_failure_rate = f64::NAN;
    m.never_checkin_rate = -0.5;
    m.rate_limit_per_second = Some(f64::INFINITY);
    m.api_rate_limit_per_second = Some(1e-300);
    m.api_call_timeout = u32::MAX;
    m.max_instances = 10_001;
    let c = &mut config.pools[0].autoscale[0];
    c.checkin_timeout = 0;
    c.downscale_backoff = u64::MAX;
    c.minimum_pool_standby_sessions = u32::MAX;
    let Err(ConfigError::Invalid { problems }) = validate(&config) else {
        panic!("out-of-range values must be refused")
    };
    let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "ldap_configs[0].connection_timeout: must be between 1 and 3600 seconds (1 hour), got 0",
            "ldap_configs[0].api_concurrency: must be between 1 and 1024, got 0",
            "vm_providers[2].boot_latency: must be between 0 and 604800 seconds (7 days), got NaN",
            "vm_providers[2].create_failure_rate: must be between 0 and 1, got NaN",
            "vm_providers[2].never_checkin_rate: must be between 0 and 1, got -0.5",
            "vm_providers[2].rate_limit_per_second: must be between 0.001 and 100000 calls per second, got inf",
            "vm_providers[2].api_rate_limit_per_second: must be between 0.001 and 100000 calls per second, got 1e-300",
            "vm_providers[2].api_call_timeout: must be between 1 and 3600 seconds (1 hour), got 4294967295",
            "vm_providers[2].max_instances: must be between 1 and 10000, got 10001",
            "pools[0].autoscale[0].downscale_backoff: must be between 0 and 2592000 seconds (30 days), got 18446744073709551615",
            "pools[0].autoscale[0].checkin_timeout: must be between 1 and 2592000 seconds (30 days), got 0",
            "pools[0].autoscale[0].minimum_pool_standby_sessions: must be between 0 and 100000, got 4294967295",
            "warning: pools[0].autoscale[0].minimum_pool_standby_sessions: 4294967295 can never be met: max_instances 4 × 1 sessions per server = 4",
        ]
    );
}
