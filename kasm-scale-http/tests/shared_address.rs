//! Guests behind one address (a campus NAT, or the TLS proxy on this host, where every peer is
//! 127.0.0.1): a broken guest, or an attacker, sending junk tokens from that address never gets
//! a good guest's check-in refused; the table of sources stays bounded when very many
//! addresses each send a bad token.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::net::{call, gauge, post_json, start};
use kasm_scale_http::ConnectionLimits;
use tower::ServiceExt;

const SECONDS: u64 = 10;
const JUNK_PER_SECOND: u64 = 200;
const GOOD_PER_SECOND: u64 = 20;

/// A junk token: garbage, or a real token with its signature changed.
fn junk(i: u64, good: &str) -> String {
    if i.is_multiple_of(2) {
        format!("junk-{i}")
    } else {
        let mut t = good.to_owned();
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        t.pop();
        t.push(last);
        t
    }
}

fn check_in(token: &str) -> String {
    post_json(
        &format!("/api/set_server_status?token={token}"),
        r#"{"status": "running", "status_message": "ready"}"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_tokens_from_the_guests_own_address_never_refuse_a_good_check_in() {
    let service = start(ConnectionLimits::default()).await;
    let addr = service.addr;
    let deadline = Instant::now() + Duration::from_secs(20);
    let tokens = loop {
        let tokens: Vec<String> = service.world.tokens().into_iter().map(|t| t.1).collect();
        if tokens.len() >= 2 {
            break tokens;
        }
        assert!(Instant::now() < deadline, "the servers were not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Both from 127.0.0.1, at their own rates, for SECONDS.
    let junk_sender = {
        let good = tokens[0].clone();
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval(Duration::from_micros(1_000_000 / JUNK_PER_SECOND));
            let mut calls = Vec::new();
            for i in 0..SECONDS * JUNK_PER_SECOND {
                every.tick().await;
                let request = check_in(&junk(i, &good));
                calls.push(tokio::spawn(async move { call(addr, &request).await }));
            }
            let mut statuses = Vec::new();
            for c in calls {
                statuses.push(c.await.unwrap().0);
            }
            statuses
        })
    };
    let good_sender = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / GOOD_PER_SECOND));
        let mut calls = Vec::new();
        for i in 0..SECONDS * GOOD_PER_SECOND {
            every.tick().await;
            let request = check_in(&tokens[(i % 2) as usize]);
            calls.push(tokio::spawn(async move { call(addr, &request).await }));
        }
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap());
        }
        answers
    });
    let junk = junk_sender.await.unwrap();
    let good = good_sender.await.unwrap();

    let refused: Vec<_> = good
        .iter()
        .filter(|(status, _, _)| *status != 200)
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} good check-ins refused, first: {:?}",
        refused.len(),
        good.len(),
        refused.first()
    );
    let slowest = good
        .iter()
        .map(|(_, _, took)| *took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "figures: {} of {} good check-ins answered 200, the slowest in {slowest:?}; {} of {} junk tokens answered 429",
        good.len() - refused.len(),
        good.len(),
        junk.iter().filter(|s| **s == 429).count(),
        junk.len()
    );
    assert!(junk.iter().all(|s| *s == 401 || *s == 429), "{junk:?}");
    let limited = junk.iter().filter(|s| **s == 429).count();
    assert!(
        limited > junk.len() / 2,
        "the junk is limited: {limited} of {} answered 429",
        junk.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_ipv6_sources_keep_the_table_of_sources_bounded() {
    let w = common::world().await;
    for i in 0..100_000u128 {
        // Each in its own /64.
        let ip = Ipv6Addr::from_bits((0x2001_0db8_u128 << 96) | (i << 64) | 1);
        let mut request = Request::post("/api/set_server_status?token=junk")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"status": "running"}"#))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(IpAddr::V6(ip), 40_000)));
        let response = w.app.clone().oneshot(request).await.unwrap();
        assert!(
            matches!(
                response.status(),
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{}",
            response.status()
        );
    }
    let service = start(ConnectionLimits::default()).await;
    let tracked = gauge(service.addr, "kasm_scale_guest_sources_tracked").await;
    assert!(
        tracked <= (kasm_scale_http::MAX_SOURCES + 1) as f64,
        "{tracked} sources tracked"
    );
    assert!(tracked >= 1.0);
    let (status, _, _) = call(service.addr, &common::net::get("/healthz", None)).await;
    assert_eq!(status, 200);
}
