//! What a configuration can hold at most, and how much of a trace asks for more: so that a
//! summary says "the config cannot hold this demand" instead of an excellent-looking ratio to
//! the oracle (which only counts the sessions that were served).

use std::collections::HashMap;

use jiff::SignedDuration;

use super::trace::{Kind, TraceEvent};
use crate::config::Config;

/// Sessions pool `pool` can hold at once: over its enabled auto-scale configs, their VM
/// provider's `max_instances` × `max_simultaneous_sessions_per_server`. 0 for a pool that does
/// not exist or has no enabled config.
pub fn pool_capacity(config: &Config, pool: &str) -> u64 {
    let Some(pool) = config.pool(pool) else {
        return 0;
    };
    pool.autoscale
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            let servers = config
                .vm_provider(&c.vm_provider_config_id)
                .map_or(0, |p| u64::from(p.max_instances()));
            servers * u64::from(c.max_simultaneous_sessions_per_server.max(1))
        })
        .sum()
}

/// Servers the minimums alone keep: for each enabled auto-scale config, its largest minimum
/// (schedules included) in whole servers, within its `max_instances`.
pub(crate) fn standby_servers(config: &Config) -> u64 {
    config
        .pools
        .iter()
        .flat_map(|p| &p.autoscale)
        .filter(|c| c.enabled)
        .map(|c| {
            let minimum = c
                .schedules
                .iter()
                .filter_map(|s| s.minimum_pool_standby_sessions)
                .chain([c.minimum_pool_standby_sessions])
                .max()
                .unwrap_or(0);
            let max = config
                .vm_provider(&c.vm_provider_config_id)
                .map_or(0, |p| u64::from(p.max_instances()));
            u64::from(minimum)
                .div_ceil(u64::from(c.max_simultaneous_sessions_per_server.max(1)))
                .min(max)
        })
        .sum()
}

/// The requests of `trace` that arrive while their pool already has as many sessions (running
/// or waiting, as the trace has them) as the configuration can hold ([`pool_capacity`]): no
/// policy can seat them on arrival.
pub fn beyond_capacity(config: &Config, trace: &[TraceEvent]) -> u64 {
    beyond_capacity_after(config, trace, SignedDuration::ZERO)
}

/// The same, counting only the requests that arrive at `from` or later (after a warm-up); the
/// sessions before still fill their pools.
pub(crate) fn beyond_capacity_after(
    config: &Config,
    trace: &[TraceEvent],
    from: SignedDuration,
) -> u64 {
    let mut capacity: HashMap<&str, u64> = HashMap::new();
    let mut active: HashMap<&str, u64> = HashMap::new();
    let mut beyond = 0;
    for e in trace {
        let pool = e.pool.as_str();
        let n = active.entry(pool).or_default();
        match e.kind {
            Kind::Start => {
                let cap = *capacity
                    .entry(pool)
                    .or_insert_with(|| pool_capacity(config, pool));
                if *n >= cap && e.at >= from {
                    beyond += 1;
                }
                *n += 1;
            }
            Kind::End => *n = n.saturating_sub(1),
            Kind::Reconnect => {}
        }
    }
    beyond
}
