//! [`ApiLimits`] *(ours)*: how the controller paces and bounds its calls to one provider or
//! directory, given as the `api` table of a VM provider or LDAP config.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Calls in flight at most, by default.
pub const DEFAULT_API_CONCURRENCY: u32 = 8;
/// Seconds one call may take, by default.
pub const DEFAULT_API_CALL_TIMEOUT: u32 = 30;
/// The largest `concurrency`.
pub const MAX_API_CONCURRENCY: u32 = 1024;
/// The range of `rate_limit_per_second`.
pub const API_RATE_RANGE: (f64, f64) = (0.001, 100_000.0);
/// The largest `call_timeout`, in seconds.
pub const MAX_API_CALL_TIMEOUT: u32 = 3600;

/// How the controller paces calls to one provider or directory:
/// `api = { concurrency = 4, rate_limit_per_second = 5, call_timeout = 30 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimits {
    /// Calls in flight at most (1 to 1024; default 8).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Calls per second at most (0.001 to 100,000; default unpaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<f64>,
    /// Seconds one call may take before it fails as transient and is retried (1 to 3600;
    /// default 30).
    #[serde(default = "default_call_timeout")]
    pub call_timeout: u32,
}

fn default_concurrency() -> u32 {
    DEFAULT_API_CONCURRENCY
}

fn default_call_timeout() -> u32 {
    DEFAULT_API_CALL_TIMEOUT
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_API_CONCURRENCY,
            rate_limit_per_second: None,
            call_timeout: DEFAULT_API_CALL_TIMEOUT,
        }
    }
}

impl ApiLimits {
    /// Whether these are the defaults (then they are not written out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// `call_timeout` as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.call_timeout))
    }

    /// Every problem, as (field, reason).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=MAX_API_CONCURRENCY).contains(&self.concurrency) {
            out.push((
                "concurrency",
                format!(
                    "must be 1 to {MAX_API_CONCURRENCY}, got {}",
                    self.concurrency
                ),
            ));
        }
        if let Some(r) = self.rate_limit_per_second
            && !(r.is_finite() && (API_RATE_RANGE.0..=API_RATE_RANGE.1).contains(&r))
        {
            out.push((
                "rate_limit_per_second",
                format!(
                    "must be {} to {} calls per second, got {}",
                    API_RATE_RANGE.0,
                    API_RATE_RANGE.1,
                    readable(r)
                ),
            ));
        }
        if !(1..=MAX_API_CALL_TIMEOUT).contains(&self.call_timeout) {
            out.push((
                "call_timeout",
                format!(
                    "must be 1 to {MAX_API_CALL_TIMEOUT} seconds, got {}",
                    self.call_timeout
                ),
            ));
        }
        out
    }
}

/// A number as a person reads it: very small and very large ones in exponent form (`1e-300`).
fn readable(x: f64) -> String {
    if x != 0.0 && x.is_finite() && (x.abs() < 1e-4 || x.abs() >= 1e12) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}
