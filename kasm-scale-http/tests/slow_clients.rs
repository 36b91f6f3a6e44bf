//! The service under a slow-client attack, over real sockets on loopback: thousands of
//! connections that send half a request line and then nothing must not stop the health probe,
//! the guests' check-ins or the broker; the server closes them itself; past the connection cap
//! a connection is closed at once, and an idle keep-alive connection is closed after its timeout.

mod common;

use std::time::{Duration, Instant};

use common::net::{call, closed_within, gauge, get, post_json, start};
use kasm_scale_http::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PARTIAL: usize = 2000;

/// The tests read the process-wide connection gauge: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_half_requests_neither_stop_the_service_nor_stay_open() {
    let _serial = SERIAL.lock().await;
    let limits = ConnectionLimits::default();
    let service = start(limits).await;
    let addr = service.addr;
    // A ready server to check in (the service ticks by itself).
    let deadline = Instant::now() + Duration::from_secs(20);
    let token = loop {
        if let Some((_, token)) = service.world.tokens().into_iter().next() {
            break token;
        }
        assert!(Instant::now() < deadline, "no server was created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The attack: half a request line each, then nothing.
    let opened = Instant::now();
    let mut partial = Vec::with_capacity(PARTIAL);
    for _ in 0..PARTIAL {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /healthz HT").await.unwrap();
        partial.push(stream);
    }
    let open = gauge(addr, "kasm_scale_connections").await;
    assert!(
        open >= PARTIAL as f64,
        "the gauge counts the attack's connections: {open}"
    );

    // Meanwhile the probe, a guest and the broker are answered, each within 2 s.
    let (status, body, took) = call(addr, &get("/healthz", None)).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(2), "health probe took {took:?}");
    eprintln!("figures: the health probe answered in {took:?} under {PARTIAL} half requests");
    let (status, body, took) = call(
        addr,
        &post_json(
            &format!("/api/set_server_status?token={token}"),
            r#"{"status": "running"}"#,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(2), "check-in took {took:?}");
    eprintln!("figures: the check-in answered in {took:?} under {PARTIAL} half requests");
    let (status, body, took) = call(addr, &get("/api/v1/pools", Some(common::NEW_KEY))).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(2), "broker call took {took:?}");

    eprintln!("figures: the broker call answered in {took:?} under {PARTIAL} half requests");
    // The server closes every partial connection once the header-read timeout is over.
    let limit = limits.header_read_timeout + Duration::from_secs(3);
    for (i, stream) in partial.iter_mut().enumerate() {
        let left = limit.saturating_sub(opened.elapsed());
        assert!(
            closed_within(stream, left).await,
            "partial connection {i} still open {:?} after it was opened",
            opened.elapsed()
        );
    }
    eprintln!(
        "figures: all {PARTIAL} half requests closed by the server {:?} after they were opened",
        opened.elapsed()
    );
    drop(partial);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // The scrape itself is one connection.
        let open = gauge(addr, "kasm_scale_connections").await;
        if open <= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_connection_is_closed_at_once_and_idle_ones_time_out() {
    let limits = ConnectionLimits {
        max_connections: 20,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(2),
    };
    let _serial = SERIAL.lock().await;
    let service = start(limits).await;
    let addr = service.addr;
    let mut held = Vec::new();
    for _ in 0..limits.max_connections {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the accept loop take them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut over, Duration::from_millis(500)).await,
        "the connection past the cap is closed at once"
    );
    // Connections that send nothing are idle: closed after the idle timeout (well before the
    // 30-s header-read timeout), which frees the slots.
    let started = Instant::now();
    for stream in &mut held {
        assert!(
            closed_within(stream, limits.idle_timeout + Duration::from_secs(3)).await,
            "an idle connection is closed"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    let (status, _, _) = call(addr, &get("/healthz", None)).await;
    assert_eq!(status, 200, "a slot is free again");

    // A kept-alive connection that answered one request and then sits idle is closed too.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: kasm\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, limits.idle_timeout + Duration::from_secs(3)).await);
}
