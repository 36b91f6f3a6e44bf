//! The demand standby policy against Kasm's rules on the same configuration, in the simulator:
//! an outage of one cloud, the built-in generators, the class-burst week.

use jiff::SignedDuration;
use kasm_scale_core::config::{Config, Distribution, VmProviderConfig};
use kasm_scale_core::sim::{
    Metrics, SimOptions, TraceEvent, class, class_week, default_scenario, demand_policy,
    kasm_policy, office_week, random_arrivals, simulate,
};

/// Both policies on `trace` over `days` whole days: (Kasm's rules, ours).
fn both(config: &Config, trace: &[TraceEvent], days: i64, seed: u64) -> (Metrics, Metrics) {
    let options = SimOptions {
        seed,
        duration: Some(SignedDuration::from_hours(24 * days)),
        ..SimOptions::default()
    };
    let run = |c: &Config| simulate(c, trace, &options).expect("simulation").0;
    (run(&kasm_policy(config)), run(&demand_policy(config)))
}

fn scenario() -> Config {
    default_scenario(1).0
}

#[test]
fn during_an_outage_of_one_cloud_ours_serves_from_the_other_and_kasms_rules_do_not() {
    // AWS answers "insufficient capacity" from 08:00 to 09:00, in the morning wave.
    let mut config = scenario();
    let VmProviderConfig::Memory(aws) = &mut config.vm_providers[0] else {
        unreachable!("the default scenario's clouds are in memory")
    };
    aws.outages = vec![kasm_scale_core::config::Outage {
        start: 8.0 * 3600.0,
        duration: 3600.0,
    }];
    for seed in 1..=3 {
        let start = SimOptions::default().start;
        let trace = office_week("office", 300, 1, start, seed);
        let (kasm, ours) = both(&config, &trace, 1, seed);
        assert!(
            ours.served_immediately_pct >= 99.0,
            "seed {seed}: ours {:.1}%",
            ours.served_immediately_pct
        );
        assert!(
            kasm.served_immediately_pct < 99.0,
            "seed {seed}: Kasm's rules {:.1}%",
            kasm.served_immediately_pct
        );
        // Azure took the wave.
        assert!(ours.vm_hours_by_provider["azure-sim"] > kasm.vm_hours_by_provider["azure-sim"]);
    }
}

#[test]
fn ours_is_never_worse_than_kasms_rules_on_service_for_the_built_in_generators() {
    let config = scenario();
    let start = SimOptions::default().start;
    let length = Distribution::Uniform([1800.0, 5400.0]);
    for seed in 1..=3 {
        // Two classes of 30 at 09:00 and 10:00 (session ids made unique).
        let mut morning = class("office", 30, 9.0 * 3600.0, 50.0, seed);
        morning.extend(
            class("office", 30, 10.0 * 3600.0, 50.0, seed + 10)
                .into_iter()
                .map(|mut e| {
                    e.session = format!("b-{}", e.session);
                    e
                }),
        );
        morning.sort_by_key(|e| e.at);
        let generators: [(&str, Vec<TraceEvent>, i64); 4] = [
            ("office week", office_week("office", 300, 2, start, seed), 2),
            ("class week", class_week("office", 2, start, seed), 2),
            ("two classes", morning, 1),
            (
                "random arrivals",
                random_arrivals("office", 60.0, 16.0, &length, seed)
                    .into_iter()
                    .map(|mut e| {
                        // From 06:30, inside the office-hour windows.
                        e.at += SignedDuration::from_mins(390);
                        e
                    })
                    .collect(),
                1,
            ),
        ];
        for (name, trace, days) in generators {
            let (kasm, ours) = both(&config, &trace, days, seed);
            assert!(
                ours.served_immediately_pct >= kasm.served_immediately_pct,
                "{name}, seed {seed}: ours {:.2}% < Kasm's rules {:.2}%",
                ours.served_immediately_pct,
                kasm.served_immediately_pct
            );
        }
    }
}

#[test]
fn classes_are_served_at_once_from_the_second_day_on_without_a_change() {
    let config = scenario();
    let start = SimOptions::default().start;
    for seed in 1..=3 {
        let trace = class_week("office", 5, start, seed);
        let (_, ours) = both(&config, &trace, 5, seed);
        for day in &ours.days[1..] {
            assert!(
                day.served_immediately_pct >= 95.0,
                "seed {seed}, {}: {:.1}%",
                day.date,
                day.served_immediately_pct
            );
        }
    }
}

#[test]
fn the_default_week_is_served_at_once_and_kasms_rules_serve_fewer() {
    let (config, _) = default_scenario(1);
    let start = SimOptions::default().start;
    let mut served = Vec::new();
    for seed in 1..=5 {
        let trace = office_week("office", 300, 5, start, seed);
        let (kasm, ours) = both(&config, &trace, 5, seed);
        assert!(
            kasm.served_immediately_pct < ours.served_immediately_pct,
            "seed {seed}: Kasm's rules {:.2}%, ours {:.2}%",
            kasm.served_immediately_pct,
            ours.served_immediately_pct
        );
        served.push(ours.served_immediately_pct);
    }
    served.sort_by(f64::total_cmp);
    assert!(served[2] >= 99.0, "median {:.2}%", served[2]);
    assert!(served[0] >= 98.5, "worst {:.2}%", served[0]);
}
