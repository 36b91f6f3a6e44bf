//! A flood of bad tokens must not lock out the good check-ins behind the same address (a
//! campus NAT, or a TLS proxy on this host, where every peer is 127.0.0.1): every token is
//! checked first — a signature check costs tens of microseconds and a token verified before is
//! remembered by its hash — and only a refusal spends its source's allowance. A source (an IPv4
//! address, or an IPv6 /64) whose tokens are refused more than [`BAD_TOKENS_PER_SECOND`] a
//! second (after a burst of [`BAD_TOKEN_BURST`]) gets `429` with `Retry-After` instead of `401`
//! for its bad tokens, until its allowance refills; its good tokens are answered as always.
//!
//! The table of sources is bounded: at most [`MAX_SOURCES`] are tracked apart (the rest share
//! one allowance) and sources whose allowance is full again are forgotten every
//! [`PRUNE_EVERY`]. The gauge `kasm_scale_guest_sources_tracked` shows its size.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
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

/// Sources tracked apart at most; past it, new sources share one allowance until a prune.
pub const MAX_SOURCES: usize = 10_000;

/// How often sources whose allowance has refilled are forgotten.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Marks an answer that refused a token without a `401` (Kasm's `Access Denied!` probe).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRefused;

/// Whom a refusal is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    /// An IPv4 address, or the first 64 bits of an IPv6 one (one subscriber's prefix).
    Addr(IpAddr),
    /// Every source past [`MAX_SOURCES`].
    Overflow,
}

/// The source an address counts as: IPv4 as it is (also when mapped into IPv6), IPv6 by /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The per-source allowance of refused tokens.
#[derive(Debug)]
pub(crate) struct BadTokens {
    limiter: DefaultKeyedRateLimiter<Source>,
    last_prune: Mutex<Instant>,
    prune_every: Duration,
}

impl BadTokens {
    pub fn new() -> Arc<Self> {
        Self::pruned_every(PRUNE_EVERY)
    }

    fn pruned_every(prune_every: Duration) -> Arc<Self> {
        let rate = NonZeroU32::new(BAD_TOKENS_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(BAD_TOKEN_BURST).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            last_prune: Mutex::new(Instant::now()),
            prune_every,
        })
    }

    /// Counts a refused token of `ip`: how long the source must wait when it is past its
    /// allowance.
    fn refused(&self, ip: IpAddr) -> Option<Duration> {
        self.prune_if_due();
        let key = if self.limiter.len() < MAX_SOURCES {
            Source::Addr(source_of(ip))
        } else {
            Source::Overflow
        };
        let checked = self.limiter.check_key(&key);
        metrics::gauge!("kasm_scale_guest_sources_tracked").set(self.limiter.len() as f64);
        let not_until = checked.err()?;
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .max(Duration::from_secs(1));
        tracing::debug!(source = %source_of(ip), wait_s = wait.as_secs_f64(), "source past its allowance of refused tokens");
        Some(wait)
    }

    /// Forgets the sources whose allowance is full again, once every [`PRUNE_EVERY`].
    fn prune_if_due(&self) {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < self.prune_every {
                return;
            }
            *last = Instant::now();
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many sources are tracked now (the table's size).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The middleware on the guest routes: the request is answered first; a refused token counts
/// against its source, and past the allowance the refusal becomes a `429`.
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
    let response = next.run(request).await;
    let refused = response.status() == StatusCode::UNAUTHORIZED
        || response.extensions().get::<TokenRefused>().is_some();
    let Some(ip) = source.filter(|_| refused) else {
        return response;
    };
    let Some(wait) = bad.refused(ip) else {
        return response;
    };
    let mut response = Failure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many refused tokens from this address; retry later",
    )
    .into_response();
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            source_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            source_of(ip("2001:db8:1:2::1")),
            source_of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            source_of(ip("2001:db8:1:2::1")),
            source_of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn the_table_of_sources_stays_bounded() {
        let bad = BadTokens::new();
        for i in 0..(3 * MAX_SOURCES as u128) {
            let ip = IpAddr::V6(Ipv6Addr::from_bits((0x2001_0db8_u128 << 96) | (i << 64)));
            bad.refused(ip);
        }
        assert!(bad.tracked() <= MAX_SOURCES + 1, "{}", bad.tracked());
    }

    #[test]
    fn sources_whose_allowance_refilled_are_forgotten() {
        let bad = BadTokens::pruned_every(Duration::ZERO);
        for i in 0..100u32 {
            bad.refused(IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 | i)));
        }
        assert_eq!(bad.tracked(), 100);
        // The allowance refills in BAD_TOKEN_BURST / BAD_TOKENS_PER_SECOND seconds.
        std::thread::sleep(Duration::from_secs_f64(
            f64::from(BAD_TOKEN_BURST) / f64::from(BAD_TOKENS_PER_SECOND) + 0.2,
        ));
        bad.refused("192.0.2.1".parse().unwrap());
        assert_eq!(bad.tracked(), 1, "only the newest source is left");
    }
}
