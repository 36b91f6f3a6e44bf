//! [`ApiLimits`]: how the controller paces its calls to one VM provider or LDAP directory, from
//! the `api_concurrency`, `api_rate_limit_per_second` and `api_call_timeout` fields (ours) that
//! every VM provider config and LDAP config has.

use std::time::Duration;

use super::bounds::{
    API_CONCURRENCY, CALL_TIMEOUT, MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND, OPERATION_TIMEOUT,
};
use super::{AzureVmConfig, LdapConfig, VmProviderConfig};

/// Calls in flight to one provider or directory when `api_concurrency` is not given.
pub const DEFAULT_API_CONCURRENCY: u32 = 8;

/// Seconds one call may take when `api_call_timeout` is not given.
pub const DEFAULT_API_CALL_TIMEOUT: u32 = 30;

/// Seconds one long-running Azure operation (a VM create or delete, followed to its end) may
/// take when `api_operation_timeout` is not given: 30 minutes.
pub const DEFAULT_API_OPERATION_TIMEOUT: u32 = 1800;

/// How the controller paces calls to one provider or directory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    /// Calls in flight at once (1 to 1024).
    pub concurrency: u32,
    /// At most this many calls per second (0.001 to 100000), or no limit.
    pub rate_limit_per_second: Option<f64>,
    /// How long one call may take before it fails as transient (1 s to 1 hour).
    pub call_timeout: Duration,
}

impl ApiLimits {
    /// The limits from the three fields as written. Values outside the validated ranges (a
    /// config built in code that skipped [`crate::config::validate`]) are clamped into them, so
    /// that the result is always usable: a rate that is NaN means no limit.
    pub(crate) fn from_fields(concurrency: u32, rate: Option<f64>, timeout: u32) -> ApiLimits {
        let (min_calls, max_calls) = API_CONCURRENCY.int_range();
        let (min_timeout, max_timeout) = CALL_TIMEOUT.int_range();
        ApiLimits {
            concurrency: u64::from(concurrency).clamp(min_calls, max_calls) as u32,
            rate_limit_per_second: rate
                .filter(|r| !r.is_nan())
                .map(|r| r.clamp(MIN_RATE_PER_SECOND, MAX_RATE_PER_SECOND)),
            call_timeout: Duration::from_secs(u64::from(timeout).clamp(min_timeout, max_timeout)),
        }
    }
}

impl Default for ApiLimits {
    /// 8 calls in flight, no rate limit, 30 s a call.
    fn default() -> Self {
        ApiLimits::from_fields(DEFAULT_API_CONCURRENCY, None, DEFAULT_API_CALL_TIMEOUT)
    }
}

impl VmProviderConfig {
    /// How the controller paces its calls to this provider (`api_concurrency`,
    /// `api_rate_limit_per_second`, `api_call_timeout`). Not to be confused with the memory
    /// provider's `rate_limit_per_second`, which is the simulated cloud's own throttling.
    pub fn api_limits(&self) -> ApiLimits {
        let (concurrency, rate, timeout) = self.api_fields();
        ApiLimits::from_fields(concurrency, rate, timeout)
    }

    /// `api_concurrency`, `api_rate_limit_per_second` and `api_call_timeout` as written.
    pub(crate) fn api_fields(&self) -> (u32, Option<f64>, u32) {
        match self {
            Self::Aws(c) => (
                c.api_concurrency,
                c.api_rate_limit_per_second,
                c.api_call_timeout,
            ),
            Self::Azure(c) => (
                c.api_concurrency,
                c.api_rate_limit_per_second,
                c.api_call_timeout,
            ),
            Self::Memory(c) => (
                c.api_concurrency,
                c.api_rate_limit_per_second,
                c.api_call_timeout,
            ),
        }
    }
}

impl AzureVmConfig {
    /// How long one long-running operation may take (`api_operation_timeout`): a VM create
    /// (NIC, VM, disk tags) or delete followed to its end. A value outside the validated range
    /// (a config built in code) is clamped into it.
    pub fn operation_timeout(&self) -> Duration {
        let (min, max) = OPERATION_TIMEOUT.int_range();
        Duration::from_secs(u64::from(self.api_operation_timeout).clamp(min, max))
    }
}

impl LdapConfig {
    /// How the controller paces its calls to this directory (`api_concurrency`,
    /// `api_rate_limit_per_second`, `api_call_timeout`; the last is separate from
    /// `connection_timeout`).
    pub fn api_limits(&self) -> ApiLimits {
        ApiLimits::from_fields(
            self.api_concurrency,
            self.api_rate_limit_per_second,
            self.api_call_timeout,
        )
    }
}

pub(crate) fn default_concurrency() -> u32 {
    DEFAULT_API_CONCURRENCY
}

pub(crate) fn is_default_concurrency(v: &u32) -> bool {
    *v == DEFAULT_API_CONCURRENCY
}

pub(crate) fn default_call_timeout() -> u32 {
    DEFAULT_API_CALL_TIMEOUT
}

pub(crate) fn is_default_call_timeout(v: &u32) -> bool {
    *v == DEFAULT_API_CALL_TIMEOUT
}

pub(crate) fn default_operation_timeout() -> u32 {
    DEFAULT_API_OPERATION_TIMEOUT
}

pub(crate) fn is_default_operation_timeout(v: &u32) -> bool {
    *v == DEFAULT_API_OPERATION_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_built_in_code_are_clamped() {
        assert_eq!(
            ApiLimits::from_fields(0, Some(1e-300), 0),
            ApiLimits {
                concurrency: 1,
                rate_limit_per_second: Some(0.001),
                call_timeout: Duration::from_secs(1),
            }
        );
        assert_eq!(
            ApiLimits::from_fields(u32::MAX, Some(f64::INFINITY), u32::MAX),
            ApiLimits {
                concurrency: 1024,
                rate_limit_per_second: Some(100_000.0),
                call_timeout: Duration::from_secs(3600),
            }
        );
        assert_eq!(
            ApiLimits::from_fields(8, Some(f64::NAN), 30),
            ApiLimits::default()
        );
        assert_eq!(
            ApiLimits::default(),
            ApiLimits {
                concurrency: 8,
                rate_limit_per_second: None,
                call_timeout: Duration::from_secs(30),
            }
        );
    }
}
