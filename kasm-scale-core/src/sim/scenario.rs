//! The embedded default scenario and the plain Kasm policy to compare against.

use super::generate::workday;
use super::trace::TraceEvent;
use crate::config::{Config, Format, load_str};

/// The default scenario's configuration text.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Users of the default scenario's workday.
pub const DEFAULT_USERS: u32 = 300;

/// The default scenario: a pool fed by two clouds, with office-hour schedules and warm buffers
/// for the morning wave and the return from lunch, and a workday of 300 users.
pub fn default_scenario(seed: u64) -> (Config, Vec<TraceEvent>) {
    // The embedded text is checked by the tests: it always loads.
    let config = load_str(DEFAULT_CONFIG, Format::Toml)
        .map(|l| l.config)
        .unwrap_or_default();
    (config, workday("office", DEFAULT_USERS, seed))
}

/// The same configuration as Kasm runs it: one static minimum per config, all day (schedules
/// and their minimums are ours). The minimum is the largest the schedules would ask for, which
/// is what an admin sets to survive the morning wave.
pub fn kasm_policy(config: &Config) -> Config {
    let mut plain = config.clone();
    for pool in &mut plain.pools {
        for c in &mut pool.autoscale {
            let peak = c
                .schedules
                .iter()
                .filter_map(|s| s.minimum_pool_standby_sessions)
                .max()
                .unwrap_or(0);
            c.minimum_pool_standby_sessions = c.minimum_pool_standby_sessions.max(peak);
            c.schedules.clear();
        }
    }
    plain
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
        assert!(trace.len() > 600);
        let plain = super::kasm_policy(&config);
        assert_eq!(
            plain.pools[0].autoscale[0].minimum_pool_standby_sessions,
            40
        );
        assert!(plain.pools[0].autoscale[0].schedules.is_empty());
    }
}
