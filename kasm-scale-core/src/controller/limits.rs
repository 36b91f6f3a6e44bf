//! Per-provider concurrency and rate limits, and retries with jittered exponential backoff.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::traits::BackendError;

/// How calls to one provider (or directory) are paced.
#[derive(Debug)]
pub(crate) struct Limits {
    concurrency: Semaphore,
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limits {
    pub(crate) fn new(concurrency: usize, calls_per_second: Option<f64>) -> Self {
        let interval = calls_per_second
            .filter(|r| *r > 0.0)
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
        Self {
            concurrency: Semaphore::new(concurrency.max(1)),
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Runs `call` within the limits.
    pub(crate) async fn run<T>(&self, call: impl Future<Output = T>) -> T {
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
        call.await
    }
}

/// Retry policy for retryable backend errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time, with ±50% jitter.
    pub base: Duration,
    /// Longest wait.
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

/// Calls `f` within `limits`, retrying retryable errors after the backend's `retry_after` or a
/// jittered exponential wait drawn from `rng`.
pub(crate) async fn retry<T, F, Fut>(
    limits: &Limits,
    policy: RetryPolicy,
    rng: &Mutex<ChaCha8Rng>,
    mut f: F,
) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let mut attempt = 1;
    loop {
        match limits.run(f()).await {
            Err(e) if e.is_retryable() && attempt < policy.attempts => {
                let exp = policy
                    .base
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(policy.cap);
                let jitter: f64 = rng
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .random_range(0.5..1.5);
                let wait = e.retry_after().unwrap_or_else(|| exp.mul_f64(jitter));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
