//! (ours) The simulator's costs: VM time at the offerings' prices, the oracle's at the first
//! offering's, per day and without the warm-up; no cost (not 0) for an unpriced config; the
//! stand-ins carry a cloud's prices and alternatives.

use kasm_scale_core::config::{Config, Distribution, Format, VmProviderConfig, load_str};
use kasm_scale_core::sim::{
    SimOptions, demand_policy, has_warm_tier, kasm_policy, memory_stand_in, office_week,
    parse_trace, simulate, without_warm_tier,
};

use crate::fixture::Fixture;

fn config(prices: &str) -> Config {
    Fixture::memory_pool("p")
        .max_instances(50)
        .provider_without("startup_script")
        .provider_toml(&format!("boot_latency = {{ fixed = 60 }}\n{prices}"))
        .checkin_delay(0)
        .require_checkin(true)
        .downscale_backoff(300)
        .config()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(1.0)
}

#[test]
fn the_cost_is_the_vm_hours_at_the_price_and_the_oracles_at_the_first_offerings() {
    let options = SimOptions::default();
    let trace = parse_trace(
        "0,start,a,p\n600,end,a,p\n120,start,b,p\n4000,end,b,p\n",
        options.start,
    )
    .unwrap();
    let priced = config("price_per_hour = 2.5\nstopped_price_per_hour = 0.1");
    let (m, _) = simulate(&priced, &trace, &options).unwrap();
    assert!(m.vm_hours > 0.0);
    assert_eq!(
        m.stopped_vm_hours, 0.0,
        "nothing is stopped without a warm tier"
    );
    let cost = m.cost.expect("a priced config has a cost");
    assert!(
        close(cost, 2.5 * m.vm_hours),
        "{cost} for {} VM-hours",
        m.vm_hours
    );
    assert!(close(m.running_cost.unwrap(), cost));
    assert_eq!(m.stopped_cost, Some(0.0));
    let provider = m.vm_hours_by_provider.keys().next().unwrap().clone();
    assert!(
        close(m.cost_by_provider[&provider], cost),
        "{:?}",
        m.cost_by_provider
    );
    assert!(close(m.oracle_cost.unwrap(), 2.5 * m.oracle_vm_hours));
    assert!(m.oracle_cost.unwrap() <= cost);
    let day = &m.days[0];
    assert!(
        close(day.cost.unwrap(), cost) && close(day.oracle_cost.unwrap(), m.oracle_cost.unwrap())
    );
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["cost"].as_f64().is_some() && json["days"][0]["cost"].as_f64().is_some());

    // Without a stopped price, a run without stopped VMs is still priced.
    let (m, _) = simulate(&config("price_per_hour = 2.5"), &trace, &options).unwrap();
    assert!(close(m.cost.unwrap(), 2.5 * m.vm_hours));

    // Unpriced: no cost anywhere, not 0, and none in the JSON.
    let (m, _) = simulate(&config(""), &trace, &options).unwrap();
    assert_eq!((m.cost, m.running_cost, m.oracle_cost), (None, None, None));
    assert!(m.cost_by_provider.is_empty() && m.days.iter().all(|d| d.cost.is_none()));
    let json = serde_json::to_value(&m).unwrap();
    for key in [
        "cost",
        "running_cost",
        "stopped_cost",
        "cost_by_provider",
        "oracle_cost",
    ] {
        assert!(json.get(key).is_none(), "{key}: {json}");
    }
    assert!(json["days"][0].get("cost").is_none());
    assert_eq!(json["stopped_vm_hours"].as_f64(), Some(0.0));
}

#[test]
fn the_whole_runs_cost_leaves_the_warm_up_out_and_the_days_add_up() {
    let options = SimOptions {
        warmup_days: 1,
        ..SimOptions::default()
    };
    let trace = office_week("p", 20, 3, options.start, 4);
    let priced = config("price_per_hour = 0.5");
    let (m, _) = simulate(
        &priced,
        &trace,
        &SimOptions {
            duration: Some(jiff::SignedDuration::from_hours(72)),
            ..options
        },
    )
    .unwrap();
    assert_eq!(m.days.len(), 3);
    let after: f64 = m
        .days
        .iter()
        .filter(|d| !d.warmup)
        .map(|d| d.cost.unwrap())
        .sum();
    let all: f64 = m.days.iter().map(|d| d.cost.unwrap()).sum();
    assert!(close(m.cost.unwrap(), after), "{:?} vs {after}", m.cost);
    assert!(all > after, "the warm-up day costs too: {all} vs {after}");
    for d in &m.days {
        assert!(close(d.cost.unwrap(), 0.5 * d.vm_hours), "{d:?}");
    }
}

#[test]
fn a_clouds_stand_in_carries_its_prices_alternatives_and_a_start_latency() {
    let doc = r#"
        [[vm_providers]]
        provider = "aws"
        name = "aws"
        aws_region = "us-east-1"
        aws_ec2_ami_id = "ami-1"
        aws_ec2_instance_type = "m5.xlarge"
        aws_ec2_subnet_id = "subnet-a"
        max_instances = 40
        price_per_hour = 0.38
        stopped_price_per_hour = 0.012
        alternatives = [
            { aws_ec2_instance_type = "m6i.xlarge", price_per_hour = 0.40 },
            { aws_ec2_subnet_id = "subnet-b" },
        ]
    "#;
    let config = load_str(doc, Format::Toml).unwrap().config;
    let aws = &config.vm_providers[0];
    let stand_in = memory_stand_in(aws);
    assert_eq!(stand_in.price_per_hour, Some(0.38));
    assert_eq!(stand_in.stopped_price_per_hour, Some(0.012));
    assert_eq!(stand_in.start_latency, Distribution::Uniform([60.0, 120.0]));
    let names: Vec<Option<&str>> = stand_in
        .alternatives
        .iter()
        .map(|a| a.name.as_deref())
        .collect();
    assert_eq!(
        names,
        [Some("m6i.xlarge/subnet-a"), Some("m5.xlarge/subnet-b")]
    );
    // The same offerings, the same prices, whatever the label of the first.
    let mine = VmProviderConfig::Memory(stand_in).offerings();
    let theirs = aws.offerings();
    assert_eq!(mine.len(), 3);
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(
            (a.price_per_hour, a.stopped_price_per_hour),
            (b.price_per_hour, b.stopped_price_per_hour)
        );
    }
    assert_eq!(mine[1].label, theirs[1].label);
    assert_eq!(mine[1].price_per_hour, Some(0.40));
    assert_eq!(mine[2].stopped_price_per_hour, Some(0.012));
}

#[test]
fn kasms_rules_and_running_only_take_the_warm_tier_out() {
    let mut warm = config("price_per_hour = 1");
    warm.pools[0].autoscale[0].warm_pool = Some(kasm_scale_core::config::WarmPool {
        min_stopped: 1,
        max_stopped: 4,
        max_age: kasm_scale_core::config::DEFAULT_WARM_MAX_AGE,
        readiness: None,
        hibernate: false,
    });
    assert!(has_warm_tier(&warm) && has_warm_tier(&demand_policy(&warm)));
    assert!(!has_warm_tier(&kasm_policy(&warm)));
    assert!(!has_warm_tier(&without_warm_tier(&warm)));
    assert!(!has_warm_tier(&config("")));
}
