//! How to run a simulation ([`SimOptions`]), and whether a configuration, a trace and options
//! can be simulated at all: each within the ranges of [`super::limits`].

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::capacity::standby_servers;
use super::change::ConfigChange;
use super::limits::{
    MAX_SIM_DURATION, MAX_SIM_EVENTS, MAX_SIM_INTERVAL, MAX_SIM_SERVERS, MIN_SIM_INTERVAL,
    SIM_START_RANGE, max_text, time_problem,
};
use super::trace::TraceEvent;
use crate::config::Config;

/// How to run a simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seed of every random choice (clouds, directories, controller).
    pub seed: u64,
    /// Wall-clock time of the start (schedules are evaluated at it).
    pub start: Timestamp,
    /// How long to run; default: until the last trace event, plus an hour.
    pub duration: Option<SignedDuration>,
    /// Time between controller ticks.
    pub tick: Duration,
    /// Time between samples of the chart series.
    pub sample: Duration,
    /// Called at every sample with the share of the simulation done (0 to 1), e.g. to move a
    /// progress bar.
    pub progress: Option<Progress>,
    /// Skip the controller's ticks while it is provably idle (default: true), so that a run
    /// costs in proportion to its events rather than to the time it covers. The results are
    /// the same either way (see `sim/idle.rs`); `false` runs every tick, for comparison.
    pub skip_idle: bool,
    /// Days (24 hours each, from the start) that only warm the pool up: they are simulated and
    /// reported day by day ([`Metrics::days`](super::Metrics::days)), but left out of the whole-run figures. Default
    /// 0; the warm-up must end before the simulation does.
    pub warmup_days: u32,
    /// (ours) Configurations applied during the run, as reloads ([`ConfigChange`]); each at
    /// its own instant inside the run. With changes the simulation runs twice: once without
    /// them, to compare with (see [`super::ChangeMetrics`]). Default: none.
    pub changes: Vec<ConfigChange>,
}

/// A progress callback: gets the share of the simulation done, 0 to 1.
#[derive(Clone)]
pub struct Progress(pub Arc<dyn Fn(f64) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            start: "2026-11-30T00:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            duration: None,
            tick: Duration::from_secs(10),
            sample: Duration::from_secs(60),
            progress: None,
            skip_idle: true,
            warmup_days: 0,
            changes: Vec::new(),
        }
    }
}

/// When a simulation of `trace` ends: after `options.duration`, or an hour after the last event.
pub(crate) fn end_of(trace: &[TraceEvent], options: &SimOptions) -> SignedDuration {
    options.duration.unwrap_or_else(|| {
        trace.last().map_or(SignedDuration::ZERO, |e| e.at) + SignedDuration::from_hours(1)
    })
}

/// Why `config`, `options` and `trace` cannot be simulated, if they cannot.
pub(crate) fn problem(
    config: &Config,
    trace: &[TraceEvent],
    options: &SimOptions,
) -> Option<String> {
    if config.pools.is_empty() {
        return Some("the configuration defines no pools: there is nothing to simulate".into());
    }
    let (earliest, latest) = SIM_START_RANGE;
    if !(earliest..=latest).contains(&options.start) {
        return Some(format!(
            "the start must be between {earliest} and {latest}, got {}",
            options.start
        ));
    }
    if trace.len() > MAX_SIM_EVENTS {
        return Some(format!(
            "the trace has {} events, more than the simulator takes ({MAX_SIM_EVENTS})",
            trace.len()
        ));
    }
    let standby = standby_servers(config);
    if standby > MAX_SIM_SERVERS {
        return Some(format!(
            "the minimums (minimum_pool_standby_sessions, schedules included) keep {standby} servers, \
             more than the simulator holds ({MAX_SIM_SERVERS})"
        ));
    }
    for (name, interval) in [("tick", options.tick), ("sample", options.sample)] {
        if !(MIN_SIM_INTERVAL..=MAX_SIM_INTERVAL).contains(&interval) {
            return Some(format!(
                "the {name} interval must be between 1 second and 1 day, got {interval:?}"
            ));
        }
    }
    if let Some(d) = options.duration
        && (d.is_negative() || d > MAX_SIM_DURATION)
    {
        return Some(format!(
            "the duration must be between 0 and {}, got {d:#}",
            max_text()
        ));
    }
    if let (Some(d), Some(first)) = (options.duration, trace.first())
        && first.at >= d
        && !d.is_negative()
    {
        return Some(format!(
            "the simulation would end (after {d:#}) before the trace's first event (at {:#}): \
             it would measure nothing",
            first.at
        ));
    }
    if let Some((i, e)) = trace
        .iter()
        .enumerate()
        .find(|(_, e)| time_problem(e.at).is_some())
    {
        return Some(format!(
            "trace event {} (session `{}`) at {:#}: its time {}",
            i + 1,
            e.session,
            e.at,
            time_problem(e.at).unwrap_or_default()
        ));
    }
    // Last: the end is known to be in range.
    if let Some(message) = super::change::problem(&options.changes, end_of(trace, options)) {
        return Some(message);
    }
    if options.warmup_days > 0 {
        let end = end_of(trace, options);
        let warmup = SignedDuration::from_hours(24 * i64::from(options.warmup_days));
        if warmup >= end {
            return Some(format!(
                "the warm-up ({} days) must end before the simulation does (after {end:#}): \
                 nothing would be measured",
                options.warmup_days
            ));
        }
    }
    None
}
