//! The oracle: a lower bound on the VM-hours that any policy needs to serve the sessions the
//! simulation served, for as long as it served them, knowing the future.

use crate::config::{Config, Distribution, VmProviderConfig};

/// A served session: its pool, and from when to when it had a server (seconds from the start).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The pool.
    pub pool: String,
    /// When it got a server.
    pub from: f64,
    /// When it ended (or the simulation did).
    pub to: f64,
}

/// The least boot time a distribution can give, in seconds.
fn least(d: &Distribution) -> f64 {
    match *d {
        Distribution::Fixed(s) => s.max(0.0),
        Distribution::Uniform([lo, _]) => lo.max(0.0),
        Distribution::Normal { .. } => 0.0,
    }
}

/// The bound, per pool, summed. With reusable servers of `k` sessions, at every moment at least
/// `ceil(sessions / k)` VMs run, and each of the most ever needed at once booted once before;
/// with single-use servers every session has a VM of its own that booted first. `k` is the
/// largest capacity and the boot the shortest of the pool's configs, so the bound holds whichever
/// config serves. VMs start from none, so every VM's boot falls inside the simulation.
pub fn oracle_vm_hours(config: &Config, served: &[Served]) -> f64 {
    let mut total = 0.0;
    for pool in &config.pools {
        let mine: Vec<&Served> = served
            .iter()
            .filter(|s| s.pool == pool.server_pool_name && s.to > s.from)
            .collect();
        if mine.is_empty() || pool.autoscale.is_empty() {
            continue;
        }
        let k = u64::from(
            pool.autoscale
                .iter()
                .map(|c| c.max_simultaneous_sessions_per_server.max(1))
                .max()
                .unwrap_or(1),
        );
        let boot = pool
            .autoscale
            .iter()
            .filter_map(|c| config.vm_provider(&c.vm_provider_config_id))
            .map(|p| match p {
                VmProviderConfig::Memory(m) => least(&m.boot_latency),
                _ => 0.0,
            })
            .fold(f64::INFINITY, f64::min);
        let boot = if boot.is_finite() { boot } else { 0.0 };
        if pool.autoscale.iter().any(|c| c.reusable) {
            // Sweep the starts (+1) and ends (-1); ends first at the same instant.
            let mut points: Vec<(f64, i64)> = mine
                .iter()
                .flat_map(|s| [(s.from, 1), (s.to, -1)])
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let (mut active, mut peak, mut seconds, mut last) = (0i64, 0u64, 0.0, 0.0);
            for (t, delta) in points {
                seconds += (t - last) * (active.max(0) as u64).div_ceil(k) as f64;
                last = t;
                active += delta;
                peak = peak.max((active.max(0) as u64).div_ceil(k));
            }
            total += (seconds + peak as f64 * boot) / 3600.0;
        } else {
            total += mine.iter().map(|s| s.to - s.from + boot).sum::<f64>() / 3600.0;
        }
    }
    total
}
