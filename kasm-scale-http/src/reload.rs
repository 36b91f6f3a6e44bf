//! Reloading a running service *(ours)*: [`Reloader`] puts a new configuration in force (through
//! the program's own hook, which knows where the configuration comes from) and swaps the TLS
//! certificate, one reload at a time. [`serve`](crate::serve) answers `POST /api/v1/reload`
//! with it (behind the broker keys) when [`ServeOptions::reload`](crate::ServeOptions::reload)
//! holds one; `kasm-scale serve` also calls it on SIGHUP.
//!
//! A reload is all or nothing: the new certificate and key are read and checked first, then
//! the hook runs; the certificate is swapped only when the hook put its configuration in force.
//! Connections already open keep the certificate they were made with; new ones get the new one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use kasm_scale_core::controller::Reloaded;
use serde::Serialize;

use crate::TlsFiles;

/// The longest a reload may take (ours): past it, it is given up, having changed nothing.
/// Shorter than the API's own timeout, so `POST /api/v1/reload` answers with the refusal.
pub const RELOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(110);

/// What the configuration hook returns.
pub type ReloadFuture = Pin<Box<dyn Future<Output = Result<Reloaded, ReloadRefused>> + Send>>;

type Hook = dyn Fn() -> ReloadFuture + Send + Sync;

/// Why a reload was refused: every problem, one sentence each (never a secret). The running
/// configuration and certificate stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("reload refused: {}", problems.join("; "))]
pub struct ReloadRefused {
    /// Every problem found.
    pub problems: Vec<String>,
}

impl ReloadRefused {
    /// A refusal for one problem.
    pub fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

/// What a reload did: the configuration's changes and whether a certificate was read again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadDone {
    /// What the new configuration changed (empty without a configuration hook).
    #[serde(flatten)]
    pub changes: Reloaded,
    /// Whether the TLS certificate and key were read again and put in force.
    pub tls_reloaded: bool,
}

/// Reloads a running service: the configuration through a hook, then the TLS certificate.
/// Cheap to clone (one shared state); two reloads at once run one after the other.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::controller::Reloaded;
/// use kasm_scale_http::{ReloadRefused, Reloader};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A hook that re-reads nothing and refuses, as one would for a file that does not parse.
/// let reloader = Reloader::new(|| {
///     Box::pin(async { Err::<Reloaded, _>(ReloadRefused::one("service.toml: line 3: expected `=`")) })
/// });
/// let refused = reloader.reload().await.unwrap_err();
/// assert_eq!(refused.problems, ["service.toml: line 3: expected `=`"]);
/// # }
/// ```
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    hook: Option<Box<Hook>>,
    /// The certificate served and the files it came from, once [`serve`](crate::serve) runs
    /// over TLS.
    tls: Mutex<Option<(RustlsConfig, TlsFiles)>>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    /// The controller served, once [`serve`](crate::serve) runs: a refused certificate is
    /// told to it as a refused reload.
    scaler: std::sync::OnceLock<kasm_scale_core::controller::Autoscaler>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("hook", &self.inner.hook.is_some())
            .field("tls", &self.tls().map(|(_, files)| files))
            .finish()
    }
}

impl Default for Reloader {
    /// A reloader of the TLS certificate only.
    fn default() -> Self {
        Self::with_hook(None)
    }
}

impl Reloader {
    /// A reloader whose configuration is put in force by `hook` (for example: read the file
    /// again, build what changed, and [`Reconfiguration::apply`](kasm_scale_core::controller::Reconfiguration::apply)).
    pub fn new<F>(hook: F) -> Self
    where
        F: Fn() -> ReloadFuture + Send + Sync + 'static,
    {
        Self::with_hook(Some(Box::new(hook)))
    }

