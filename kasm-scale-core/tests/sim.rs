//! The simulator: exact metrics on a tiny trace, determinism, and the oracle bound.

use jiff::SignedDuration;
use kasm_scale_core::config::{Config, Format};
use kasm_scale_core::load_str;
use kasm_scale_core::sim::{SimOptions, parse_trace, simulate};

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
    let trace = parse_trace("0,start,a,q\n", options.start).unwrap();
    let err = simulate(&config("", "{ fixed = 60 }"), &trace, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the trace uses pool `q`, which the configuration does not define"
    );
}
