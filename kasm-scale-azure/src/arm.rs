//! Azure Resource Manager over REST: authenticated requests with a pinned api-version, errors
//! mapped to the core's classes, throttling (`429` + `Retry-After`, and slowing down as the
//! `x-ms-ratelimit-remaining-*` headers run low) and long-running operations followed through
//! `Azure-AsyncOperation` or `Location`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kasm_scale_core::traits::BackendError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::AzureCredential;

/// api-version of `Microsoft.Compute/virtualMachines`.
pub const COMPUTE_API_VERSION: &str = "2024-07-01";
/// api-version of `Microsoft.Network/networkInterfaces` and `publicIPAddresses`.
pub const NETWORK_API_VERSION: &str = "2024-05-01";

/// Attempts of one request when ARM throttles (429) or fails (5xx, connection).
const ATTEMPTS: u32 = 5;
/// The longest `Retry-After` honoured within one call; longer waits go back to the caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Below this many remaining requests in ARM's window, calls are spaced out.
const LOW_REMAINING: i64 = 10;
/// Pause before a call when the remaining budget is exhausted; shorter when some is left.
const SLOW_DOWN: Duration = Duration::from_secs(2);
/// The shortest pause between two polls of an operation, whatever `Retry-After` says.
const MIN_POLL: Duration = Duration::from_millis(50);
/// The longest a long-running operation is followed.
const LRO_TIMEOUT: Duration = Duration::from_secs(1800);

/// An HTTP client for ARM and the login authority: 10 s to connect, `timeout` per request, so a
/// hung endpoint fails as transient instead of holding a call forever.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, BackendError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .map_err(|e| BackendError::InvalidRequest(format!("cannot make the HTTP client: {e}")))
}

/// An answer from ARM: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

/// A Resource Manager endpoint with a credential. Its `Debug` shows no secret.
#[derive(Debug)]
pub struct ResourceManager {
    http: reqwest::Client,
    base: String,
    credential: AzureCredential,
    /// The lowest `x-ms-ratelimit-remaining-*` seen in the last answer (-1: none seen).
    remaining: AtomicI64,
}

/// `Retry-After` in seconds (ARM sends seconds), if present.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// ARM's error body `{"error": {"code", "message"}}` as code and message.
fn error_of(body: &Value) -> (String, String) {
    let e = body.get("error").unwrap_or(body);
    let text = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("code"), text("message"))
}

/// Classifies an ARM error by its code, then its status; `what` names the operation.
pub fn classify(status: StatusCode, body: &Value, what: &str) -> BackendError {
    let (code, message) = error_of(body);
    let text = if code.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: {code}: {message}")
    };
    let quota = message.to_ascii_lowercase().contains("quota");
    match code.as_str() {
        "SkuNotAvailable"
        | "AllocationFailed"
        | "ZonalAllocationFailed"
        | "OverconstrainedAllocationRequest"
        | "OverconstrainedZonalAllocationRequest" => BackendError::Capacity(text),
        "QuotaExceeded" => BackendError::Quota(text),
        "OperationNotAllowed" if quota => BackendError::Quota(text),
        "AuthorizationFailed" | "LinkedAuthorizationFailed" => BackendError::Permission(text),
        "InvalidAuthenticationToken"
        | "InvalidAuthenticationTokenTenant"
        | "ExpiredAuthenticationToken"
        | "AuthenticationFailed" => BackendError::Auth(text),
        "ResourceNotFound" | "NotFound" | "ResourceGroupNotFound" => BackendError::NotFound(text),
        "AnotherOperationInProgress" | "RetryableError" | "InternalServerError" => {
            BackendError::Transient(text)
        }
        _ => match status.as_u16() {
            401 => BackendError::Auth(text),
            403 => BackendError::Permission(text),
            404 => BackendError::NotFound(text),
            409 => BackendError::Conflict(text),
            429 => BackendError::RateLimited {
                message: text,
                retry_after: None,
            },
            s if s >= 500 => BackendError::Transient(text),
            _ => BackendError::InvalidRequest(text),
        },
    }
}

impl ResourceManager {
    /// Resource Manager at `base` (e.g. `https://management.azure.com`), authenticated by
    /// `credential`, through `http` (give it timeouts: see [`http_client`]).
    pub fn new(http: reqwest::Client, base: &str, credential: AzureCredential) -> ResourceManager {
        ResourceManager {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credential,
            remaining: AtomicI64::new(-1),
        }
    }