    fn with_hook(hook: Option<Box<Hook>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                hook,
                tls: Mutex::new(None),
                running: tokio::sync::Mutex::new(()),
                scaler: std::sync::OnceLock::new(),
            }),
        }
    }

    fn tls(&self) -> Option<(RustlsConfig, TlsFiles)> {
        self.inner
            .tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The controller [`serve`](crate::serve) serves: refusals found here (a certificate) are
    /// told to it ([`Autoscaler::reload_refused`](kasm_scale_core::controller::Autoscaler::reload_refused)).
    pub(crate) fn report_to(&self, scaler: kasm_scale_core::controller::Autoscaler) {
        let _ = self.inner.scaler.set(scaler);
    }

    /// The certificate [`serve`](crate::serve) serves, to be read again from `files`.
    pub(crate) fn serve_tls(&self, config: RustlsConfig, files: TlsFiles) {
        *self.inner.tls.lock().unwrap_or_else(|e| e.into_inner()) = Some((config, files));
    }

    /// Reloads: reads and checks the certificate and key again (when serving TLS), runs the
    /// configuration hook, and puts the new certificate in force once the hook succeeded.
    /// Waits for a reload under way to end first. Refused: nothing changed.
    pub async fn reload(&self) -> Result<ReloadDone, ReloadRefused> {
        use tracing::Instrument;
        let _one_at_a_time = self.inner.running.lock().await;
        // Bounded: a hook stuck on a backend that does not answer would hold every later
        // reload behind it. Nothing is in force until the hook returns (and the certificate is
        // swapped after it), so a reload cut short changed nothing.
        let outcome = match tokio::time::timeout(
            RELOAD_LIMIT,
            self.reload_now()
                .instrument(tracing::info_span!("service_reload")),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                let problem = format!(
                    "the reload did not finish within {} s (a backend that does not answer?): nothing changed",
                    RELOAD_LIMIT.as_secs()
                );
                if let Some(scaler) = self.inner.scaler.get() {
                    scaler.reload_refused(vec![problem.clone()]);
                }
                Err(ReloadRefused::one(problem))
            }
        };
        match &outcome {
            Ok(done) => {
                tracing::info!(changes = ?done.changes, tls_reloaded = done.tls_reloaded, "service reloaded")
            }
            Err(refused) => {
                tracing::error!(problems = ?refused.problems, "service reload refused: the running configuration and certificate stay")
            }
        }
        outcome
    }

    async fn reload_now(&self) -> Result<ReloadDone, ReloadRefused> {
        // The certificate first: a bad pair refuses the whole reload before anything changed.
        let tls = match self.tls() {
            Some((live, files)) => match RustlsConfig::from_pem_file(&files.cert, &files.key).await
            {
                Ok(next) => Some((live, next)),
                Err(e) => {
                    let problem = format!(
                        "TLS certificate {} or key {}: {e}",
                        files.cert.display(),
                        files.key.display()
                    );
                    if let Some(scaler) = self.inner.scaler.get() {
                        scaler.reload_refused(vec![problem.clone()]);
                    }
                    return Err(ReloadRefused::one(problem));
                }
            },
            None => None,
        };
        let changes = match &self.inner.hook {
            Some(hook) => hook().await?,
            None => Reloaded::default(),
        };
        let tls_reloaded = tls.is_some();
        if let Some((live, next)) = tls {
            live.reload_from_config(next.get_inner());
            tracing::info!("TLS certificate reloaded: new connections get it");
        }
        Ok(ReloadDone {
            changes,
            tls_reloaded,
        })
    }
}

/// The body of a refused reload: the usual `error_message`, and every problem.
#[derive(Debug, Serialize)]
struct RefusedBody<'a> {
    error_message: &'a str,
    problems: &'a [String],
}

impl IntoResponse for ReloadRefused {
    fn into_response(self) -> Response {
        let body = RefusedBody {
            error_message: "configuration refused: the running one stays",
            problems: &self.problems,
        };
        (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
    }
}

/// `POST /api/v1/reload`: `200` with what changed, `422` with every problem. The reload runs
/// to its end even when the caller goes away.
pub(crate) async fn reload(reloader: Reloader) -> Response {
    match tokio::spawn(async move { reloader.reload().await }).await {
        Ok(Ok(done)) => Json(done).into_response(),
        Ok(Err(refused)) => refused.into_response(),
        Err(e) => crate::reply::Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the reload failed: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_hook_that_never_ends_is_given_up_and_the_next_reload_runs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reloader = Reloader::new({
            let calls = calls.clone();
            move || {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    if first {
                        std::future::pending::<()>().await;
                    }
                    Ok(Reloaded::default())
                })
            }
        });
        let refused = reloader.reload().await.unwrap_err();
        assert!(
            refused.problems[0].contains("did not finish within 110 s"),
            "{refused:?}"
        );
        // Not held behind the stuck one.
        assert!(reloader.reload().await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn two_reloads_at_once_run_one_after_the_other() {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reloader = Reloader::new({
            let (inside, most) = (inside.clone(), most.clone());
            move || {
                let (inside, most) = (inside.clone(), most.clone());
                Box::pin(async move {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok(Reloaded::default())
                })
            }
        });
        let (a, b) = tokio::join!(reloader.reload(), reloader.reload());
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two hooks at once");
    }

    #[tokio::test]
    async fn a_refusal_is_422_with_every_problem() {
        let refused = ReloadRefused {
            problems: vec!["a: bad".into(), "b: worse".into()],
        };
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error_message": "configuration refused: the running one stays",
                "problems": ["a: bad", "b: worse"],
            })
        );
    }
}
