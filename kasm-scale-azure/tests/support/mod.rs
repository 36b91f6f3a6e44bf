//! The ARM test server, written for these tests from Azure's public REST documentation, on
//! 127.0.0.1: the Microsoft identity platform's token endpoint (`POST
//! /{tenant}/oauth2/v2.0/token`, client credentials) with the error bodies AAD sends, bearer
//! tokens checked (missing, unknown and expired ones refused as ARM does), and the resources of
//! [`resources::Store`] under the rules of [`rules`].

#![allow(dead_code)]

pub mod power;
pub mod resources;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The test server's state.
#[derive(Debug)]
pub struct State {
    /// `(tenant, client id)` → secret of the registered service principals.
    pub clients: HashMap<(String, String), String>,
    /// Lifetime of issued tokens, in seconds.
    pub token_lifetime: u64,
    /// Tokens issued so far.
    pub issued: Vec<String>,
    /// The `scope` of every token request.
    pub scopes: Vec<String>,
    /// Answer the token endpoint with this status instead (a fault), when set.
    pub token_fault: Option<u16>,
    /// Issued tokens and when they expire.
    pub valid_tokens: HashMap<String, std::time::Instant>,
    /// The resources.
    pub store: resources::Store,
}

/// A running test server.
pub struct ArmServer {
    /// Its base URL (`http://127.0.0.1:port`), both authority and Resource Manager.
    pub url: String,
    /// Its state, to arrange and inspect.
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ArmServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0b9f3a5e-2c4d-4e8f-9a1b-3c5d7e9f1a2b";
pub const CLIENT_SECRET: &str = "s3cr3t~client~value";

impl ArmServer {
    /// Starts a server knowing the test service principal, with the test subscription's
    /// resource group `kasm` (tests of other groups make them with
    /// [`ArmServer::add_resource_group`]).
    pub async fn start() -> ArmServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State {
            clients: HashMap::from([(
                (TENANT.to_owned(), CLIENT_ID.to_owned()),
                CLIENT_SECRET.to_owned(),
            )]),
            token_lifetime: 3599,
            issued: Vec::new(),
            scopes: Vec::new(),
            token_fault: None,
            valid_tokens: HashMap::new(),
            store: resources::Store {
                lro_delay: std::time::Duration::from_millis(30),
                page_size: 100,
                retry_after: 1,
                resource_groups: [format!(
                    "/subscriptions/{}/resourcegroups/kasm",
                    resources::SUBSCRIPTION
                )]
                .into(),
                ..Default::default()
            },
        }));
        let shared = state.clone();
        let base = url.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let base = base.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let (state, base) = (state.clone(), base.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(req, &state, &base).await) }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ArmServer { url, state, task }
    }

    /// Creates resource group `name` of the test subscription.
    pub fn add_resource_group(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .store
            .resource_groups
            .insert(format!(
                "/subscriptions/{}/resourcegroups/{}",
                resources::SUBSCRIPTION,
                name.to_ascii_lowercase()
            ));
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.state.lock().unwrap().issued.len()
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

/// An AAD error body: `error`, a description whose first line is the message, codes.
fn aad_error(status: StatusCode, error: &str, aadsts: u32, text: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{aadsts}: {text}\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2026-11-29 00:00:00Z"),
            "error_codes": [aadsts],
            "timestamp": "2026-11-29 00:00:00Z",
        }),
    )
}

async fn handle(req: Request<Incoming>, state: &Mutex<State>, base: &str) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return json(StatusCode::BAD_REQUEST, serde_json::json!({})),
    };
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => token(tenant, &body, state),
        // A held request: ARM has it, its client never hears back.
        _ => match resource_manager(&parts, &path, &body, state, base) {
            Some(answer) => answer,
            None => std::future::pending().await,
        },
    }
}

