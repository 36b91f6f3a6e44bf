//! The in-memory cloud ([`MemoryCloud`]) and directory ([`MemoryDirectory`]): real
//! implementations of the backend traits that keep everything in this process, with the boot
//! latency, check-in delay, failures, throttling and capacity limits of a real cloud, stop and
//! start (with a start latency and failure rates), capacity and outages per offering, and the
//! VM time per offering that a simulation prices ([`MemoryCloud::usage`]). Every
//! random choice comes from a seeded generator, and time from tokio's clock, so runs on tokio's
//! paused clock are deterministic.

mod checkin;
mod cloud;
mod directory;
mod power;
mod store;
mod usage;

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checkin::{deliver_checkins, token_in};
pub use cloud::{Checkin, MemoryCloud, STOP_LATENCY};
pub use directory::MemoryDirectory;
pub use store::MemoryStore;
pub use usage::{Cost, OfferingUsage, Usage};

use crate::config::{Distribution, MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND};

/// The longest draw or wait the in-memory backends use: a year. A config built in code that
/// skipped validation (e.g. `boot_latency = {fixed = 1e300}`) waits this long instead of
/// overflowing a `Duration` or an `Instant`.
pub const LONGEST_WAIT: Duration = Duration::from_secs(366 * 86_400);

/// `seconds` as a duration: NaN and negative as zero, anything longer than [`LONGEST_WAIT`]
/// (infinity included) as [`LONGEST_WAIT`]. Never panics.
pub(crate) fn clamped_secs(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).map_or(LONGEST_WAIT, |d| d.min(LONGEST_WAIT))
}

/// Draws a duration from `d`: negative and NaN draws count as zero, draws beyond
/// [`LONGEST_WAIT`] as [`LONGEST_WAIT`].
pub fn sample(d: &Distribution, rng: &mut ChaCha8Rng) -> Duration {
    let seconds = match *d {
        Distribution::Fixed(s) => s,
        Distribution::Uniform([lo, hi]) => {
            // Within [0, LONGEST_WAIT] first: a range wider than an f64 can span panics.
            let within = |v: f64| {
                if v.is_nan() {
                    0.0
                } else {
                    v.clamp(0.0, LONGEST_WAIT.as_secs_f64())
                }
            };
            let (lo, hi) = (within(lo), within(hi));
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            }
        }
        Distribution::Normal { mean, std_dev } => {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            mean + std_dev * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    };
    clamped_secs(seconds)
}

/// A token bucket: `rate` calls per second, bursts of up to `max(rate, 1)`. A rate outside the
/// configuration's range (built in code) is clamped into it: NaN, zero and negative rates to the
/// lowest, 0.001 a second.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            MIN_RATE_PER_SECOND
        } else {
            rate.clamp(MIN_RATE_PER_SECOND, MAX_RATE_PER_SECOND)
        };
        Self {
            rate,
            tokens: rate.max(1.0),
            at: tokio::time::Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&mut self) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let burst = self.rate.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(clamped_secs((1.0 - self.tokens) / self.rate))
        }
    }
}
