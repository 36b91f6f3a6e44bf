//! (ours) Feeding and reading the pools' demand history (`engine::demand`): every session
//! request counts as an arrival (and folds the bins that ended before it), every server that
//! becomes ready gives its boot time (or, started from the warm tier, its start time), and each tick hands the engine the signal of the pools
//! whose configs use `standby_policy = "demand"`, read from a folded copy.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::records::Records;
use super::state::State;
use crate::config::{Config, StandbyPolicy};
use crate::engine::PoolSnapshot;
use crate::engine::demand::{self, BootTimes};

/// The time zone of a pool's day: its first config's first schedule's, else UTC.
fn zone(config: &Config, pool: &str) -> TimeZone {
    config
        .pool(pool)
        .and_then(|p| p.autoscale.iter().flat_map(|c| c.schedules.first()).next())
        .map_or(TimeZone::UTC, |s| s.timezone.zone().clone())
}

/// Whether `config` has an auto-scale config named `name`.
fn known(config: &Config, name: &str) -> bool {
    config
        .autoscale_configs()
        .any(|(_, c)| c.autoscale_config_name == name)
}

/// Counts a session request of `pool` at `now`.
pub(crate) fn arrival(records: &mut Records, config: &Config, pool: &str, now: Timestamp) {
    let tz = zone(config, pool);
    let recent = records.demand_recent.entry(pool.to_owned()).or_default();
    let profile = records.demand_profiles.entry(pool.to_owned()).or_default();
    demand::record_arrival(recent, profile, now, &tz);
}

/// Notes how long a server of `config` took to become ready, `seconds` after its creation at
/// `created_at`. Only boots this controller watched from the start count (created since it
/// started, and ready within the config's `checkin_timeout`): a server that came up while the
/// controller was down, or an adopted one, would read as a boot of hours.
pub(crate) fn ready(
    configuration: &Config,
    epoch: Timestamp,
    state: &State,
    config: &str,
    created_at: Timestamp,
    seconds: f64,
) {
    let timeout = configuration
        .autoscale_configs()
        .find(|(_, c)| c.autoscale_config_name == config)
        .map(|(_, c)| f64::from(c.checkin_timeout));
    if created_at < epoch || timeout.is_none_or(|t| seconds > t) {
        return;
    }
    state
        .records()
        .boot_times
        .entry(config.to_owned())
        .or_default()
        .record(seconds);
}

/// Notes how long a server of `config` started from the warm tier at `woken_at` took to be
/// ready again, `seconds` (ours). As for boots, only starts this controller watched from the
/// start count (since it started, and ready within the config's `checkin_timeout`).
pub(crate) fn started(
    configuration: &Config,
    epoch: Timestamp,
    state: &State,
    config: &str,
    woken_at: Timestamp,
    seconds: f64,
) {
    let timeout = configuration
        .autoscale_configs()
        .find(|(_, c)| c.autoscale_config_name == config)
        .map(|(_, c)| f64::from(c.checkin_timeout));
    if woken_at < epoch || timeout.is_none_or(|t| seconds > t) {
        return;
    }
    state
        .records()
        .start_times
        .entry(config.to_owned())
        .or_default()
        .record(seconds);
}

/// Forgets the history of pools and configs the configuration no longer has. Takes the records
/// mutably only when there is something to forget, so a quiet tick still saves nothing (the
/// history changes with requests and ready servers only; bins are folded when the next request
/// comes, and the signal reads a folded copy).
pub(crate) fn prune(config: &Config, state: &State) {
    let stale = {
        let records = state.records();
        records
            .demand_recent
            .keys()
            .any(|p| config.pool(p).is_none())
            || records
                .demand_profiles
                .keys()
                .any(|p| config.pool(p).is_none())
            || records.boot_times.keys().any(|c| !known(config, c))
            || records.start_times.keys().any(|c| !known(config, c))
    };
    if !stale {
        return;
    }
    let mut records = state.records();
    let records = &mut *records;
    records
        .demand_recent
        .retain(|pool, _| config.pool(pool).is_some());
    records
        .demand_profiles
        .retain(|pool, _| config.pool(pool).is_some());
    records.boot_times.retain(|c, _| known(config, c));
    records.start_times.retain(|c, _| known(config, c));
}

/// A pool's history folded up to `now` (a copy: the records are not touched).
fn folded(
    records: &Records,
    pool: &str,
    now: Timestamp,
    tz: &TimeZone,
) -> (demand::RecentDemand, demand::DemandProfile) {
    let mut recent = records.demand_recent.get(pool).cloned().unwrap_or_default();
    let mut profile = records
        .demand_profiles
        .get(pool)
        .cloned()
        .unwrap_or_default();
    if recent.bin_under_way().is_some() {
        demand::roll(&mut recent, &mut profile, now, tz);
    }
    (recent, profile)
}

/// Gives each snapshot whose pool has a config with the demand policy its demand signal.
pub(crate) fn signals(
    config: &Config,
    records: &Records,
    snapshots: &mut [PoolSnapshot],
    now: Timestamp,
) {
    for snap in snapshots {
        if !snap
            .configs
            .iter()
            .any(|c| c.policy.standby_policy == StandbyPolicy::Demand)
        {
            continue;
        }
        let tz = zone(config, &snap.pool);
        let (recent, profile) = folded(records, &snap.pool, now, &tz);
        let boots: Vec<Option<&BootTimes>> = snap
            .configs
            .iter()
            .map(|c| records.boot_times.get(&c.policy.name))
            .collect();
        let starts: Vec<Option<&BootTimes>> = snap
            .configs
            .iter()
            .map(|c| records.start_times.get(&c.policy.name))
            .collect();
        snap.demand = Some(demand::signal(&recent, &profile, &boots, &starts, now, &tz));
    }
}

#[cfg(feature = "sim")]
impl super::Autoscaler {
    /// Until when (at most `until`) the demand signal of every pool with a demand config stays
    /// zero if no request comes ([`demand::quiet_until`]): the simulator skips idle ticks up to
    /// there.
    pub(crate) fn demand_quiet_until(&self, until: Timestamp) -> Timestamp {
        let shared = &self.shared;
        let now = shared.clock.now();
        let records = shared.state.records();
        let mut quiet = until;
        for pool in &shared.setup().config.pools {
            if !pool
                .autoscale
                .iter()
                .any(|c| c.standby_policy == StandbyPolicy::Demand)
            {
                continue;
            }
            let name = &pool.server_pool_name;
            let tz = zone(&shared.setup().config, name);
            let (recent, profile) = folded(&records, name, now, &tz);
            quiet = quiet.min(demand::quiet_until(&recent, &profile, now, until, &tz));
        }
        quiet
    }
}
