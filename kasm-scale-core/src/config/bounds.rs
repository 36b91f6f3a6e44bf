//! The ranges every duration, rate and concurrency of a configuration must lie in, and the one
//! message that reports a value outside them (the same whether the file is loaded or a config
//! built in code is validated).
//!
//! | what | range |
//! | --- | --- |
//! | latencies and delays (`boot_latency`, `checkin_delay`) | 0 to 604800 s (7 days) |
//! | scaling waits (`checkin_timeout` 1 s and up, `downscale_backoff` 0 s and up) | up to 2592000 s (30 days) |
//! | timeouts of one call (`connection_timeout`, `api_call_timeout`) | 1 to 3600 s (1 hour) |
//! | timeout of one long-running operation (Azure `api_operation_timeout`) | 1 to 86400 s (1 day) |
//! | rates (`rate_limit_per_second`, `api_rate_limit_per_second`) | 0.001 to 100000 calls per second |
//! | `api_concurrency` | 1 to 1024 |
//! | probabilities (`*_failure_rate`, `never_checkin_rate`) | 0 to 1 |
//! | `max_instances` | 1 to 10000 |
//! | memory `outages`: `start`, `duration` (more than 0) | 0 to 31622400 s (366 days) |
//! | `max_simultaneous_sessions_per_server` | 1 to 1000 |
//! | `minimum_pool_standby_sessions` (config and schedule) | 0 to 100000 |
//! | `target_immediate_service` | 0.5 to 0.9999 |
//! | prices (`price_per_hour`, `stopped_price_per_hour`) | 0 to 1000000 per hour |
//! | `capacity_skip_seconds` | 0 to 86400 s (1 day) |
//! | warm tier `max_age` | 3600 s (1 hour) to 31622400 s (366 days) |
//!
//! NaN and infinities are refused everywhere. The three counts are ours (Kasm has no upper
//! limit): far beyond any real pool, they catch a typo (`1000000` for `100`) before the
//! controller provisions without end or keeps millions of servers in memory.

use std::fmt;

use serde::Deserializer;

use super::fields::{Num, whole_number};

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Longest latency or delay (`boot_latency`, `checkin_delay`): 7 days, in seconds.
pub const MAX_DELAY_SECONDS: u64 = 7 * DAY;

/// Longest scaling wait (`checkin_timeout`, `downscale_backoff`): 30 days, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 30 * DAY;

/// Latest start and longest duration of a memory cloud's outage (`outages`): 366 days, in
/// seconds (the longest simulation).
pub const MAX_OUTAGE_SECONDS: u64 = 366 * DAY;

/// Longest timeout of one call (`connection_timeout`, `api_call_timeout`): 1 hour, in seconds.
pub const MAX_CALL_TIMEOUT_SECONDS: u64 = 3600;

/// Longest timeout of one long-running operation (Azure's `api_operation_timeout`): 1 day, in
/// seconds.
pub const MAX_OPERATION_TIMEOUT_SECONDS: u64 = DAY;

/// Lowest rate limit, in calls per second (one call in about 17 minutes).
pub const MIN_RATE_PER_SECOND: f64 = 0.001;

/// Highest rate limit, in calls per second.
pub const MAX_RATE_PER_SECOND: f64 = 100_000.0;

/// Most calls in flight to one provider or directory (`api_concurrency`).
pub const MAX_API_CONCURRENCY: u32 = 1024;

/// Most live servers of one auto-scale config (`max_instances`): 10,000. Ours: ten times the
/// largest fleets we know of one Kasm pool, and the controller plans over every server at each
/// tick.
pub const MAX_INSTANCES: u32 = 10_000;

/// Most sessions on one server (`max_simultaneous_sessions_per_server`): 1,000. Ours: a
/// multi-session Windows host serves tens to a few hundred users.
pub const MAX_SESSIONS_PER_SERVER: u32 = 1_000;

/// Most free session slots to keep (`minimum_pool_standby_sessions`, in a config or a
/// schedule): 100,000. Ours: a warm buffer ten times `MAX_INSTANCES` single-session servers.
pub const MAX_STANDBY_SESSIONS: u32 = 100_000;

/// What a bounded number counts, for messages.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// A plain count.
    Count,
    /// Seconds.
    Seconds,
    /// Calls per second.
    PerSecond,
}

/// A closed range of allowed values of one kind of field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    min: f64,
    max: f64,
    unit: Unit,
}

