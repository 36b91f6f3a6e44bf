//! A loopback TCP proxy between a replica and PostgreSQL that can cut the network: while
//! partitioned, bytes in both directions are held back (as a network that drops packets until
//! TCP retransmits them after it heals), then delivered in order once healed. It can also sever
//! every open connection at once (what clients see when PostgreSQL restarts).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy: connect to [`Proxy::addr`] instead of the server.
pub struct Proxy {
    pub addr: SocketAddr,
    partitioned: watch::Sender<bool>,
    severed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards connections to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (partitioned, cut) = watch::channel(false);
        let (severed, generation) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = cut.clone();
                let mut generation = generation.clone();
                generation.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Both directions end (and both sockets close) when severed.
                    tokio::select! {
                        _ = async { tokio::join!(pump(cr, sw, cut.clone()), pump(sr, cw, cut)) } => {}
                        _ = generation.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            partitioned,
            severed,
            task,
        }
    }

    /// A proxy in front of `database`'s server, and the settings that reach it through the
    /// proxy (the test URLs name `host:port`).
    pub async fn in_front_of(
        database: &kasm_scale_core::config::PostgresStoreConfig,
    ) -> (Self, kasm_scale_core::config::PostgresStoreConfig) {
        let upstream: SocketAddr = database
            .url
            .split_once('@')
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(host, _)| host.parse().expect("host:port in the test URL"))
            .expect("the test URL names host:port");
        let proxy = Self::start(upstream).await;
        let mut via_proxy = database.clone();
        via_proxy.url = database
            .url
            .replace(&upstream.to_string(), &proxy.addr.to_string());
        (proxy, via_proxy)
    }

    /// Closes every open connection (new ones are accepted as before).
    pub fn sever(&self) {
        self.severed.send_modify(|g| *g += 1);
    }

    /// Cuts the network (`true`) or heals it (`false`).
    pub fn partition(&self, cut: bool) {
        self.partitioned.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Held while partitioned.
        if cut.wait_for(|c| !*c).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
