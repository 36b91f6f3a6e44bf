//! Skipping idle ticks, so that a simulation costs in proportion to what happens rather than to
//! the time it covers (a quiet night, a weekend, a year with one event a day).
//!
//! The ticks skipped are those that provably change nothing. After a tick the controller is
//! *idle* when every server runs (none is made, boots or goes), no request waits, no VM is due to
//! boot or check in, and no config counts a surplus or failures. It then stays idle, tick after
//! tick, until a trace event comes or the one `now`-dependent input of its plans changes: which
//! schedule windows are open (they give each config's minimum and whether it scales at all),
//! known at every skipped tick's time. A config with the demand standby policy plans from the
//! time itself (its forecast moves, its recent rate decays) while one of its windows is open:
//! there, ticks are skipped only while its demand signal is provably zero (no request in the
//! last minutes, and none expected by the learned profile within the longest look-ahead).
//!
//! What an idle tick still does is its reconcile, every [`RECONCILE_EVERY`] ticks: listings that
//! find nothing new, whose only trace is in the rate limits (the memory clouds' token buckets and
//! the controller's pacing). So ticks are skipped in whole reconcile periods (the reconcile
//! cadence stays aligned), only when every rate limit refills from a reconcile's calls within a
//! period, and only when the next call after the skip comes after that refill: each limit is
//! then in the same state as if the listings had happened.
//!
//! The test `skipping_idle_ticks_changes_nothing` (`kasm-scale-core/tests/it/sim.rs`) compares both
//! runs, metrics and series, on six seeds and configurations.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::config::{Config, Schedule, StandbyPolicy, VmProviderConfig};
use crate::controller::Autoscaler;
use crate::engine::ServerState;

/// Ticks between two reconciles in a simulation (the controller's default, set explicitly).
pub(crate) const RECONCILE_EVERY: u64 = 10;

/// Calls one reconcile makes through one backend's limits at most (a provider lists its VMs and
/// its leftovers; a directory lists its records).
const CALLS_PER_RECONCILE: f64 = 3.0;

/// What skipping needs to know of the configuration, computed once.
#[derive(Debug)]
pub(crate) struct Skipper {
    /// Every schedule of every auto-scale config: a plan depends on the time only through
    /// which of them are open (and, for configs without schedules, not at all).
    schedules: Vec<Schedule>,
    /// Ticks between two looks at the schedules: shorter than any of their windows or gaps, so
    /// that a schedule found in the same state at both ends did not change in between.
    stride: u64,
    names: Vec<String>,
    /// The schedules of each config with the demand standby policy: its plans depend on the
    /// time through its demand signal too, so ticks are skipped only while each of them is
    /// outside every window (it keeps no demand standby then); one without schedules is never.
    demand: Vec<Vec<Schedule>>,
    /// How long the slowest rate limit takes to refill from one reconcile's calls; `None` when
    /// some limit cannot refill within a reconcile period (nothing is skipped then).
    refill: Option<Duration>,
    tick: Duration,
}

impl Skipper {
    /// For `config` (its providers already memory stand-ins), ticking every `tick`.
    pub(crate) fn new(config: &Config, tick: Duration) -> Self {
        let mut refill = Duration::ZERO;
        let mut possible = true;
        let mut bucket = |rate: Option<f64>| match rate {
            // The cloud's own token bucket (burst: the rate, at least 1): both listings of a
            // reconcile must find a token, or the retries of the throttled one draw jitter from
            // the controller's randomness.
            None => {}
            Some(r) if r.is_finite() && r >= 2.0 => {
                refill = refill.max(Duration::from_secs_f64(2.0 / r));
            }
            Some(_) => possible = false,
        };
        for p in &config.vm_providers {
            if let VmProviderConfig::Memory(m) = p {
                bucket(m.rate_limit_per_second);
            }
        }
        // The controller's pacing: each call waits its turn, `calls / rate` in all.
        let mut pace = |rate: Option<f64>| match rate {
            None => {}
            Some(r) if r.is_finite() && r > 0.0 => {
                refill = refill.max(Duration::from_secs_f64(CALLS_PER_RECONCILE / r));
            }
            Some(_) => possible = false,
        };
        for p in &config.vm_providers {
            pace(p.api_fields().1);
        }
        for l in &config.ldap_configs {
            pace(l.api_limits().rate_limit_per_second);
        }
        let period = tick.saturating_mul(RECONCILE_EVERY as u32);
        let configs = || config.pools.iter().flat_map(|p| &p.autoscale);
        let schedules: Vec<Schedule> = configs().flat_map(|c| c.schedules.clone()).collect();
        let shortest = schedules.iter().map(shortest_run).min();
        let stride = shortest.map_or(u64::MAX, |run| {
            (run.saturating_sub(Duration::from_secs(1)).as_nanos() / tick.as_nanos().max(1))
                .clamp(1, u128::from(u32::MAX)) as u64
        });
        Self {
            schedules,
            stride,
            names: configs().map(|c| c.autoscale_config_name.clone()).collect(),
            demand: configs()
                .filter(|c| c.standby_policy == StandbyPolicy::Demand)
                .map(|c| c.schedules.clone())
                .collect(),
            refill: (possible && refill <= period).then_some(refill),
            tick,
        }
    }

