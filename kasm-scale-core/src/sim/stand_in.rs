//! The in-memory stand-in that a simulation runs for each VM provider config.

use crate::config::{Distribution, MemoryAlternative, MemoryVmConfig, VmProviderConfig};

/// The in-memory stand-in for a provider: its own settings when it is a memory provider, else
/// typical figures for the cloud (boot 90–150 s, check-in 20–60 s, a start of a stopped VM
/// 60–120 s) with the provider's prices and its alternatives (each an offering of the same
/// label and prices, with no capacity limit or outage of its own). No guest runs the startup
/// script in a simulation, so the stand-in's script is just the check-in token.
pub fn memory_stand_in(provider: &VmProviderConfig) -> MemoryVmConfig {
    let offerings = provider.offerings();
    match provider {
        VmProviderConfig::Memory(m) => MemoryVmConfig {
            startup_script: "{checkin_jwt}".into(),
            startup_script_builtin: None,
            startup_script_variables: Default::default(),
            ..m.clone()
        },
        other => MemoryVmConfig {
            name: other.name().to_owned(),
            max_instances: other.max_instances(),
            startup_script: "{checkin_jwt}".into(),
            startup_script_builtin: None,
            startup_script_variables: Default::default(),
            boot_latency: Distribution::Uniform([90.0, 150.0]),
            checkin_delay: Distribution::Uniform([20.0, 60.0]),
            create_failure_rate: 0.0,
            destroy_failure_rate: 0.0,
            never_checkin_rate: 0.0,
            rate_limit_per_second: None,
            capacity: None,
            outages: Vec::new(),
            price_per_hour: offerings.first().and_then(|o| o.price_per_hour),
            stopped_price_per_hour: offerings.first().and_then(|o| o.stopped_price_per_hour),
            alternatives: offerings
                .iter()
                .skip(1)
                .map(|o| MemoryAlternative {
                    name: Some(o.label.clone()),
                    capacity: None,
                    outages: Vec::new(),
                    price_per_hour: o.price_per_hour,
                    stopped_price_per_hour: o.stopped_price_per_hour,
                })
                .collect(),
            capacity_skip_seconds: crate::config::DEFAULT_CAPACITY_SKIP_SECONDS,
            start_latency: Distribution::Uniform([60.0, 120.0]),
            stop_failure_rate: 0.0,
            start_failure_rate: 0.0,
            // The controller paces its calls to the stand-in as it would to the cloud.
            api_concurrency: other.api_fields().0,
            api_rate_limit_per_second: other.api_fields().1,
            api_call_timeout: other.api_fields().2,
        },
    }
}
