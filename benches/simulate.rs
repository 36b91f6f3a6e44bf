//! Wall time of simulating a workday of a 500-seat pool (the default scenario's pool with 500
//! users instead of 300), and the default scenario's three figures for our policy and Kasm's.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use kasm_scale::sim::{SimOptions, default_scenario, kasm_policy, simulate, workday};

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
    c.bench_function("simulate/workday_500_seats", |b| {
        b.iter(|| simulate(&config, &trace, &options).expect("simulation"))
    });
}

fn figures(_: &mut Criterion) {
    let (config, trace) = default_scenario(1);
    let options = SimOptions::default();
    for (name, config) in [("kasm", kasm_policy(&config)), ("kasm-scale", config)] {
        let (m, _) = simulate(&config, &trace, &options).expect("simulation");
        println!(
            "default scenario, {name}: served at once {:.1}%, VM-hours {:.1}, oracle {:.1}, ratio {:.2}",
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
