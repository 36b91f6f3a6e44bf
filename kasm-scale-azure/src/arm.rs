//! Azure Resource Manager over REST: authenticated requests with the api-version of their
//! resource type, errors mapped to the core's classes, throttling (`429` → rate limited with its
//! `Retry-After`; ARM's remaining budgets paced on, see [`budget`]) and long-running operations
//! followed through `Azure-AsyncOperation` or `Location`.
//!
//! Every request is one attempt: the controller's retry policy is the one retry layer. Inside a
//! call only a refused token is renewed once, and a long-running operation is polled; a poll that
//! fails ends the call with its classified error. The bearer token only ever goes to the
//! configured Resource Manager (scheme, host and port): an operation or `nextLink` URL naming
//! anything else is refused without being sent.

mod budget;

use std::time::Duration;

use kasm_scale_core::config::DEFAULT_API_OPERATION_TIMEOUT;
use kasm_scale_core::traits::BackendError;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::{AzureCredential, retry_after};

/// api-version of `Microsoft.Compute/virtualMachines` ("Virtual Machines - Create Or Update",
/// "- Get", "- List", "- Instance View", "- Delete"); their operations are polled with it.
pub(crate) const VM_API_VERSION: &str = "2024-07-01";
/// api-version of `Microsoft.Compute/disks`, a line of its own ("Disks - Delete", "- Update",
/// "- List By Resource Group").
pub(crate) const DISK_API_VERSION: &str = "2025-01-02";
/// api-version of `Microsoft.Network/networkInterfaces` and `publicIPAddresses` ("Network
/// Interfaces - Create Or Update", "Public IP Addresses - Create Or Update", their deletes and
/// lists).
pub(crate) const NETWORK_API_VERSION: &str = "2024-05-01";

/// The longest pause between two polls of an operation, whatever `Retry-After` says.
const MAX_POLL: Duration = Duration::from_secs(60);
/// The shortest pause between two polls of an operation, whatever `Retry-After` says.
const MIN_POLL: Duration = Duration::from_millis(50);

/// An HTTP client for ARM and the login authority: 10 s to connect, `timeout` per request, so a
/// hung endpoint fails as transient instead of holding a call forever.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, BackendError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .map_err(|e| BackendError::InvalidRequest(format!("cannot make the HTTP client: {e}")))
}

/// An answer from ARM: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The JSON body, `Null` when empty or not JSON.
    pub(crate) body: Value,
}

/// A Resource Manager endpoint with a credential. Its `Debug` shows no secret.
#[derive(Debug)]
pub(crate) struct ResourceManager {
    http: reqwest::Client,
    base: String,
    /// The scheme, host and port of `base`: the only place the token is sent.
    origin: Option<reqwest::Url>,
    credential: AzureCredential,
    /// ARM's remaining request budgets.
    budgets: budget::Budgets,
    /// The longest a long-running operation is followed (`api_operation_timeout`).
    operation_timeout: Duration,
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

/// Classifies an ARM error: a 429 is rate limited whatever its code (`retry_after` is set by
/// [`ResourceManager::send`] from the header), else by its code, then its status; `what` names
/// the operation.
pub(crate) fn classify(status: StatusCode, body: &Value, what: &str) -> BackendError {
    let (code, message) = error_of(body);
    let text = if code.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: {code}: {message}")
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        return BackendError::RateLimited {
            message: text,
            retry_after: None,
        };
    }
    if let Some(e) = by_code(&code, &message, &text) {
        return e;
    }
    match status.as_u16() {
        401 => BackendError::Auth(text),
        403 => BackendError::Permission(text),
        404 => BackendError::NotFound(text),
        409 => BackendError::Conflict(text),
        s if s >= 500 => BackendError::Transient(text),
        _ => BackendError::InvalidRequest(text),
    }
}

/// Classifies the end of a long-running operation that did not succeed (`status` `Failed` or
/// `Canceled`): a listed code keeps its class; any other (`OSProvisioningTimedOut`,
/// `VMAgentStatusCommunicationError`, …) is a failure of the operation in the cloud, transient
/// (the server is made again), never judged by the 200 the status poll came with.
pub(crate) fn classify_operation(body: &Value, what: &str) -> BackendError {
    let (code, message) = error_of(body);
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("Failed");
    let text = if code.is_empty() {
        format!("{what}: the operation ended {status}")
    } else {
        format!("{what}: {code}: {message}")
    };
    by_code(&code, &message, &text).unwrap_or(BackendError::Transient(text))
}

