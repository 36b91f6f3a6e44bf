//! The simulator: exact metrics on a tiny trace, determinism, and the oracle bound.

use jiff::SignedDuration;
use kasm_scale_core::config::{Config, Format, MAX_INSTANCES, VmProviderConfig};
use kasm_scale_core::load_str;
use kasm_scale_core::sim::{
    MAX_SIM_SERVERS, SimOptions, beyond_capacity, default_scenario, demand_policy, kasm_policy,
    parse_duration, parse_trace, pool_capacity, simulate, workday, workdays,
};

fn config(extra: &str, boot: &str) -> Config {
    let text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 50
boot_latency = {boot}
checkin_delay = {{ fixed = 0 }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
downscale_backoff = 300
{extra}
"#
    );
    load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

#[test]
fn a_tiny_trace_gives_exact_metrics() {
    let options = SimOptions::default();
    let trace = parse_trace("0,start,a,p\n600,end,a,p\n", options.start).unwrap();
    let (m, _) = simulate(&config("", "{ fixed = 60 }"), &trace, &options).unwrap();
    // One request, nothing warm: a VM boots for 60 s, checks in at once and takes the session,
    // which ends at 600 s; the single-use VM goes at once.
    assert_eq!(
        (m.requests, m.served_immediately, m.never_served),
        (1, 0, 0)
    );
    assert_eq!((m.wait_p50_s, m.wait_max_s), (60.0, 60.0));
    assert_eq!(
        (
            m.provisioned,
            m.destroyed,
            m.peak_servers,
            m.checkin_timeouts
        ),
        (1, 1, 1, 0)
    );
    assert!((m.vm_hours - 600.0 / 3600.0).abs() < 1e-9, "{}", m.vm_hours);
    // The oracle serves 60..600 s on a VM that booted for 60 s before: 600 s too.
    assert!(
        (m.oracle_vm_hours - 600.0 / 3600.0).abs() < 1e-9,
        "{}",
        m.oracle_vm_hours
    );

    // With one warm server (up at 60 s) a session from 120 s to 720 s is served at once. Its VM
    // lives 0..720 s; the replacement, made at 120 s when the free slot went, lives to the end
    // of the simulation (last event + 1 h = 4320 s).
    let trace = parse_trace(
        "120,start,a,p
720,end,a,p
",
        options.start,
    )
    .unwrap();
    let (m, _) = simulate(
        &config("minimum_pool_standby_sessions = 1", "{ fixed = 60 }"),
        &trace,
        &options,
    )
    .unwrap();
    assert_eq!(
        (m.served_immediately, m.served_immediately_pct, m.wait_max_s),
        (1, 100.0, 0.0)
    );
    assert_eq!((m.provisioned, m.destroyed, m.peak_servers), (2, 1, 2));
    assert!(
        (m.vm_hours - (720.0 + 4200.0) / 3600.0).abs() < 1e-9,
        "{}",
        m.vm_hours
    );
    assert!(
        (m.oracle_vm_hours - (600.0 + 60.0) / 3600.0).abs() < 1e-9,
        "{}",
        m.oracle_vm_hours
    );
}

fn workload(seed: u64) -> String {
    // 60 sessions over two hours, 10 to 40 minutes each, from a small LCG.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut text = String::new();
    for i in 0..60 {
        let start = next(7200);
        let len = 600 + next(1800);
        text += &format!("{start},start,s{i},p\n{},end,s{i},p\n", start + len);
    }
    text
}

#[test]
fn same_seed_same_metrics_and_the_oracle_is_a_lower_bound() {
    let options = SimOptions {
        seed: 3,
        ..SimOptions::default()
    };
    let trace = parse_trace(&workload(3), options.start).unwrap();
    let reusable = "reusable = true\nconnection_credential_type = \"SSO User Accounts\"\nmax_simultaneous_sessions_per_server = 4\nminimum_pool_standby_sessions = 4";
    let cfg = config(reusable, "{ uniform = [60, 120] }");
    let (a, sa) = simulate(&cfg, &trace, &options).unwrap();
    let (b, sb) = simulate(&cfg, &trace, &options).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(sa, sb);
    assert_eq!(a.requests, 60);
    assert!(a.served_immediately_pct > 50.0, "{a:?}");

    for (seed, extra) in [
        (4, reusable),
        (5, "minimum_pool_standby_sessions = 2"),
        (6, ""),
    ] {
        let options = SimOptions {
            seed,
            duration: Some(SignedDuration::from_hours(3)),
            ..SimOptions::default()
        };
        let trace = parse_trace(&workload(seed), options.start).unwrap();
        let (m, _) = simulate(&config(extra, "{ uniform = [60, 120] }"), &trace, &options).unwrap();
        assert!(
            m.oracle_vm_hours <= m.vm_hours + 1e-9,
            "seed {seed}: oracle {} > {}",
            m.oracle_vm_hours,
            m.vm_hours
        );
        assert!(m.oracle_vm_hours > 0.0);
    }
}

#[test]
fn a_trace_for_an_unknown_pool_is_refused() {
    let options = SimOptions::default();
    let trace = parse_trace(
        "0,start,a,p\n# q follows\n5,start,b,q\n1,start,c,q\n",
        options.start,
    )
    .unwrap();
    let err = simulate(&config("", "{ fixed = 60 }"), &trace, &options).unwrap_err();
    // The first line that names it, though a later line comes earlier in time.
    assert_eq!(
        err.to_string(),
        "line 3: the trace uses pool `q`, which the configuration does not define (its pools: p)"
    );
    let generated = workday("q", 3, 1);
    let err = simulate(&config("", "{ fixed = 60 }"), &generated, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the trace uses pool `q`, which the configuration does not define (its pools: p)"
    );
}

#[test]
fn a_config_without_pools_is_refused() {
    let options = SimOptions::default();
    let trace = parse_trace("0,start,a,p\n", options.start).unwrap();
    let err = simulate(&Config::default(), &trace, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot simulate: the configuration defines no pools: there is nothing to simulate"
    );
}

#[test]
fn minimums_that_keep_more_servers_than_the_simulator_holds_are_refused_before_the_run() {
    // Three configs, each valid (10000 servers, a minimum of 10000 sessions): 30000 servers.
    let mut cfg = config("minimum_pool_standby_sessions = 10000", "{ fixed = 60 }");
    let VmProviderConfig::Memory(m) = &mut cfg.vm_providers[0] else {
        unreachable!()
    };
    m.max_instances = MAX_INSTANCES;
    let first = cfg.pools[0].autoscale[0].clone();
    for name in ["c2", "c3"] {
        let mut c = first.clone();
        c.autoscale_config_name = name.into();
        cfg.pools[0].autoscale.push(c);
    }
    assert!(
        kasm_scale_core::config::validate(&cfg).is_ok(),
        "the config itself is valid"
    );
    let options = SimOptions::default();
    let trace = parse_trace("0,start,a,p\n", options.start).unwrap();
    let began = std::time::Instant::now();
    let err = simulate(&cfg, &trace, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot simulate: the minimums (minimum_pool_standby_sessions, schedules included) keep 30000 servers, more than the simulator holds ({MAX_SIM_SERVERS})"
        )
    );
    assert!(began.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn demand_beyond_capacity_is_counted() {
    // One single-session server at most, three overlapping sessions and a later one.
    let mut cfg = config("", "{ fixed = 60 }");
    let VmProviderConfig::Memory(m) = &mut cfg.vm_providers[0] else {
        unreachable!()
    };
    m.max_instances = 1;
    let options = SimOptions::default();
    let trace = parse_trace(
        "0,start,a,p\n10,start,b,p\n20,start,c,p\n600,end,a,p\n600,end,b,p\n600,end,c,p\n700,start,d,p\n800,end,d,p\n",
        options.start,
    )
    .unwrap();
    assert_eq!(pool_capacity(&cfg, "p"), 1);
    assert_eq!(pool_capacity(&cfg, "nope"), 0);
    assert_eq!(beyond_capacity(&cfg, &trace), 2);
    let (m, _) = simulate(&cfg, &trace, &options).unwrap();
    assert_eq!((m.capacity_sessions, m.beyond_capacity), (1, 2));
    assert_eq!(m.requests, 4);
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(parse_duration("7d"), Ok(SignedDuration::from_hours(168)));
    assert_eq!(parse_duration("1h30m"), Ok(SignedDuration::from_mins(90)));
    assert_eq!(
        parse_duration("-1h").unwrap_err(),
        "`-1h` is negative: a simulation runs forward, write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m"
    );
    assert!(parse_duration("367d").is_err());
}

/// Runs `trace` on `config` with and without skipping idle ticks: the same metrics and series,
/// with fewer ticks when skipping. Returns the ticks of both runs.
fn same_with_and_without_skipping(
    name: &str,
    config: &Config,
    trace: &[kasm_scale_core::sim::TraceEvent],
    options: &SimOptions,
) -> (u64, u64) {
    let every = SimOptions {
        skip_idle: false,
        ..options.clone()
    };
    let (mut a, sa) = simulate(config, trace, options).unwrap();
    let (mut b, sb) = simulate(config, trace, &every).unwrap();
    let ticks = (a.controller_ticks, b.controller_ticks);
    (a.controller_ticks, b.controller_ticks) = (0, 0);
    assert_eq!(a, b, "{name}: metrics");
    assert!(sa == sb, "{name}: series differ");
    assert!(ticks.0 <= ticks.1, "{name}: {ticks:?}");
    ticks
}

#[test]
fn skipping_idle_ticks_changes_nothing() {
    // The default scenario: schedules (and their edges on every weekday), clouds with rate
    // limits and failures; Kasm's rules, and the demand policy (seed 2); three days from Friday
    // (a weekend included).
    let (scenario, _) = default_scenario(1);
    for (seed, plain) in [(1, false), (2, false), (3, true)] {
        let options = SimOptions {
            seed,
            start: "2026-12-04T00:00:00Z".parse().unwrap(),
            duration: Some(SignedDuration::from_hours(72)),
            ..SimOptions::default()
        };
        let config = if plain {
            kasm_policy(&scenario)
        } else if seed == 2 {
            demand_policy(&scenario)
        } else {
            scenario.clone()
        };
        let trace = workdays("office", 40, 2, seed);
        let (skipping, every) =
            same_with_and_without_skipping(&format!("scenario {seed}"), &config, &trace, &options);
        assert!(
            skipping * 2 < every,
            "seed {seed}: {skipping} of {every} ticks run"
        );
    }
    // Reusable servers with a minimum, single-use servers, and guests that never check in
    // (check-in timeouts, failures and their backoff), over quiet hours after the work.
    for (seed, extra) in [
        (
            4,
            "reusable = true\nconnection_credential_type = \"SSO User Accounts\"\nmax_simultaneous_sessions_per_server = 4\nminimum_pool_standby_sessions = 4",
        ),
        (
            5,
            "minimum_pool_standby_sessions = 2\ncheckin_timeout = 300",
        ),
        (6, ""),
    ] {
        let mut cfg = config(extra, "{ uniform = [60, 120] }");
        if seed == 5 {
            let VmProviderConfig::Memory(m) = &mut cfg.vm_providers[0] else {
                unreachable!()
            };
            m.never_checkin_rate = 0.3;
            m.rate_limit_per_second = Some(2.0);
        }
        let options = SimOptions {
            seed,
            duration: Some(SignedDuration::from_hours(12)),
            ..SimOptions::default()
        };
        let trace = parse_trace(&workload(seed), options.start).unwrap();
        let (skipping, every) =
            same_with_and_without_skipping(&format!("workload {seed}"), &cfg, &trace, &options);
        assert!(
            skipping < every,
            "seed {seed}: {skipping} of {every} ticks run"
        );
    }
}

#[test]
fn a_run_that_ends_before_the_first_event_is_refused() {
    let options = SimOptions::default();
    let trace = parse_trace("3600,start,a,p\n4000,end,a,p\n", options.start).unwrap();
    for (minutes, shown) in [(0, "0s"), (30, "30m"), (60, "1h")] {
        let short = SimOptions {
            duration: Some(SignedDuration::from_mins(minutes)),
            ..options.clone()
        };
        let err = simulate(&config("", "{ fixed = 60 }"), &trace, &short).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot simulate: the simulation would end (after {shown}) before the trace's first event (at 1h): it would measure nothing"
            )
        );
    }
}