/// Answers a Resource Manager request (`None`: held, see [`resources::Hold`]).
fn resource_manager(
    parts: &hyper::http::request::Parts,
    path: &str,
    body: &[u8],
    state: &Mutex<State>,
    base: &str,
) -> Option<Response<Full<Bytes>>> {
    {
        {
            let mut state = state.lock().unwrap();
            let bearer = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let (status, headers, body) = match bearer.map(|t| state.valid_tokens.get(&t).copied())
            {
                None => resources::arm_error(
                    StatusCode::UNAUTHORIZED,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                ),
                Some(None) => resources::arm_error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                ),
                Some(Some(expiry)) if expiry <= std::time::Instant::now() => resources::arm_error(
                    StatusCode::UNAUTHORIZED,
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.",
                ),
                Some(Some(_)) => {
                    let request: serde_json::Value =
                        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
                    let query = parts.uri.query().unwrap_or_default();
                    if state.store.take_hold(&parts.method, path, query, &request) {
                        return None;
                    }
                    state.store.serve(
                        base,
                        &parts.method,
                        path,
                        parts.uri.query().unwrap_or_default(),
                        &request,
                    )
                }
            };
            let mut response = Response::builder()
                .status(status)
                .header("content-type", "application/json; charset=utf-8");
            for (k, v) in headers {
                response = response.header(k, v);
            }
            if let Some(left) = state.store.remaining_writes {
                response = response.header(
                    "x-ms-ratelimit-remaining-subscription-writes",
                    left.to_string(),
                );
            }
            let text = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            Some(
                response
                    .body(Full::new(Bytes::from(text)))
                    .expect("a response"),
            )
        }
    }
}

fn token(tenant: &str, body: &[u8], state: &Mutex<State>) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap();
    if let Some(status) = state.token_fault {
        let status = StatusCode::from_u16(status).expect("a status");
        let mut answer = aad_error(
            status,
            "temporarily_unavailable",
            90033,
            "The service is unavailable.",
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            answer
                .headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("5"));
        }
        return answer;
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    state.scopes.push(field("scope").to_owned());
    if field("grant_type") != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if !field("scope").ends_with("/.default") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    let key = (tenant.to_owned(), field("client_id").to_owned());
    match state.clients.get(&key) {
        None => aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application with identifier was not found in the directory.",
        ),
        Some(secret) if secret != field("client_secret") => aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        ),
        Some(_) => {
            let token = format!("test-token-{}", state.issued.len() + 1);
            state.issued.push(token.clone());
            let expiry =
                std::time::Instant::now() + std::time::Duration::from_secs(state.token_lifetime);
            state.valid_tokens.insert(token.clone(), expiry);
            json(
                StatusCode::OK,
                serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": state.token_lifetime,
                    "ext_expires_in": state.token_lifetime,
                    "access_token": token,
                }),
            )
        }
    }
}

/// The TOML of an Azure VM provider config for the server at `url` (Linux with an SSH key, in
/// resource group `kasm`), with `extra` lines appended (a key given again in `extra` is an
/// error: use a config without it).
pub fn config_toml(url: &str, extra: &str) -> String {
    format!(
        r#"
name = "azure-test"
azure_subscription_id = "{sub}"
azure_tenant_id = "{TENANT}"
azure_client_id = "{CLIENT_ID}"
azure_client_secret = "{CLIENT_SECRET}"
azure_region = "eastus"
max_instances = 50
azure_vm_size = "Standard_D2s_v5"
azure_image_reference = {{ publisher = "Canonical", offer = "ubuntu-24_04-lts", sku = "server", version = "latest" }}
azure_subnet = "/subscriptions/{sub}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
azure_os_username = "kasm"
azure_ssh_public_key = "ssh-ed25519 AAAA test"
azure_resource_manager_url = "{url}"
azure_authority_url = "{url}"
{extra}
"#,
        sub = resources::SUBSCRIPTION
    )
}

/// The guests read their custom data from the server's store (ARM never returns it), for
/// `testkit::Scenario` and `testkit::check_in_starting`.
pub struct ArmGuests<'a>(pub &'a ArmServer);

#[async_trait::async_trait]
impl kasm_scale_core::testkit::Guests for ArmGuests<'_> {
    async fn startup_script(&self, vm_id: &str) -> String {
        use base64::Engine;
        let data = {
            let state = self.0.state.lock().unwrap();
            let r = &state.store.resources[&vm_id.to_ascii_lowercase()];
            r["properties"]["osProfile"]["customData"]
                .as_str()
                .expect("custom data")
                .to_owned()
        };
        let script = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("custom data is base64");
        String::from_utf8(script).expect("the script is UTF-8")
    }
}
