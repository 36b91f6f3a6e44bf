//! The one retry layer's engine: [`Guard`] runs one backend's calls within its concurrency and
//! rate limits, bounded in time, and retries them with jittered exponential backoff when their
//! error is retryable. The controller never calls a guard itself: the builder wraps every
//! provider, directory and store once in a [`Guarded`](super::guarded::Guarded) decorator,
//! which runs each of its calls here. Backends make one attempt per call (see the `# Contract`
//! of [`VmProvider`](crate::traits::VmProvider)), so retries never nest.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::tasks::Randomness;
use crate::config::{MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND};
use crate::traits::{BackendError, StoreError};
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

/// What a guard needs to know of a backend's error: whether to retry it, how long the backend
/// asked to wait, its class for metrics, and how to say that a call took too long.
pub(crate) trait CallError: Sized {
    /// A call without an answer within `limit` (`what` names the call).
    fn no_answer(what: &str, limit: Duration) -> Self;
    /// A long-running operation that did not end within `limit`.
    fn unfinished(what: &str, limit: Duration) -> Self;
    /// Whether trying again later may succeed.
    fn retryable(&self) -> bool;
    /// Whether it says the cloud is short of capacity for what was asked (ours).
    fn is_capacity(&self) -> bool {
        false
    }
    /// The wait the backend asked for, if any.
    fn wait_asked(&self) -> Option<Duration>;
    /// The class as a short name (a metrics label).
    fn class_name(&self) -> &'static str;
}

impl CallError for BackendError {
    fn no_answer(_: &str, limit: Duration) -> Self {
        BackendError::Transient(format!("no answer within {} s", limit.as_secs_f64()))
    }

    fn unfinished(_: &str, limit: Duration) -> Self {
        BackendError::Transient(format!(
            "the operation did not end within {} s",
            limit.as_secs_f64()
        ))
    }

    fn retryable(&self) -> bool {
        self.is_retryable()
    }

    fn is_capacity(&self) -> bool {
        matches!(self, BackendError::Capacity(_))
    }

    fn wait_asked(&self) -> Option<Duration> {
        self.retry_after()
    }

    fn class_name(&self) -> &'static str {
        self.class()
    }
}

impl CallError for StoreError {
    fn no_answer(what: &str, limit: Duration) -> Self {
        StoreError::Unavailable(format!("{what}: no answer within {} s", limit.as_secs()))
    }

    fn unfinished(what: &str, limit: Duration) -> Self {
        Self::no_answer(what, limit)
    }

    /// A store that cannot be reached now; what it holds, a lock or a fence do not pass.
    fn retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    fn wait_asked(&self) -> Option<Duration> {
        None
    }

    fn class_name(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Locked(_) => "locked",
            StoreError::Fenced(_) => "fenced",
        }
    }
}

