//! Wall time of simulating a workday of a 500-seat pool (the default scenario's pool with 500
//! users instead of 300), under Kasm's rules and with the demand policy, and the default week's
//! three figures for both (the targets over several seeds: `benches/policy_report.py`).

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use kasm_scale::sim::{
    SimOptions, default_scenario, demand_policy, kasm_policy, office_week, simulate, workday,
};

fn workday_500(c: &mut Criterion) {
    let (mut config, _) = default_scenario(1);
    // Room for 500 seats.
    for p in &mut config.vm_providers {
        if let kasm_scale::config::VmProviderConfig::Memory(m) = p {
            m.max_instances = 120;
        }
    }
    let trace = workday("office", 500, 1);
    let options = SimOptions::default();
    let (kasm, ours) = (kasm_policy(&config), demand_policy(&config));
    c.bench_function("simulate/workday_500_seats/kasm_rules", |b| {
        b.iter(|| simulate(&kasm, &trace, &options).expect("simulation"))
    });
    c.bench_function("simulate/workday_500_seats/demand", |b| {
        b.iter(|| simulate(&ours, &trace, &options).expect("simulation"))
    });
}

fn figures(_: &mut Criterion) {
    let (config, _) = default_scenario(1);
    let options = SimOptions {
        duration: Some(jiff::SignedDuration::from_hours(24 * 5)),
        ..SimOptions::default()
    };
    let trace = office_week("office", 300, 5, options.start, 1);
    for (name, config) in [
        ("Kasm's rules", kasm_policy(&config)),
        ("demand", demand_policy(&config)),
    ] {
        let (m, _) = simulate(&config, &trace, &options).expect("simulation");
        println!(
            "default week, {name}: served at once {:.1}%, VM-hours {:.1}, oracle {:.1}, ratio {:.2}",
            m.served_immediately_pct, m.vm_hours, m.oracle_vm_hours, m.ratio_to_oracle
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = workday_500, figures
}
criterion_main!(benches);
