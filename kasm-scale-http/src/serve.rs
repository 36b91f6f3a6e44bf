//! [`serve`]: run an [`Autoscaler`] as a service — its tick loop and the [`router`](crate::router)
//! on one address, over TLS (rustls) or, on loopback only unless allowed, plain HTTP — until a
//! shutdown signal, then stop in order: stop accepting, let requests in flight finish, stop the
//! loop, wait for background work (bounded), and return.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use kasm_scale_core::controller::{Autoscaler, ControllerError};

use crate::listener::{ConnectionLimits, Guard};
use crate::reload::Reloader;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (port 0: any free port; the bound one is reported).
    pub listen: SocketAddr,
    /// TLS certificate chain and key (PEM files); without them, plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on an address that is not loopback. The guests' tokens and statuses would
    /// cross the network in clear: only behind a TLS-terminating proxy on the same host.
    pub insecure_http: bool,
    /// How long requests in flight and background work may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// The connection cap and the timeouts for slow and idle clients.
    pub limits: ConnectionLimits,
    /// (ours) Reloads without a restart: with one, `POST /api/v1/reload` (behind the broker
    /// keys) runs it, and over TLS it reads the certificate and key again on each reload. The
    /// program keeps a clone to reload on its own signal (`kasm-scale serve`: SIGHUP).
    pub reload: Option<Reloader>,
}

impl ServeOptions {
    /// Over TLS on `listen` with the certificate chain `cert` and its key `key` (PEM files),
    /// 30 s of shutdown grace and the default [`ConnectionLimits`] (what `kasm-scale serve`
    /// uses by default).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = kasm_scale_http::ServeOptions::tls(
    ///     "0.0.0.0:8443".parse().unwrap(),
    ///     "/etc/kasm-scale/cert.pem",
    ///     "/etc/kasm-scale/key.pem",
    /// );
    /// assert!(!options.insecure_http);
    /// assert_eq!(options.limits.max_connections, 10_000);
    /// ```
    pub fn tls(listen: SocketAddr, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            tls: Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            insecure_http: false,
            shutdown_grace: Duration::from_secs(30),
            limits: ConnectionLimits::default(),
            reload: None,
        }
    }
}

/// PEM files of a TLS server certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Plain HTTP on a public address without `insecure_http`.
    #[error(
        "plain HTTP on {0} would carry check-in tokens in clear: give a TLS certificate and key, listen on loopback, or allow it explicitly (insecure HTTP)"
    )]
    PlainHttp(SocketAddr),
    /// The TLS files cannot be read or used.
    #[error("TLS certificate or key ({path}): {reason}")]
    Tls {
        /// The certificate's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The controller cannot start (its saved state cannot be loaded).
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// The socket cannot be bound or failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Serves `app` (usually [`router`](crate::router) over `scaler`, maybe merged with the
/// broker's own routes) and runs `scaler`'s tick loop until `shutdown` resolves. `bound` is
/// called with the address once listening (useful with port 0).
pub async fn serve(
    scaler: Autoscaler,
    app: Router,
    options: ServeOptions,
    bound: impl FnOnce(SocketAddr) + Send + 'static,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if options.tls.is_none() && !options.insecure_http && !options.listen.ip().is_loopback() {
        return Err(ServeError::PlainHttp(options.listen));
    }
    let tls = match &options.tls {
        Some(files) => Some({
            // One process-wide TLS provider, whatever other crates compiled in (the first
            // installed wins; an error only says one already was).
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|e| ServeError::Tls {
                    path: files.cert.display().to_string(),
                    reason: e.to_string(),
                })?
        }),
        None => None,
    };
    let app = match &options.reload {
        Some(reloader) => {
            reloader.report_to(scaler.clone());
            if let (Some(live), Some(files)) = (&tls, &options.tls) {
                reloader.serve_tls(live.clone(), files.clone());
            }
            app.merge(crate::reload_routes(scaler.clone(), reloader.clone()))
        }
        None => app,
    };
    // The saved state first: nothing is served before it is loaded.
    scaler.start().await?;
    let handle = Handle::new();
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let limits = options.limits;
    let cap = crate::listener::fit_open_file_limit(limits.max_connections);
    let guard = Guard::new(cap, limits.idle_timeout, DefaultAcceptor::new());
    let server = {
        let handle = handle.clone();
        let addr = options.listen;
        tokio::spawn(async move {
            let result = match tls {
                Some(tls) => {
                    let acceptor = RustlsAcceptor::new(tls).acceptor(guard);
                    bound_server(addr, acceptor, &limits)
                        .handle(handle)
                        .serve(service)
                        .await
                }
                None => {
                    bound_server(addr, guard, &limits)
                        .handle(handle)
                        .serve(service)
                        .await
                }
            };
            result.map_err(|source| ServeError::Io { addr, source })
        })
    };
    let Some(addr) = handle.listening().await else {
        // It stopped before listening: its error says why.
        return match server.await {
            Ok(Err(e)) => Err(e),
            _ => Err(ServeError::Io {
                addr: options.listen,
                source: std::io::Error::other("the server stopped before listening"),
            }),
        };
    };
    tracing::info!(
        %addr,
        tls = options.tls.is_some(),
        max_connections = cap,
        header_read_timeout_s = limits.header_read_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        "serving"
    );
    bound(addr);

    let (stop_loop, loop_stopped) = tokio::sync::oneshot::channel::<()>();
    let ticking = tokio::spawn({
        let scaler = scaler.clone();
        async move {
            scaler
                .run(async {
                    let _ = loop_stopped.await;
                })
                .await;
        }
    });
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    handle.graceful_shutdown(Some(options.shutdown_grace));
    let served = server.await;
    let _ = stop_loop.send(());
    let _ = ticking.await;
    if tokio::time::timeout(options.shutdown_grace, scaler.settle())
        .await
        .is_err()
    {
        tracing::warn!(
            "background work still running at shutdown is stopped; the next start resumes or adopts it"
        );
    }
    // A last save of what the background work did.
    scaler.save().await;
    tracing::info!("stopped");
    match served {
        Ok(result) => result,
        Err(e) => Err(ServeError::Io {
            addr,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// The server on `addr` with `acceptor`, where a request's head must arrive within the
/// header-read timeout: on a new connection (its first request, protocol detection included)
/// and between the requests of a kept-alive one.
fn bound_server<A>(
    addr: SocketAddr,
    acceptor: A,
    limits: &ConnectionLimits,
) -> axum_server::Server<SocketAddr, A> {
    let mut server = axum_server::bind(addr)
        .acceptor(acceptor)
        .first_request_timeout(limits.header_read_timeout);
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_read_timeout);
    server
}
