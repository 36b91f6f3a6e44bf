//! The ranges of the simulator's inputs: how long a simulation runs, its tick and sample
//! intervals, the times and number of trace events, and how many servers it may hold. Inputs
//! outside them are refused with a message rather than overflowing the clock, looping without
//! end or exhausting memory.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

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
pub(crate) fn max_text() -> String {
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