/// How calls to one provider, directory or store are paced and bounded.
pub(crate) struct Guard {
    /// The backend's name (a metrics label).
    name: String,
    concurrency: Semaphore,
    interval: Duration,
    next: Mutex<Instant>,
    timeout: Duration,
    retry: RetryPolicy,
    /// The controller's randomness (backoff jitter), shared so that a seeded run repeats.
    rng: Arc<Randomness>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// `concurrency` calls in flight, at most `calls_per_second` (none: unpaced), each bounded
    /// by `timeout`, retried by `retry` with jitter drawn from `rng`.
    pub(crate) fn new(
        name: &str,
        concurrency: usize,
        calls_per_second: Option<f64>,
        timeout: Duration,
        retry: RetryPolicy,
        rng: Arc<Randomness>,
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
            rng,
        }
    }

    /// The backend's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The time one attempt may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt of `call` within the limits. Past the single-call timeout, a call without
    /// `budget` fails as transient. A call with a `budget` follows a long-running operation of
    /// the cloud (see [`Capabilities::operation_timeout`]): past the single-call timeout it only
    /// waits on the cloud, so it gives its concurrency slot back and goes on for `budget` more
    /// (the provider bounds its own wait by `budget`; the call timeout is the margin for its
    /// last request).
    ///
    /// [`Capabilities::operation_timeout`]: crate::traits::Capabilities::operation_timeout
    async fn once<T, E: CallError>(
        &self,
        what: &str,
        budget: Option<Duration>,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.concurrency.acquire().await.ok();
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
        let mut call = std::pin::pin!(call);
        let answer = match (tokio::time::timeout(self.timeout, &mut call).await, budget) {
            (Ok(answer), _) => answer,
            (Err(_), None) => Err(E::no_answer(what, self.timeout)),
            (Err(_), Some(budget)) => {
                drop(permit);
                tracing::debug!(
                    backend = %self.name,
                    budget_s = budget.as_secs_f64(),
                    "a long-running operation outlived one call: its slot is free while it waits"
                );
                match tokio::time::timeout(budget, call).await {
                    Ok(answer) => answer,
                    Err(_) => Err(E::unfinished(what, self.timeout + budget)),
                }
            }
        };
        metrics::histogram!("kasm_scale_backend_call_seconds", "backend" => self.name.clone())
            .record(began.elapsed().as_secs_f64());
        if let Err(e) = &answer {
            metrics::counter!(
                "kasm_scale_backend_errors_total",
                "backend" => self.name.clone(),
                "class" => e.class_name()
            )
            .increment(1);
        }
        answer
    }

    /// Calls `f` (the call `what`) within the limits, retrying retryable errors after the
    /// backend's `retry_after` (capped by the policy) or a jittered exponential wait.
    pub(crate) async fn call<T, E, F, Fut>(&self, what: &str, f: F) -> Result<T, E>
    where
        E: CallError,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.attempts(what, None, true, f).await
    }

    /// [`Guard::call`] for a call that may follow a long-running operation of the cloud: each
    /// attempt is bounded by `budget` (the provider's
    /// [`Capabilities::operation_timeout`](crate::traits::Capabilities::operation_timeout)) plus
    /// one call timeout, not by the call timeout alone; `None` is [`Guard::call`].
    pub(crate) async fn operation<T, E, F, Fut>(
        &self,
        what: &str,
        budget: Option<Duration>,
        f: F,
    ) -> Result<T, E>
    where
        E: CallError,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.attempts(what, budget, true, f).await
    }

    /// (ours) [`Guard::operation`] for a call that places a VM (a create, a start of a stopped
    /// one): a capacity error is not retried on the same offering but returned at once, so the
    /// caller moves to the next offering in the same tick (`offerings.rs`); when every offering
    /// is short, the config's failure backoff spaces the next tries.
    pub(crate) async fn placement<T, E, F, Fut>(
        &self,
        what: &str,
        budget: Option<Duration>,
        f: F,
    ) -> Result<T, E>
    where
        E: CallError,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.attempts(what, budget, false, f).await
    }

    async fn attempts<T, E, F, Fut>(
        &self,
        what: &str,
        budget: Option<Duration>,
        retry_capacity: bool,
        mut f: F,
    ) -> Result<T, E>
    where
        E: CallError,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = self.retry;
        let mut attempt = 1;
        loop {
            match self.once(what, budget, f()).await {
                Err(e)
                    if e.retryable()
                        && (retry_capacity || !e.is_capacity())
                        && attempt < policy.attempts =>
                {
                    let exp = policy
                        .base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(policy.cap);
                    let jitter: f64 = self.rng.with(|r| r.random_range(0.5..1.5));
                    let wait = e.wait_asked().map_or_else(
                        || Duration::try_from_secs_f64(exp.as_secs_f64() * jitter).unwrap_or(exp),
                        |w| w.min(policy.cap),
                    );
                    tracing::debug!(
                        backend = %self.name,
                        call = what,
                        attempt,
                        class = e.class_name(),
                        wait_ms = wait.as_millis() as u64,
                        "retrying"
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
        let rng = Arc::new(Randomness::new(Some(1)));
        let ok = || async { Ok::<(), BackendError>(()) };
        // 1e-300 calls per second paces at the slowest rate (one call per 1000 s).
        let slow = Guard::new(
            "slow",
            1,
            Some(1e-300),
            Duration::from_secs(30),
            RetryPolicy::default(),
            rng.clone(),
        );
        let began = Instant::now();
        for _ in 0..2 {
            slow.call("get", ok).await.unwrap();
        }
        assert_eq!(began.elapsed(), Duration::from_secs(1000));
        // A NaN or negative rate means no pacing.
        let free = Guard::new(
            "free",
            1,
            Some(f64::NAN),
            Duration::from_secs(30),
            RetryPolicy::default(),
            rng.clone(),
        );
        let began = Instant::now();
        for _ in 0..3 {
            free.call("get", ok).await.unwrap();
        }
        assert_eq!(began.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_outlives_the_call_timeout_within_its_budget_and_frees_its_slot() {
        let rng = Arc::new(Randomness::new(Some(1)));
        let guard = Guard::new(
            "arm",
            1,
            None,
            Duration::from_secs(30),
            RetryPolicy::default(),
            rng.clone(),
        );
        let minutes = |m: u64| async move {
            tokio::time::sleep(Duration::from_secs(60 * m)).await;
            Ok::<u64, BackendError>(m)
        };
        // A plain call is cut at the call timeout, each of its five attempts.
        let began = Instant::now();
        let err = guard.call("create", || minutes(3)).await.unwrap_err();
        assert!(err.to_string().contains("no answer within 30 s"), "{err}");
        assert!(began.elapsed() >= Duration::from_secs(150));
        // An operation of 3 minutes with a 30-minute budget is one attempt.
        let began = Instant::now();
        let budget = Some(Duration::from_secs(1800));
        assert_eq!(
            guard
                .operation("create", budget, || minutes(3))
                .await
                .unwrap(),
            3
        );
        assert_eq!(began.elapsed(), Duration::from_secs(180));
        // One past its budget (and the call timeout's margin) fails as transient.
        let err = guard
            .operation("create", Some(Duration::from_secs(60)), || minutes(2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not end within 90 s"), "{err}");
        // With one slot, two operations overlap once each outlived the call timeout.
        let began = Instant::now();
        let (a, b) = tokio::join!(
            guard.operation("create", budget, || minutes(3)),
            guard.operation("create", budget, || minutes(3)),
        );
        assert_eq!((a.unwrap(), b.unwrap()), (3, 3));
        assert_eq!(began.elapsed(), Duration::from_secs(210));
    }
}
