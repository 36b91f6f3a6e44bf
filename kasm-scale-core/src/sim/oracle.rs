//! The oracle: a lower bound on the VM-hours that any policy needs to serve the sessions the
//! simulation served, for as long as it served them, knowing the future: over the whole run,
//! or within a window of it (a day, the run after its warm-up).

use crate::config::{Config, Distribution, Pool, VmProviderConfig};

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

/// The bound over the whole run, per pool, summed: [`oracle_vm_hours_within`] from the start
/// on. With reusable servers of `k` sessions, at every moment at least `ceil(sessions / k)` VMs
/// run, and each of the most ever needed at once booted once before; with single-use servers
/// every session has a VM of its own that booted first. `k` is the largest capacity and the
/// boot the shortest of the pool's configs, so the bound holds whichever config serves. VMs
/// start from none, so every VM's boot falls inside the simulation.
pub fn oracle_vm_hours(config: &Config, served: &[Served]) -> f64 {
    oracle_vm_hours_within(config, served, 0.0, f64::INFINITY)
}

/// The bound within the window `[from, to)` (seconds from the start), per pool, summed. Each
/// session counts for its time inside the window. For reusable servers of `k` sessions:
/// `∫ ceil(sessions / k) dt` over the window, plus a boot for each VM that the window's peak
/// needs beyond the `ceil(sessions / k)` alive at `from`, which count as booted already (none
/// at the run's start). For single-use servers: the sessions' time in the window, plus a boot
/// for each session that starts in it.
///
/// Within a window that does not begin at the start, this assumes the policy enters it with
/// just the VMs its sessions then need: a policy that carries more warm VMs across `from` paid
/// for them before, and one whose boot straddles `from` pays part of it before. Over the whole
/// run (`from` = 0) the bound holds for every policy.
pub fn oracle_vm_hours_within(config: &Config, served: &[Served], from: f64, to: f64) -> f64 {
    config
        .pools
        .iter()
        .map(|pool| pool_hours(config, pool, served, from, to))
        .fold(0.0, |sum, hours| sum + hours)
}

/// (ours) What [`oracle_vm_hours_within`] costs: each pool's bound at the lowest offering-0
/// `price_per_hour` of its configs' VM providers (the oracle runs every VM on the cheapest
/// first choice; it keeps nothing stopped). `None` when a pool whose bound is not 0 has a
/// config whose provider is unpriced.
pub fn oracle_cost_within(config: &Config, served: &[Served], from: f64, to: f64) -> Option<f64> {
    let mut total = 0.0;
    let mut priced = false;
    for pool in &config.pools {
        let hours = pool_hours(config, pool, served, from, to);
        let prices: Option<Vec<f64>> = pool
            .autoscale
            .iter()
            .filter_map(|c| config.vm_provider(&c.vm_provider_config_id))
            .map(|p| p.offerings().first().and_then(|o| o.price_per_hour))
            .collect();
        let least = prices.and_then(|p| p.into_iter().reduce(f64::min));
        match least {
            Some(price) => {
                total += hours * price;
                priced = true;
            }
            None if hours > 0.0 => return None,
            None => {}
        }
    }
    priced.then_some(total)
}

/// One pool's bound within `[from, to)`.
fn pool_hours(config: &Config, pool: &Pool, served: &[Served], from: f64, to: f64) -> f64 {
    // Each session clipped to the window; those with nothing in it dropped.
    let mine: Vec<(f64, f64)> = served
        .iter()
        .filter(|s| s.pool == pool.server_pool_name && s.to > s.from)
        .map(|s| (s.from.max(from), s.to.min(to)))
        .filter(|(a, b)| b > a)
        .collect();
    if mine.is_empty() || pool.autoscale.is_empty() {
        return 0.0;
    }
    let (k, boot) = shape(config, pool);
    if pool.autoscale.iter().any(|c| c.reusable) {
        // Sessions alive at the window's start (clipped to begin there); none at the run's.
        let at_start = if from > 0.0 {
            mine.iter().filter(|(a, _)| *a == from).count() as u64
        } else {
            0
        };
        // Sweep the starts (+1) and ends (-1); ends first at the same instant.
        let mut points: Vec<(f64, i64)> =
            mine.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut active, mut peak, mut seconds) = (0i64, 0u64, 0.0);
        let mut last = points.first().map_or(0.0, |p| p.0);
        for (t, delta) in points {
            seconds += (t - last) * (active.max(0) as u64).div_ceil(k) as f64;
            last = t;
            active += delta;
            peak = peak.max((active.max(0) as u64).div_ceil(k));
        }
        let boots = peak.saturating_sub(at_start.div_ceil(k));
        (seconds + boots as f64 * boot) / 3600.0
    } else {
        let time: f64 = mine.iter().map(|(a, b)| b - a).sum();
        let boots = served
            .iter()
            .filter(|s| s.pool == pool.server_pool_name && s.to > s.from)
            .filter(|s| s.from >= from && s.from < to)
            .count();
        (time + boots as f64 * boot) / 3600.0
    }
}

/// A pool's largest sessions per server and shortest boot (seconds) over its configs.
fn shape(config: &Config, pool: &Pool) -> (u64, f64) {
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
    (k, if boot.is_finite() { boot } else { 0.0 })
}
