//! OAuth2 client credentials for a service principal: a token for Azure Resource Manager from the
//! configured cloud's authority, cached and fetched again before it expires.

use std::fmt;
use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::config::{AzureAuthority, AzureVmConfig};
use kasm_scale_core::traits::BackendError;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where a cloud logs in and where its Resource Manager is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The login authority, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Resource Manager, e.g. `https://management.azure.com`.
    pub resource_manager: String,
}

impl CloudEndpoints {
    /// The endpoints of a cloud.
    pub fn of(cloud: AzureAuthority) -> CloudEndpoints {
        let (authority, resource_manager) = match cloud {
            AzureAuthority::Public => (
                "https://login.microsoftonline.com",
                "https://management.azure.com",
            ),
            AzureAuthority::Government => (
                "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net",
            ),
            AzureAuthority::China => (
                "https://login.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
            ),
        };
        CloudEndpoints {
            authority: authority.into(),
            resource_manager: resource_manager.into(),
        }
    }
}

/// `value` as one URL path segment: RFC 3986's unreserved characters as they are, every other
/// byte percent-encoded (`/` → `%2F`, `?` → `%3F`); a bare `.` or `..`, which a URL parser
/// takes as a step up the path, is encoded whole.
pub(crate) fn path_segment(value: &str) -> String {
    if value == "." || value == ".." {
        return value.replace('.', "%2E");
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token is fetched again 5 minutes before it runs out, or after 90% of its life if that
/// comes first (short-lived tokens).
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Tokens for one service principal (OAuth2 client credentials), cached until they are due for
/// refresh. Its `Debug` shows no secret and no token.
pub struct AzureCredential {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    secret: Secret,
    scope: String,
    cached: Mutex<Option<Cached>>,
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredential")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; some endpoints send it as a string.
    expires_in: serde_json::Value,
}

/// The token endpoint's error body.
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl AzureCredential {
    /// The credential of `config`'s service principal on its cloud: that cloud's authority (or
    /// `azure_authority_url`, for tests) and a token for that cloud's Resource Manager (an
    /// overridden `azure_resource_manager_url` is still that cloud's audience).
    pub fn from_config(http: reqwest::Client, config: &AzureVmConfig) -> AzureCredential {
        let cloud = CloudEndpoints::of(config.azure_authority);
        let authority = config
            .azure_authority_url
            .as_deref()
            .unwrap_or(&cloud.authority);
        AzureCredential::new(
            http,
            authority,
            &config.azure_tenant_id,
            &config.azure_client_id,
            config.azure_client_secret.clone(),
            &cloud.resource_manager,
        )
    }

    /// A credential asking `authority` for tenant `tenant` a token for `resource_manager`. The
    /// tenant is one segment of the token URL's path: any character outside RFC 3986's
    /// unreserved set is percent-encoded, so no value can point the request (and the client
    /// secret) at another path (validation refuses such a tenant id first).
    pub fn new(
        http: reqwest::Client,
        authority: &str,
        tenant: &str,
        client_id: &str,
        secret: Secret,
        resource_manager: &str,
    ) -> AzureCredential {
        AzureCredential {
            http,
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority.trim_end_matches('/'),
                path_segment(tenant)
            ),
            client_id: client_id.into(),
            secret,
            scope: format!("{}/.default", resource_manager.trim_end_matches('/')),
            cached: Mutex::new(None),
        }
    }

    /// A valid token: the cached one, or a new one when it is due for refresh. Callers at the same
    /// moment share one fetch.
    pub async fn token(&self) -> Result<Secret, BackendError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (after Resource Manager refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, BackendError> {
        let started = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let answer = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                BackendError::Transient(format!(
                    "cannot reach the login authority {}: {}",
                    self.token_url,
                    e.without_url()
                ))
            })?;
        let status = answer.status();
        let retry_after = retry_after(answer.headers());
        let body = answer.bytes().await.map_err(|e| {
            BackendError::Transient(format!("login authority: {}", e.without_url()))
        })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenError>(&body)
                .map(|e| format!("{}: {}", e.error, first_line(&e.error_description)))
                .unwrap_or_else(|_| format!("HTTP {status}"));
            let message = format!("cannot get a token for {}: {detail}", self.client_id);
            return Err(if status.as_u16() == 429 {
                BackendError::RateLimited {
                    message,
                    retry_after,
                }
            } else if status.is_server_error() {
                BackendError::Transient(message)
            } else {
                BackendError::Auth(message)
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            BackendError::Transient(format!("the login authority's answer is not a token: {e}"))
        })?;
        let lifetime = match &answer.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            BackendError::Transient("the login authority's token has no expires_in".into())
        })?;
        let lifetime = Duration::from_secs(lifetime);
        let keep = if lifetime > REFRESH_BEFORE {
            (lifetime - REFRESH_BEFORE).min(lifetime.mul_f64(0.9))
        } else {
            lifetime.mul_f64(0.9)
        };
        Ok(Cached {
            token: Secret::new(answer.access_token),
            refresh_at: started + keep,
        })
    }
}

/// The first line of an AAD error description (the rest is trace and correlation ids).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// `Retry-After` in seconds (ARM and the login authority send seconds), if present.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}
