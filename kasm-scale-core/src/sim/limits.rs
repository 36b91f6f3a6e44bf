//! The ranges of the simulator's inputs: how long a simulation runs, its tick and sample
//! intervals, the times and number of trace events, and how many servers it may hold. Inputs
//! outside them are refused with a message rather than overflowing the clock, looping without
//! end or exhausting memory.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::run::SimOptions;
use super::trace::TraceEvent;
use crate::config::Config;

/// The longest simulation, and the latest time of a trace event: 366 days.
pub const MAX_SIM_DURATION: SignedDuration = SignedDuration::from_hours(366 * 24);

/// The shortest tick or sample interval: one second.
pub const MIN_SIM_INTERVAL: Duration = Duration::from_secs(1);

/// The longest tick or sample interval: one day.
pub const MAX_SIM_INTERVAL: Duration = Duration::from_secs(86_400);

/// The most trace events one simulation takes: 2,000,000 (a million sessions), about 200 MB of
/// trace in memory.
pub const MAX_SIM_EVENTS: usize = 2_000_000;

/// The most servers (VMs) a simulation holds at once: 20,000. A configuration whose minimums
/// alone keep more is refused before the run; a run that reaches more stops with an error,
/// rather than growing until memory runs out.
pub const MAX_SIM_SERVERS: u64 = 20_000;

/// The range of the start (wall clock) of a simulation: from 1970-01-01 to 9000-01-01 UTC.
/// Ours: every time a simulation computes (start plus up to 366 days, check-in tokens' Unix
/// times) then stays far inside what the clock types hold.
pub const SIM_START_RANGE: (Timestamp, Timestamp) = (
    Timestamp::UNIX_EPOCH,
    Timestamp::constant(221_845_392_000, 0),
);

/// Seconds as an event time: NaN and negative as zero, beyond what a `SignedDuration` holds as
/// [`SignedDuration::MAX`] (which the simulation then refuses as too late).
pub(crate) fn event_time(seconds: f64) -> SignedDuration {
    if seconds.is_nan() || seconds <= 0.0 {
        return SignedDuration::ZERO;
    }
    SignedDuration::try_from_secs_f64(seconds).unwrap_or(SignedDuration::MAX)
}

/// "366 days" for messages.
fn max_text() -> String {
    format!("{} days", MAX_SIM_DURATION.as_hours() / 24)
}

/// Whether a trace time lies within the range, for the trace reader.
pub(crate) fn time_problem(at: SignedDuration) -> Option<String> {
    (at.is_negative() || at > MAX_SIM_DURATION).then(|| {
        format!(
            "must be from 0 to {} seconds ({}) after the start",
            MAX_SIM_DURATION.as_secs(),
            max_text()
        )
    })
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
    let standby = super::capacity::standby_servers(config);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_saturate() {
        assert_eq!(event_time(f64::NAN), SignedDuration::ZERO);
        assert_eq!(event_time(-5.0), SignedDuration::ZERO);
        assert_eq!(event_time(1e300), SignedDuration::MAX);
        assert_eq!(event_time(90.5), SignedDuration::from_millis(90_500));
        assert!(time_problem(SignedDuration::MAX).is_some());
        assert!(time_problem(MAX_SIM_DURATION).is_none());
    }
}
