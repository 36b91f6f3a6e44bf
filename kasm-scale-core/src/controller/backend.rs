//! The one retry layer: every call the controller makes to a provider or a directory runs here,
//! within that backend's concurrency and rate limits, bounded in time, and retried with jittered
//! exponential backoff when its error is retryable. Backends make one attempt per call (see the
//! `# Contract` of [`VmProvider`](crate::traits::VmProvider)), so retries never nest.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::tasks::Randomness;
use crate::config::{MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND};
use crate::traits::BackendError;

/// Retry policy for retryable backend errors (rate limits, capacity, transient faults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time, with ±50% jitter.
    pub base: Duration,
    /// Longest wait (also the longest `retry_after` a backend may ask for).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

/// How calls to one provider (or directory) are paced and bounded.
#[derive(Debug)]
pub(crate) struct Guard {
    /// The provider or directory name (a metrics label).
    name: String,
    concurrency: Semaphore,
    interval: Duration,
    next: Mutex<Instant>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Guard {
    /// `concurrency` calls in flight, at most `calls_per_second` (none: unpaced), each bounded
    /// by `timeout`.
    pub(crate) fn new(
        name: &str,
        concurrency: usize,
        calls_per_second: Option<f64>,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Self {
        // A rate outside the configuration's bounds (given in code) is clamped into them: a tiny
        // rate paces slowly instead of overflowing, a huge one barely paces.
        let interval = calls_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| r.clamp(MIN_RATE_PER_SECOND, MAX_RATE_PER_SECOND))
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
        Self {
            name: name.to_owned(),
            concurrency: Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS)),
            interval,
            next: Mutex::new(Instant::now()),
            timeout: timeout.max(Duration::from_millis(1)),
            retry,
        }
    }

    /// The time one attempt may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt of `call` within the limits; past the timeout it fails as transient.
    async fn once<T>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.concurrency.acquire().await.ok();
        if !self.interval.is_zero() {
            let at = {
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                let at = (*next).max(Instant::now());
                *next = at + self.interval;
                at
            };
            tokio::time::sleep_until(at).await;
        }
        let began = Instant::now();
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(BackendError::Transient(format!(
                "no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
        };
        metrics::histogram!("kasm_scale_backend_call_seconds", "backend" => self.name.clone())
            .record(began.elapsed().as_secs_f64());
        if let Err(e) = &answer {
            metrics::counter!(
                "kasm_scale_backend_errors_total",
                "backend" => self.name.clone(),
                "class" => e.class()
            )
            .increment(1);
        }
        answer
    }

    /// Calls `f` within the limits, retrying retryable errors after the backend's `retry_after`
    /// (capped by the policy) or a jittered exponential wait.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        rng: &Randomness,
        mut f: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let policy = self.retry;
        let mut attempt = 1;
        loop {
            match self.once(f()).await {
                Err(e) if e.is_retryable() && attempt < policy.attempts => {
                    let exp = policy
                        .base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(policy.cap);
                    let jitter: f64 = rng.with(|r| r.random_range(0.5..1.5));
                    let wait = e.retry_after().map_or_else(
                        || Duration::try_from_secs_f64(exp.as_secs_f64() * jitter).unwrap_or(exp),
                        |w| w.min(policy.cap),
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rates_outside_the_bounds_are_clamped_not_dropped() {
        let rng = Randomness::new(Some(1));
        let ok = || async { Ok::<(), BackendError>(()) };
        // 1e-300 calls per second paces at the slowest rate (one call per 1000 s).
        let slow = Guard::new(
            "slow",
            1,
            Some(1e-300),
            Duration::from_secs(30),
            RetryPolicy::default(),
        );
        let began = Instant::now();
        for _ in 0..2 {
            slow.call(&rng, ok).await.unwrap();
        }
        assert_eq!(began.elapsed(), Duration::from_secs(1000));
        // A NaN or negative rate means no pacing.
        let free = Guard::new(
            "free",
            1,
            Some(f64::NAN),
            Duration::from_secs(30),
            RetryPolicy::default(),
        );
        let began = Instant::now();
        for _ in 0..3 {
            free.call(&rng, ok).await.unwrap();
        }
        assert_eq!(began.elapsed(), Duration::ZERO);
    }
}
