//! The embedded default scenario and the plain Kasm policy to compare against.

use super::generate::office_week;
use super::trace::TraceEvent;
use crate::config::{Config, Format, StandbyPolicy, load_str};

/// The default scenario's configuration text.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Users of the default scenario's workday.
pub const DEFAULT_USERS: u32 = 300;

/// Days of the default scenario: a week of workdays from the default start, a Monday.
pub const DEFAULT_DAYS: u32 = 5;

/// The default scenario: a pool fed by two clouds, with office-hour schedules, one minimum and
/// the demand policy, and a week of workdays (Monday to Friday from
/// [`SimOptions::default`](super::SimOptions)'s start) of 300 users.
pub fn default_scenario(seed: u64) -> (Config, Vec<TraceEvent>) {
    // The embedded text is checked by the tests: it always loads.
    let config = load_str(DEFAULT_CONFIG, Format::Toml)
        .map(|l| l.config)
        .unwrap_or_default();
    let start = super::SimOptions::default().start;
    (
        config,
        office_week("office", DEFAULT_USERS, DEFAULT_DAYS, start, seed),
    )
}

/// The same configuration under Kasm's rules exactly: each config keeps its
/// `minimum_pool_standby_sessions` while a schedule window is open (Kasm's schedules are active
/// windows), with the static standby policy. What is ours and not Kasm's is taken out: the
/// per-window minimums of schedules, `standby_policy = "demand"` and the warm tier
/// (`warm_pool`).
pub fn kasm_policy(config: &Config) -> Config {
    let mut plain = without_warm_tier(config);
    for c in plain.pools.iter_mut().flat_map(|p| &mut p.autoscale) {
        c.standby_policy = StandbyPolicy::Static;
        for s in &mut c.schedules {
            s.minimum_pool_standby_sessions = None;
        }
    }
    plain
}

/// The same configuration with our demand policy on every auto-scale config
/// (`standby_policy = "demand"`; each keeps its `target_immediate_service`).
pub fn demand_policy(config: &Config) -> Config {
    let mut ours = config.clone();
    for c in ours.pools.iter_mut().flat_map(|p| &mut p.autoscale) {
        c.standby_policy = StandbyPolicy::Demand;
    }
    ours
}

/// (ours) The same configuration without any warm tier (every `warm_pool` taken out): running
/// standby only, to compare a warm tier with.
pub fn without_warm_tier(config: &Config) -> Config {
    let mut running = config.clone();
    for c in running.pools.iter_mut().flat_map(|p| &mut p.autoscale) {
        c.warm_pool = None;
    }
    running
}

/// (ours) Whether any auto-scale config of `config` keeps a warm tier.
pub fn has_warm_tier(config: &Config) -> bool {
    config
        .pools
        .iter()
        .flat_map(|p| &p.autoscale)
        .any(|c| c.warm_pool.is_some())
}

/// (ours) The large pool of the rollout benchmark and its test: one config on the in-memory
/// cloud keeping 2,000 free sessions at 4 per server (500 servers) with room for 600, servers
/// that boot in 120 s and check in 30 s later; `image` goes into the startup script, so
/// another `image` is a new generation (a new image to roll out).
pub fn large_pool(image: &str) -> Config {
    // Quoted as TOML quotes it: any `image` text loads.
    let script = toml::Value::String(format!("# image {image}\n{{checkin_jwt}}"));
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 600
startup_script = {script}
boot_latency = {{ fixed = 120 }}
checkin_delay = {{ fixed = 30 }}

[[pools]]
server_pool_name = "office"
[[pools.autoscale]]
autoscale_config_name = "office-mem"
vm_provider_config_id = "mem"
connection_type = "RDP"
reusable = true
max_simultaneous_sessions_per_server = 4
minimum_pool_standby_sessions = 2000
require_checkin = true
rollout = {{ canary = 1, max_surge = "10%" }}
"##
    );
    // Only the quoted script varies: the document always loads (the test and the bench use it).
    load_str(&text, Format::Toml)
        .map(|l| l.config)
        .unwrap_or_else(|e| unreachable!("the large pool loads: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_scenario_loads() {
        let loaded =
            crate::config::load_str(super::DEFAULT_CONFIG, crate::config::Format::Toml).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let (config, trace) = super::default_scenario(1);
        assert_eq!(config.pools[0].autoscale.len(), 2);
        assert!(trace.len() > 5 * 1000, "{}", trace.len());
        let aws_minimum = config.pools[0].autoscale[0].minimum_pool_standby_sessions;
        assert!(aws_minimum > 0);
        let mut with_override = config.clone();
        with_override.pools[0].autoscale[0].schedules[0].minimum_pool_standby_sessions = Some(40);
        let plain = super::kasm_policy(&super::demand_policy(&with_override));
        let c = &plain.pools[0].autoscale[0];
        assert_eq!(c.minimum_pool_standby_sessions, aws_minimum);
        assert_eq!(c.schedules.len(), 1, "Kasm's windows stay");
        assert_eq!(c.schedules[0].minimum_pool_standby_sessions, None);
        assert_eq!(c.standby_policy, crate::config::StandbyPolicy::Static);
        let ours = super::demand_policy(&config);
        assert!(
            ours.pools[0]
                .autoscale
                .iter()
                .all(|c| c.standby_policy == crate::config::StandbyPolicy::Demand)
        );
    }

    #[test]
    fn the_large_pool_loads_whatever_its_image_says() {
        for image in ["2026-12", "a \"quoted\" image\\", ""] {
            let config = super::large_pool(image);
            assert_eq!(config.vm_providers.len(), 1, "{image}");
            assert_eq!(config.vm_providers[0].max_instances(), 600);
        }
        let (a, b) = (super::large_pool("2026-11"), super::large_pool("2026-12"));
        assert_ne!(a.generation("office-mem"), b.generation("office-mem"));
    }
}