    /// The full URL of `path` (an absolute URL, as ARM gives for `nextLink` and operations,
    /// is kept).
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Waits when ARM's remaining request budget ran low in the last answer.
    async fn pace(&self) {
        let left = self.remaining.load(Ordering::Relaxed);
        if (0..LOW_REMAINING).contains(&left) {
            let share = (LOW_REMAINING - left) as f64 / LOW_REMAINING as f64;
            tokio::time::sleep(SLOW_DOWN.mul_f64(share)).await;
        }
    }

    fn note_remaining(&self, headers: &HeaderMap) {
        let lowest = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-ms-ratelimit-remaining-"))
            .filter_map(|(_, v)| v.to_str().ok()?.trim().parse::<i64>().ok())
            .min()
            .unwrap_or(-1);
        self.remaining.store(lowest, Ordering::Relaxed);
    }

    /// Sends one request (`api_version` added unless `path` already has a query), with the
    /// token, retrying throttling, 5xx and connection failures; a 401 fetches a new token once.
    /// Non-success answers are errors, classified; `what` names the operation in them.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, BackendError> {
        let mut url = self.url(path);
        if !url.contains("api-version=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("api-version=");
            url.push_str(api_version);
        }
        let mut renewed_token = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace().await;
            let token = self.credential.token().await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose());
            if let Some(b) = body {
                request = request.json(b);
            }
            let answer = match request.send().await {
                Ok(a) => a,
                Err(e) if e.is_builder() => {
                    return Err(BackendError::InvalidRequest(format!(
                        "{what}: not a valid request URL: {path}"
                    )));
                }
                Err(e) if attempt < ATTEMPTS && !e.is_timeout() => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(BackendError::Transient(format!(
                        "{what}: cannot reach Resource Manager: {}",
                        e.without_url()
                    )));
                }
            };
            let status = answer.status();
            let headers = answer.headers().clone();
            self.note_remaining(&headers);
            let bytes = answer.bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            if status == StatusCode::UNAUTHORIZED && !renewed_token {
                renewed_token = true;
                self.credential.invalidate().await;
                continue;
            }
            let wait = retry_after(&headers);
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt < ATTEMPTS && wait.is_none_or(|w| w <= MAX_RETRY_AFTER) {
                let backoff = Duration::from_millis(200 << attempt);
                tokio::time::sleep(wait.unwrap_or(backoff)).await;
                continue;
            }
            return Err(match classify(status, &body, what) {
                BackendError::RateLimited { message, .. } => BackendError::RateLimited {
                    message,
                    retry_after: wait,
                },
                other => other,
            });
        }
    }

    /// Follows a long-running operation started by `answer` (201/202) to its end, through
    /// `Azure-AsyncOperation` (status resource) or else `Location` (polled until it stops
    /// answering 202), honouring `Retry-After`. Answers without either are already done.
    pub async fn wait(
        &self,
        answer: &Answer,
        api_version: &str,
        what: &str,
    ) -> Result<(), BackendError> {
        let header =
            |h: &HeaderMap, k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let async_op = header(&answer.headers, "azure-asyncoperation");
        let location = header(&answer.headers, "location");
        let mut delay = retry_after(&answer.headers).unwrap_or(Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + LRO_TIMEOUT;
        let (url, by_status) = match (async_op, location) {
            (Some(op), _) => (op, true),
            (None, Some(loc)) => (loc, false),
            (None, None) => return Ok(()),
        };
        loop {
            if tokio::time::Instant::now() > deadline {
                return Err(BackendError::Transient(format!(
                    "{what}: still running after {} s",
                    LRO_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(delay.clamp(MIN_POLL, MAX_RETRY_AFTER)).await;
            let poll = self
                .send(Method::GET, &url, api_version, None, what)
                .await?;
            delay = retry_after(&poll.headers).unwrap_or(Duration::from_secs(1));
            if !by_status {
                if poll.status != StatusCode::ACCEPTED {
                    return Ok(());
                }
                continue;
            }
            match poll.body.get("status").and_then(Value::as_str) {
                Some("Succeeded") => return Ok(()),
                Some("Failed" | "Canceled") => {
                    return Err(classify(StatusCode::OK, &poll.body, what));
                }
                _ => {}
            }
        }
    }
}
