//! The in-memory cloud ([`MemoryCloud`]) and directory ([`MemoryDirectory`]): real
//! implementations of the backend traits that keep everything in this process, with the boot
//! latency, check-in delay, failures, throttling and capacity limits of a real cloud. Every
//! random choice comes from a seeded generator, and time from tokio's clock, so runs on tokio's
//! paused clock are deterministic.

mod checkin;
mod cloud;
mod directory;

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checkin::{deliver_checkins, token_in};
pub use cloud::{Checkin, MemoryCloud};
pub use directory::MemoryDirectory;

use crate::config::Distribution;

/// Draws a duration from `d` (negative draws count as zero).
pub fn sample(d: &Distribution, rng: &mut ChaCha8Rng) -> Duration {
    let seconds = match *d {
        Distribution::Fixed(s) => s,
        Distribution::Uniform([lo, hi]) if hi > lo => rng.random_range(lo..hi),
        Distribution::Uniform([lo, _]) => lo,
        Distribution::Normal { mean, std_dev } => {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            mean + std_dev * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    };
    Duration::from_secs_f64(if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    })
}

/// A token bucket: `rate` calls per second, bursts of up to `max(rate, 1)`.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64) -> Self {
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
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}
