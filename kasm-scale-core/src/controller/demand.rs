//! (ours) Feeding and reading the pools' demand history (`engine::demand`): every session
//! request counts as an arrival, every server that becomes ready gives its boot time, and each
//! tick folds the finished bins and hands the engine the signal of the pools whose configs use
//! `standby_policy = "demand"`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Shared;
use super::records::Records;
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

/// Notes how long a server of `config` took to become ready.
pub(crate) fn ready(records: &mut Records, config: &str, seconds: f64) {
    records
        .boot_times
        .entry(config.to_owned())
        .or_default()
        .record(seconds);
}

/// Folds the bins that ended in every pool's history, and forgets the history of pools and
/// configs the configuration no longer has. Takes the records mutably only when something
/// changes, so a quiet tick still saves nothing.
pub(crate) fn roll(shared: &Shared, now: Timestamp) {
    let config = &shared.config;
    let stale = {
        let records = shared.records();
        records.demand_recent.iter().any(|(pool, recent)| {
            config.pool(pool).is_none() || demand::needs_roll(recent, now, &zone(config, pool))
        }) || records.boot_times.keys().any(|c| !known(config, c))
    };
    if !stale {
        return;
    }
    let mut records = shared.records();
    let records = &mut *records;
    records
        .demand_recent
        .retain(|pool, _| config.pool(pool).is_some());
    records
        .demand_profiles
        .retain(|pool, _| config.pool(pool).is_some());
    records.boot_times.retain(|c, _| known(config, c));
    for (pool, recent) in &mut records.demand_recent {
        let profile = records.demand_profiles.entry(pool.clone()).or_default();
        demand::roll(recent, profile, now, &zone(config, pool));
    }
}

/// Gives each snapshot whose pool has a config with the demand policy its demand signal.
pub(crate) fn signals(
    shared: &Shared,
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
        let recent = records
            .demand_recent
            .get(&snap.pool)
            .cloned()
            .unwrap_or_default();
        let profile = records.demand_profiles.get(&snap.pool);
        let empty = demand::DemandProfile::default();
        let boots: Vec<Option<&BootTimes>> = snap
            .configs
            .iter()
            .map(|c| records.boot_times.get(&c.policy.name))
            .collect();
        snap.demand = Some(demand::signal(
            &recent,
            profile.unwrap_or(&empty),
            &boots,
            now,
            &zone(&shared.config, &snap.pool),
        ));
    }
}

#[cfg(feature = "sim")]
impl super::Autoscaler {
    /// Until when (at most `until`) the demand signal of every pool with a demand config stays
    /// zero if no request comes ([`demand::quiet_until`]): the simulator skips idle ticks up to
    /// there.
    pub(crate) fn demand_quiet_until(&self, until: Timestamp) -> Timestamp {
        let shared = &self.shared;
        let now = shared.now();
        let records = shared.records();
        let (recent, profile) = (
            demand::RecentDemand::default(),
            demand::DemandProfile::default(),
        );
        let mut quiet = until;
        for pool in &shared.config.pools {
            if !pool
                .autoscale
                .iter()
                .any(|c| c.standby_policy == StandbyPolicy::Demand)
            {
                continue;
            }
            let name = &pool.server_pool_name;
            quiet = quiet.min(demand::quiet_until(
                records.demand_recent.get(name).unwrap_or(&recent),
                records.demand_profiles.get(name).unwrap_or(&profile),
                now,
                until,
                &zone(&shared.config, name),
            ));
        }
        quiet
    }
}