/// Latencies and delays, 0 to 7 days.
pub(crate) const DELAY: Bound = Bound::seconds(0, MAX_DELAY_SECONDS);
/// An outage's `start` and `duration`, 0 to 366 days.
pub(crate) const OUTAGE: Bound = Bound::seconds(0, MAX_OUTAGE_SECONDS);
/// `checkin_timeout`, 1 s to 30 days.
pub(crate) const CHECKIN_TIMEOUT: Bound = Bound::seconds(1, MAX_WAIT_SECONDS);
/// `downscale_backoff`, 0 s to 30 days.
pub(crate) const DOWNSCALE_BACKOFF: Bound = Bound::seconds(0, MAX_WAIT_SECONDS);
/// `connection_timeout` and `api_call_timeout`, 1 s to 1 hour.
pub(crate) const CALL_TIMEOUT: Bound = Bound::seconds(1, MAX_CALL_TIMEOUT_SECONDS);
/// Azure's `api_operation_timeout`, 1 s to 1 day.
pub(crate) const OPERATION_TIMEOUT: Bound = Bound::seconds(1, MAX_OPERATION_TIMEOUT_SECONDS);
/// `api_concurrency`, 1 to 1024.
pub(crate) const API_CONCURRENCY: Bound = Bound {
    min: 1.0,
    max: MAX_API_CONCURRENCY as f64,
    unit: Unit::Count,
};
/// Rate limits, 0.001 to 100000 calls per second.
pub(crate) const RATE: Bound = Bound {
    min: MIN_RATE_PER_SECOND,
    max: MAX_RATE_PER_SECOND,
    unit: Unit::PerSecond,
};
/// `max_instances`, 1 to 10000.
pub(crate) const INSTANCES: Bound = Bound::count(1, MAX_INSTANCES);
/// `max_simultaneous_sessions_per_server`, 1 to 1000.
pub(crate) const SESSIONS_PER_SERVER: Bound = Bound::count(1, MAX_SESSIONS_PER_SERVER);
/// `minimum_pool_standby_sessions`, 0 to 100000.
pub(crate) const STANDBY_SESSIONS: Bound = Bound::count(0, MAX_STANDBY_SESSIONS);
/// `target_immediate_service`, 0.5 to 0.9999.
pub(crate) const SERVICE_TARGET: Bound = Bound {
    min: 0.5,
    max: 0.9999,
    unit: Unit::Count,
};
/// Prices per hour, 0 to 1000000.
pub(crate) const PRICE: Bound = Bound::count(0, 1_000_000);
/// `capacity_skip_seconds`, 0 s to 1 day.
pub(crate) const CAPACITY_SKIP: Bound = Bound::seconds(0, DAY);
/// A warm tier's `max_age`, 1 hour to 366 days.
pub(crate) const WARM_AGE: Bound = Bound::seconds(3600, MAX_OUTAGE_SECONDS);
/// Probabilities, 0 to 1.
pub(crate) const PROBABILITY: Bound = Bound {
    min: 0.0,
    max: 1.0,
    unit: Unit::Count,
};

impl Bound {
    const fn count(min: u32, max: u32) -> Bound {
        Bound {
            min: min as f64,
            max: max as f64,
            unit: Unit::Count,
        }
    }

    const fn seconds(min: u64, max: u64) -> Bound {
        Bound {
            min: min as f64,
            max: max as f64,
            unit: Unit::Seconds,
        }
    }

    /// "must be between 0 and 604800 seconds (7 days), got 1e300".
    pub(crate) fn message(&self, got: impl fmt::Display) -> String {
        let (min, max) = (Num(self.min), Num(self.max));
        match self.unit {
            Unit::Count => format!("must be between {min} and {max}, got {got}"),
            Unit::PerSecond => {
                format!("must be between {min} and {max} calls per second, got {got}")
            }
            Unit::Seconds => format!(
                "must be between {min} and {max} seconds ({}), got {got}",
                human(self.max as u64)
            ),
        }
    }

    /// Why `v` is outside the range (NaN and infinities always are).
    pub(crate) fn check(&self, v: f64) -> Option<String> {
        (!(v >= self.min && v <= self.max)).then(|| self.message(Num(v)))
    }

    /// The same for an integer.
    pub(crate) fn check_int(&self, v: i128) -> Option<String> {
        (!(v as f64 >= self.min && v as f64 <= self.max)).then(|| self.message(v))
    }

    /// The range's ends as integers (for clamping integer fields).
    pub(crate) fn int_range(&self) -> (u64, u64) {
        (self.min as u64, self.max as u64)
    }
}

/// "7 days", "1 hour", "90 minutes", "45 seconds".
pub(crate) fn human(seconds: u64) -> String {
    let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    if seconds > 0 && seconds.is_multiple_of(DAY) {
        plural(seconds / DAY, "day")
    } else if seconds > 0 && seconds.is_multiple_of(3600) {
        plural(seconds / 3600, "hour")
    } else if seconds > 0 && seconds.is_multiple_of(60) {
        plural(seconds / 60, "minute")
    } else {
        plural(seconds, "second")
    }
}

