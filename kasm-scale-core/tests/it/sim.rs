//! The simulator: exact metrics on a tiny trace, determinism, and the oracle bound.

use jiff::SignedDuration;
use kasm_scale_core::config::{Config, MAX_INSTANCES, VmProviderConfig};
use kasm_scale_core::sim::{
    MAX_SIM_SERVERS, Served, SimOptions, beyond_capacity, class_week, default_scenario,
    demand_policy, kasm_policy, office_week, oracle_vm_hours, oracle_vm_hours_within,
    parse_duration, parse_trace, pool_capacity, simulate, workday, workdays,
};

use crate::fixture::Fixture;

fn config(extra: &str, boot: &str) -> Config {
    Fixture::memory_pool("p")
        .max_instances(50)
        .provider_without("startup_script")
        .provider_toml(&format!("boot_latency = {boot}"))
        .checkin_delay(0)
        .require_checkin(true)
        .downscale_backoff(300)
        .autoscale_toml(extra)
        .config()
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
    // limits and failures; the demand policy, and Kasm's rules (seed 3); three days from Friday
    // (a weekend included); and three workdays from Monday (seed 8), where the windows open
    // before a rise the demand policy has learned.
    let (scenario, _) = default_scenario(1);
    for (seed, plain) in [(1, false), (2, false), (3, true), (8, false)] {
        let start = if seed == 8 {
            "2026-11-30T00:00:00Z"
        } else {
            "2026-12-04T00:00:00Z"
        };
        let options = SimOptions {
            seed,
            start: start.parse().unwrap(),
            duration: Some(SignedDuration::from_hours(72)),
            // The day-by-day figures, and a warm-up left out, are the same too.
            warmup_days: u32::from(seed == 2),
            ..SimOptions::default()
        };
        let config = if plain {
            kasm_policy(&scenario)
        } else if seed == 2 {
            demand_policy(&scenario)
        } else {
            scenario.clone()
        };
        let trace = workdays("office", 40, if seed == 8 { 3 } else { 2 }, seed);
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
        if seed == 6 {
            // A provider outage in the busy hours: creates fail for capacity, then work again.
            let VmProviderConfig::Memory(m) = &mut cfg.vm_providers[0] else {
                unreachable!()
            };
            m.outages = vec![kasm_scale_core::config::Outage {
                start: 1800.0,
                duration: 1800.0,
            }];
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

/// A reusable pool of 4-session servers with a small warm buffer.
fn reusable_config() -> Config {
    config(
        "reusable = true\nconnection_credential_type = \"SSO User Accounts\"\nmax_simultaneous_sessions_per_server = 4\nminimum_pool_standby_sessions = 4",
        "{ uniform = [60, 120] }",
    )
}

#[test]
fn days_are_reported_one_by_one_and_the_warm_up_is_left_out() {
    let options = SimOptions::default();
    let trace = office_week("p", 30, 3, options.start, 2);
    let cfg = reusable_config();
    let (all, _) = simulate(&cfg, &trace, &options).unwrap();
    // Monday to Wednesday, and the hour after the last session.
    let dates: Vec<&str> = all.days.iter().map(|d| d.date.as_str()).collect();
    assert_eq!(dates[..3], ["2026-11-30", "2026-12-01", "2026-12-02"]);
    assert!(
        all.days
            .iter()
            .enumerate()
            .all(|(i, d)| d.day == i as u32 && !d.warmup)
    );
    assert_eq!(all.warmup_days, 0);
    let sum = |f: fn(&kasm_scale_core::sim::DayMetrics) -> f64,
               m: &kasm_scale_core::sim::Metrics| {
        m.days.iter().filter(|d| !d.warmup).map(f).sum::<f64>()
    };
    assert_eq!(
        all.days.iter().map(|d| d.requests).sum::<u64>(),
        all.requests
    );
    assert!((sum(|d| d.vm_hours, &all) - all.vm_hours).abs() < 1e-9);
    for d in &all.days {
        assert!(
            d.requests > 0 && d.served_immediately <= d.requests,
            "{d:?}"
        );
        assert!(d.oracle_vm_hours > 0.0 && d.ratio_to_oracle > 0.0, "{d:?}");
    }

    let warm = SimOptions {
        warmup_days: 1,
        ..options.clone()
    };
    let (m, _) = simulate(&cfg, &trace, &warm).unwrap();
    assert_eq!(m.warmup_days, 1);
    assert!(m.days[0].warmup && !m.days[1].warmup);
    // The same run: its days are the same, only the whole-run figures leave day 0 out.
    assert_eq!(m.days[1..], all.days[1..]);
    assert_eq!(m.days[0].requests, all.days[0].requests);
    assert_eq!(m.requests, all.requests - all.days[0].requests);
    assert_eq!(
        m.served_immediately,
        all.served_immediately - all.days[0].served_immediately
    );
    assert!((sum(|d| d.vm_hours, &m) - m.vm_hours).abs() < 1e-9);
    assert!(m.vm_hours < all.vm_hours - all.days[0].vm_hours + 1e-9);
    assert!(m.oracle_vm_hours < all.oracle_vm_hours);
    assert!(m.oracle_vm_hours <= m.vm_hours, "{m:?}");
    assert!(m.provisioned < all.provisioned);

    // A warm-up as long as the run is refused.
    let too_long = SimOptions {
        warmup_days: 4,
        ..options.clone()
    };
    let e = simulate(&cfg, &trace, &too_long).unwrap_err().to_string();
    assert!(
        e.contains("the warm-up (4 days) must end before the simulation does"),
        "{e}"
    );
}

#[test]
fn weekends_are_quiet_and_classes_come_on_the_hour() {
    let options = SimOptions {
        duration: Some(SignedDuration::from_hours(7 * 24)),
        ..SimOptions::default()
    };
    let trace = class_week("p", 7, options.start, 1);
    let (m, _) = simulate(&reusable_config(), &trace, &options).unwrap();
    assert_eq!(m.days.len(), 7);
    let requests: Vec<u64> = m.days.iter().map(|d| d.requests).collect();
    assert_eq!(requests, [90, 90, 90, 90, 90, 0, 0]);
    assert_eq!(m.requests, 450);
    // A weekend with no sessions: its oracle is 0, and so is its ratio.
    assert_eq!(
        (m.days[5].oracle_vm_hours, m.days[5].ratio_to_oracle),
        (0.0, 0.0)
    );
    assert_eq!(m.days[6].served_immediately_pct, 100.0);
}

#[test]
fn an_outage_of_one_provider_sends_creates_elsewhere() {
    // Two providers for one pool; the first is out from 08:00 to 10:00, the morning wave.
    let mut cfg = config("minimum_pool_standby_sessions = 2", "{ fixed = 60 }");
    let mut second = cfg.vm_providers[0].clone();
    let VmProviderConfig::Memory(m) = &mut second else {
        unreachable!()
    };
    m.name = "mem2".into();
    cfg.vm_providers.push(second);
    let mut other = cfg.pools[0].autoscale[0].clone();
    other.autoscale_config_name = "c2".into();
    other.vm_provider_config_id = "mem2".into();
    cfg.pools[0].autoscale.push(other);
    let options = SimOptions::default();
    let trace = workday("p", 60, 4);
    let (before, plain) = simulate(&cfg, &trace, &options).unwrap();
    let VmProviderConfig::Memory(m) = &mut cfg.vm_providers[0] else {
        unreachable!()
    };
    m.outages = vec![kasm_scale_core::config::Outage {
        start: 8.0 * 3600.0,
        duration: 2.0 * 3600.0,
    }];
    let (during, series) = simulate(&cfg, &trace, &options).unwrap();
    // In the outage the first provider's VMs never grow: its creates fail.
    let mem = &series.servers["mem"];
    let window: Vec<usize> = series
        .minutes
        .iter()
        .enumerate()
        .filter(|(_, m)| (480.0..600.0).contains(*m))
        .map(|(i, _)| i)
        .collect();
    assert!(window.len() > 100);
    // Without the outage it grows then.
    let grew = |s: &[u32]| window.windows(2).any(|p| s[p[1]] > s[p[0]]);
    assert!(grew(&plain.servers["mem"]));
    for pair in window.windows(2) {
        assert!(
            mem[pair[1]] <= mem[pair[0]],
            "mem grew at minute {}",
            series.minutes[pair[1]]
        );
    }
    // The other provider took the morning wave instead, and the first grows again after it.
    let mem2 = &series.servers["mem2"];
    assert!(
        mem2[window[window.len() - 1]] > mem2[window[0]] + 5,
        "{mem2:?}"
    );
    let after = window[window.len() - 1] + 1;
    assert!(
        mem[after..].iter().max()
            > mem[window[window.len() - 1]..=window[window.len() - 1]]
                .iter()
                .max()
    );
    assert_ne!(before.vm_hours_by_provider, during.vm_hours_by_provider);
    assert!(
        during.vm_hours_by_provider["mem2"] > before.vm_hours_by_provider["mem2"],
        "{:?} vs {:?}",
        during.vm_hours_by_provider,
        before.vm_hours_by_provider
    );
    assert_eq!(during.requests, before.requests);
}

#[test]
fn the_oracle_within_a_window_counts_the_time_in_it_and_the_boots_it_needs() {
    let served = [
        Served {
            pool: "p".into(),
            from: 100.0,
            to: 90_000.0,
        },
        Served {
            pool: "p".into(),
            from: 86_500.0,
            to: 87_000.0,
        },
    ];
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} != {b}");
    // Reusable servers of 4 (boot at least 60 s): one VM at a time, booted once, before day 1.
    let cfg = reusable_config();
    let whole = oracle_vm_hours(&cfg, &served);
    close(whole, (89_900.0 + 60.0) / 3600.0);
    close(
        oracle_vm_hours_within(&cfg, &served, 0.0, f64::INFINITY),
        whole,
    );
    close(
        oracle_vm_hours_within(&cfg, &served, 0.0, 86_400.0),
        (86_300.0 + 60.0) / 3600.0,
    );
    // Day 1 starts with the VM of the first session alive: no boot.
    close(
        oracle_vm_hours_within(&cfg, &served, 86_400.0, 172_800.0),
        1.0,
    );
    // Single-use servers: each session its VM, booted for the sessions starting in the window.
    let single = config("", "{ uniform = [60, 120] }");
    close(
        oracle_vm_hours(&single, &served),
        (89_900.0 + 500.0 + 120.0) / 3600.0,
    );
    close(
        oracle_vm_hours_within(&single, &served, 86_400.0, 172_800.0),
        (3600.0 + 500.0 + 60.0) / 3600.0,
    );
    close(
        oracle_vm_hours_within(&single, &served, 200_000.0, 300_000.0),
        0.0,
    );
}