    /// Whether the controller is idle now (see the module documentation); `waiting` is whether
    /// a request of the trace waits for a server, `pending` whether a VM is due to boot or
    /// check in.
    pub(crate) fn idle(&self, scaler: &Autoscaler, waiting: bool, pending: bool) -> bool {
        self.refill.is_some()
            && (self.demand_asleep(scaler.now()) || self.demand_quiet(scaler))
            && !waiting
            && !pending
            && self.names.iter().all(|n| {
                let b = scaler.bookkeeping(n);
                b.downscale_requested_at.is_none() && b.consecutive_failures == 0
            })
            && scaler
                .servers()
                .iter()
                .all(|s| s.state == ServerState::Running)
    }

    /// Whether the demand signal is zero now and for the next tick at least.
    fn demand_quiet(&self, scaler: &Autoscaler) -> bool {
        let wall = scaler.now();
        let next = SignedDuration::try_from(self.tick)
            .ok()
            .and_then(|d| wall.checked_add(d).ok())
            .unwrap_or(wall);
        scaler.demand_quiet_until(next) > wall
    }

    /// Whether every config with the demand policy is outside all its windows at `wall`.
    fn demand_asleep(&self, wall: Timestamp) -> bool {
        self.demand
            .iter()
            .all(|w| !w.is_empty() && !w.iter().any(|s| s.is_active_at(wall)))
    }

    /// How many ticks to skip, the first due at `next_tick`, when the controller is idle at
    /// `now` (wall clock `wall`) and nothing else happens before `limit` (the next trace event
    /// or the end): a multiple of [`RECONCILE_EVERY`], 0 when none can be skipped.
    pub(crate) fn ticks_to_skip(
        &self,
        scaler: &Autoscaler,
        now: tokio::time::Instant,
        next_tick: tokio::time::Instant,
        mut limit: tokio::time::Instant,
    ) -> u64 {
        let Some(refill) = self.refill else {
            return 0;
        };
        let wall = scaler.now();
        let at = |t: tokio::time::Instant| {
            SignedDuration::try_from(t.saturating_duration_since(now))
                .ok()
                .and_then(|d| wall.checked_add(d).ok())
        };
        // A demand config in a window: no further than its signal stays zero.
        if !self.demand_asleep(wall)
            && let Some(until) = at(limit)
        {
            let quiet = scaler.demand_quiet_until(until);
            let ahead = Duration::try_from(quiet.duration_since(wall)).unwrap_or(Duration::ZERO);
            limit = limit.min(now + ahead);
        }
        // The most ticks the limit allows: the tick after the skip (tick `most`) comes no
        // later than the next event, and the next call after the skipped reconciles after
        // their refill.
        let most = limit
            .checked_duration_since(next_tick + refill)
            .map_or(0, |room| {
                (room.as_nanos() / self.tick.as_nanos().max(1)).min(u128::from(u32::MAX / 2)) as u64
            });
        if most == 0 {
            return 0;
        }
        let open = |k: u64| -> Option<Vec<bool>> {
            let t = at(next_tick + self.tick.saturating_mul(k as u32))?;
            Some(self.schedules.iter().map(|s| s.is_active_at(t)).collect())
        };
        let before: Option<Vec<bool>> = Some(
            self.schedules
                .iter()
                .map(|s| s.is_active_at(wall))
                .collect(),
        );
        // Look every `stride` ticks (no schedule can change and change back in between), then
        // tick by tick in the stretch where one changed.
        let mut same: Option<u64> = None;
        let skip = loop {
            let probe = same.map_or(0, |j| j.saturating_add(self.stride).min(most - 1));
            if open(probe) != before {
                let from = same.map_or(0, |j| j + 1);
                break (from..=probe).find(|j| open(*j) != before).unwrap_or(probe);
            }
            if probe == most - 1 {
                break most;
            }
            same = Some(probe);
        };
        skip - skip % RECONCILE_EVERY
    }
}

/// The shortest stretch a schedule stays open or closed, in real time: its window or the rest
/// of the day, less three hours where its zone changes offsets (a daylight-saving jump moves
/// the window's ends).
fn shortest_run(s: &Schedule) -> Duration {
    let day = 86_400i64;
    let start = i64::from(s.active_start_time.0.hour()) * 3600
        + i64::from(s.active_start_time.0.minute()) * 60
        + i64::from(s.active_start_time.0.second());
    let end = i64::from(s.active_end_time.0.hour()) * 3600
        + i64::from(s.active_end_time.0.minute()) * 60
        + i64::from(s.active_end_time.0.second());
    let window = (end - start).rem_euclid(day);
    let run = if window == 0 {
        day
    } else {
        window.min(day - window)
    };
    let fixed = s.timezone.zone().to_fixed_offset().is_ok();
    let run = if fixed { run } else { run - 3 * 3600 };
    Duration::from_secs(run.max(0) as u64)
}