/// Reads an integer field and checks it against `bound`, with the bound's message for a value
/// outside it (negative and too large for the type included).
fn int_in<'de, D: Deserializer<'de>>(d: D, bound: &Bound) -> Result<u64, D::Error> {
    use serde::de::Error;
    match whole_number(d)? {
        Ok(v) => match bound.check_int(v) {
            Some(message) => Err(D::Error::custom(message)),
            None => u64::try_from(v).map_err(|_| D::Error::custom(bound.message(v))),
        },
        Err(huge) => Err(D::Error::custom(bound.message(Num(huge)))),
    }
}

/// `price_per_hour` and `stopped_price_per_hour`: a number in [`PRICE`], optional.
pub(crate) fn opt_price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::{Deserialize, de::Error};
    let v = f64::deserialize(d)?;
    match PRICE.check(v) {
        Some(message) => Err(D::Error::custom(message)),
        None => Ok(Some(v)),
    }
}

/// `capacity_skip_seconds`: whole seconds in [`CAPACITY_SKIP`].
pub(crate) fn capacity_skip<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &CAPACITY_SKIP).map(|v| v as u32)
}

/// A warm tier's `max_age`: whole seconds in [`WARM_AGE`].
pub(crate) fn warm_age<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    int_in(d, &WARM_AGE)
}

/// `checkin_timeout`: whole seconds in [`CHECKIN_TIMEOUT`].
pub(crate) fn checkin_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &CHECKIN_TIMEOUT).map(|v| v as u32)
}

/// `downscale_backoff`: whole seconds in [`DOWNSCALE_BACKOFF`].
pub(crate) fn downscale_backoff<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    int_in(d, &DOWNSCALE_BACKOFF)
}

/// `connection_timeout` and `api_call_timeout`: whole seconds in [`CALL_TIMEOUT`].
pub(crate) fn call_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &CALL_TIMEOUT).map(|v| v as u32)
}

/// Azure's `api_operation_timeout`: whole seconds in [`OPERATION_TIMEOUT`].
pub(crate) fn operation_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &OPERATION_TIMEOUT).map(|v| v as u32)
}

/// `api_concurrency`: a count in [`API_CONCURRENCY`].
pub(crate) fn api_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &API_CONCURRENCY).map(|v| v as u32)
}

/// `max_instances`: a count in [`INSTANCES`].
pub(crate) fn max_instances<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &INSTANCES).map(|v| v as u32)
}

/// `max_simultaneous_sessions_per_server`: a count in [`SESSIONS_PER_SERVER`].
pub(crate) fn sessions_per_server<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &SESSIONS_PER_SERVER).map(|v| v as u32)
}

/// `minimum_pool_standby_sessions` of a config: a count in [`STANDBY_SESSIONS`].
pub(crate) fn standby_sessions<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, &STANDBY_SESSIONS).map(|v| v as u32)
}

/// `target_immediate_service`: a share in [`SERVICE_TARGET`].
pub(crate) fn service_target<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::{Deserialize, de::Error};
    let v = f64::deserialize(d)?;
    match SERVICE_TARGET.check(v) {
        Some(message) => Err(D::Error::custom(message)),
        None => Ok(v),
    }
}

/// `*_failure_rate` and `never_checkin_rate`: a probability in [`PROBABILITY`].
pub(crate) fn probability<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::{Deserialize, de::Error};
    let v = f64::deserialize(d)?;
    match PROBABILITY.check(v) {
        Some(message) => Err(D::Error::custom(message)),
        None => Ok(v),
    }
}

/// `minimum_pool_standby_sessions` of a schedule: the same, optional.
pub(crate) fn opt_standby_sessions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    standby_sessions(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_range_and_the_value_briefly() {
        assert_eq!(
            DELAY.check(1e300).unwrap(),
            "must be between 0 and 604800 seconds (7 days), got 1e300"
        );
        assert_eq!(
            RATE.check(1e-300).unwrap(),
            "must be between 0.001 and 100000 calls per second, got 1e-300"
        );
        assert_eq!(
            CALL_TIMEOUT.check_int(0).unwrap(),
            "must be between 1 and 3600 seconds (1 hour), got 0"
        );
        assert_eq!(
            API_CONCURRENCY.check_int(u64::MAX.into()).unwrap(),
            "must be between 1 and 1024, got 18446744073709551615"
        );
        assert!(DELAY.check(f64::NAN).unwrap().ends_with("got NaN"));
        assert!(RATE.check(f64::INFINITY).unwrap().ends_with("got inf"));
        assert_eq!(DELAY.check(604_800.0), None);
        assert_eq!(RATE.check(0.001), None);
        assert_eq!(Num(f64::MAX).to_string(), "1.7976931348623157e308");
        assert_eq!(Num(5e-324).to_string(), "5e-324");
        assert_eq!(Num(0.5).to_string(), "0.5");
        assert_eq!(human(90 * 60), "90 minutes");
        assert_eq!(human(45), "45 seconds");
    }
}
