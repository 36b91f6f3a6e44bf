//! The service on a real socket on loopback, and plain HTTP/1.1 calls to it (as the guests'
//! `curl` and the attackers send them).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kasm_scale_http::{ConnectionLimits, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A running `serve` over the shared test world; dropping it shuts the service down.
pub struct Running {
    pub addr: SocketAddr,
    pub world: super::World,
    _stop: oneshot::Sender<()>,
}

pub async fn start(limits: ConnectionLimits) -> Running {
    let world = super::world().await;
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        insecure_http: false,
        shutdown_grace: Duration::from_secs(1),
        limits,
        reload: None,
    };
    tokio::spawn(kasm_scale_http::serve(
        world.scaler.clone(),
        world.app.clone(),
        options,
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        async {
            let _ = stopped.await;
        },
    ));
    let addr = tokio::time::timeout(Duration::from_secs(10), bound_rx)
        .await
        .expect("the service listens")
        .unwrap();
    Running {
        addr,
        world,
        _stop: stop,
    }
}

/// One request on a fresh connection (`Connection: close`): its status code and body, and how
/// long it took.
pub async fn call(addr: SocketAddr, request: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body, start.elapsed())
}

pub fn get(path: &str, key: Option<&str>) -> String {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: kasm\r\n{auth}Connection: close\r\n\r\n")
}

pub fn post_json(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: kasm\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// True once the peer closed `stream` (end of file or reset), waiting at most `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a 408 before closing) is fine: keep reading until the close.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The value of an unlabelled gauge on `/metrics`.
pub async fn gauge(addr: SocketAddr, name: &str) -> f64 {
    let (status, body, _) = call(addr, &get("/metrics", None)).await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} on /metrics:\n{body}"))
}
