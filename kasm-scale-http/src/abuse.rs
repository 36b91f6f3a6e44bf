//! A flood of bad tokens must not slow the good check-ins: a source (IP address) whose requests
//! to the guest routes are refused for their token more than [`BAD_TOKENS_PER_SECOND`] a second
//! (after a burst of [`BAD_TOKEN_BURST`]) is answered `429` with `Retry-After`, before its token
//! is even checked, until its allowance refills. Sources that send good tokens are never
//! limited (many guests behind one NAT address check in at any rate), and the token checks a
//! blocked source would have cost are not spent.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::reply::Failure;

/// Refused tokens a source may send a second, on average.
pub const BAD_TOKENS_PER_SECOND: u32 = 10;

/// Refused tokens a source may send at once before the rate applies.
pub const BAD_TOKEN_BURST: u32 = 30;

/// Sources remembered as blocked at most (the oldest blocks are forgotten first).
const MAX_BLOCKED: usize = 100_000;

/// Marks an answer that refused a token without a `401` (Kasm's `Access Denied!` probe).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRefused;

/// The per-source allowance of refused tokens.
#[derive(Debug)]
pub(crate) struct BadTokens {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl BadTokens {
    pub fn new() -> Arc<Self> {
        let rate = NonZeroU32::new(BAD_TOKENS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(BAD_TOKEN_BURST).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            blocked: Mutex::new(HashMap::new()),
        })
    }

    /// How long `ip` must still wait, if it is blocked.
    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&ip);
            return None;
        }
        Some(until - now)
    }

    /// Counts a refused token of `ip`; past its allowance, blocks it until it refills.
    fn refused(&self, ip: IpAddr) {
        if let Err(not_until) = self.limiter.check_key(&ip) {
            let wait = not_until
                .wait_time_from(DefaultClock::default().now())
                .max(Duration::from_secs(1));
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.len() >= MAX_BLOCKED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                self.limiter.retain_recent();
            }
            if blocked.len() < MAX_BLOCKED {
                tracing::warn!(source = %ip, wait_s = wait.as_secs_f64(), "source blocked: too many refused tokens");
                blocked.insert(ip, Instant::now() + wait);
            }
        }
    }
}

/// The middleware on the guest routes.
pub(crate) async fn guard(
    State(bad): State<Arc<BadTokens>>,
    request: Request,
    next: Next,
) -> Response {
    // Without the peer's address (a router driven in-process), there is no source to limit.
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = source
        && let Some(wait) = bad.blocked_for(ip)
    {
        let mut response = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many refused tokens from this address; retry later",
        )
        .into_response();
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next.run(request).await;
    let refused = response.status() == StatusCode::UNAUTHORIZED
        || response.extensions().get::<TokenRefused>().is_some();
    if let Some(ip) = source
        && refused
    {
        bad.refused(ip);
    }
    response
}