/// The class of the ARM error codes we know, if `code` is one.
fn by_code(code: &str, message: &str, text: &str) -> Option<BackendError> {
    let text = text.to_owned();
    let quota = message.to_ascii_lowercase().contains("quota");
    Some(match code {
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
        "InvalidParameter"
        | "InvalidRequestContent"
        | "InvalidRequestFormat"
        | "InvalidResourceReference"
        | "BadRequest"
        | "PropertyChangeNotAllowed"
        | "NoRegisteredProviderFound"
        | "InvalidApiVersionParameter" => BackendError::InvalidRequest(text),
        _ => return None,
    })
}

impl ResourceManager {
    /// Resource Manager at `base` (e.g. `https://management.azure.com`), authenticated by
    /// `credential`, through `http` (give it timeouts: see [`http_client`]).
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        credential: AzureCredential,
    ) -> ResourceManager {
        let base = base.trim_end_matches('/').to_owned();
        ResourceManager {
            http,
            origin: reqwest::Url::parse(&base).ok(),
            base,
            credential,
            budgets: budget::Budgets::default(),
            operation_timeout: Duration::from_secs(u64::from(DEFAULT_API_OPERATION_TIMEOUT)),
        }
    }

    /// Follows each long-running operation for at most `timeout` (default 30 minutes).
    pub(crate) fn with_operation_timeout(mut self, timeout: Duration) -> ResourceManager {
        self.operation_timeout = timeout;
        self
    }

    /// The full URL of `path`. An absolute URL (ARM gives them for `nextLink` and operations)
    /// must name the configured Resource Manager's scheme, host and port, or it is refused: the
    /// token goes nowhere else.
    fn url(&self, path: &str, what: &str) -> Result<String, BackendError> {
        if !(path.starts_with("http://") || path.starts_with("https://")) {
            return Ok(format!("{}{path}", self.base));
        }
        let parsed = reqwest::Url::parse(path).map_err(|_| {
            BackendError::InvalidRequest(format!("{what}: not a valid URL from Resource Manager"))
        })?;
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_owned(),
                u.host_str().map(str::to_ascii_lowercase),
                u.port_or_known_default(),
            )
        };
        match &self.origin {
            Some(base) if origin(base) == origin(&parsed) => Ok(path.to_owned()),
            _ => Err(BackendError::InvalidRequest(format!(
                "{what}: Resource Manager pointed at {}, which is not the configured Resource Manager {}; the token is not sent there",
                parsed.origin().ascii_serialization(),
                self.base
            ))),
        }
    }

    /// Sends one request (`api_version` added unless `path` already has a query), with the
    /// token: one attempt, except that a 401 fetches a new token and sends it once more.
    /// Non-success answers are errors, classified (429 → rate limited with its `Retry-After`,
    /// 5xx and connection failures → transient); `what` names the operation in them.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, BackendError> {
        let mut url = self.url(path, what)?;
        if !url.contains("api-version=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("api-version=");
            url.push_str(api_version);
        }
        let key = budget::key(&method, &url);
        let mut renewed_token = false;
        loop {
            match self.budgets.pace(&key) {
                budget::Pace::Go => {}
                budget::Pace::Wait(d) => tokio::time::sleep(d).await,
                budget::Pace::Refuse(policy, wait) => {
                    return Err(BackendError::RateLimited {
                        message: format!(
                            "{what}: Resource Manager's {policy} budget is used up (not sent)"
                        ),
                        retry_after: Some(Duration::from_secs(wait.as_secs().max(1))),
                    });
                }
            }
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
                Err(e) => {
                    return Err(BackendError::Transient(format!(
                        "{what}: cannot reach Resource Manager: {}",
                        e.without_url()
                    )));
                }
            };
            let status = answer.status();
            let headers = answer.headers().clone();
            self.budgets.note(&key, &headers);
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
            return Err(match classify(status, &body, what) {
                BackendError::RateLimited { message, .. } => BackendError::RateLimited {
                    message,
                    retry_after: retry_after(&headers),
                },
                other => other,
            });
        }
    }

    /// Follows a long-running operation started by `answer` (201/202) to its end, through
    /// `Azure-AsyncOperation` (status resource) or else `Location` (polled until it stops
    /// answering 202), honouring `Retry-After` between polls, for at most the operation timeout
    /// (`api_operation_timeout`): one operation, however many single-request timeouts it
    /// outlasts. Answers without either are already done. A poll that fails ends the wait with
    /// its classified error (no retry here).
    pub(crate) async fn wait(
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
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let (url, by_status) = match (async_op, location) {
            (Some(op), _) => (op, true),
            (None, Some(loc)) => (loc, false),
            (None, None) => return Ok(()),
        };
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(BackendError::Transient(format!(
                    "{what}: the operation still runs after {} s (api_operation_timeout)",
                    self.operation_timeout.as_secs()
                )));
            }
            // The last pause ends at the deadline, not past it.
            tokio::time::sleep(delay.clamp(MIN_POLL, MAX_POLL).min(deadline - now)).await;
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
                    return Err(classify_operation(&poll.body, what));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
