//! A [`VmProvider`] for a cloud kasm-scale does not ship, written as you would write yours:
//! "Nimbus", a made-up cloud with a small JSON API over HTTP. The example starts Nimbus's API
//! itself on `127.0.0.1:0` (the `nimbus` module below: its own tables of machines, error codes
//! and limits), then
//!
//! 1. runs kasm-scale's conformance suite ([`testkit::vm_provider_contract`]) against the
//!    provider, over real HTTP: pass it and the controller can rely on your provider;
//! 2. shows how Nimbus's error answers map to [`BackendError`] classes;
//! 3. gives the provider to an [`Autoscaler`], which keeps a standby server in a pool for a
//!    few ticks and seats a user on it.
//!
//! `cargo run --example custom_provider --features testkit`. Copy the `NimbusProvider` part
//! and replace Nimbus's requests with your cloud's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale::Secret;
use kasm_scale::prelude::*;
use kasm_scale::testkit;
use kasm_scale::traits::{Capabilities, Owner};
use serde::{Deserialize, Serialize};

/// The pool of the demonstration. The VM provider config is declared with `provider = "memory"`:
/// its `name`, `max_instances` and startup script are what the controller reads from any
/// provider config, and the builder's `.provider(...)` below puts `NimbusProvider` under that
/// name (the memory cloud's own knobs, none set here, only matter to the memory cloud).
const CONFIG: &str = r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "nimbus"
max_instances = 3
startup_script = "#!/bin/sh\necho 'joining {upstream_auth_address} as {server_hostname}'\n"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-nimbus"
vm_provider_config_id = "nimbus"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
"##;

// ---------------------------------------------------------------------------------------------
// The provider: what you write for your cloud.
// ---------------------------------------------------------------------------------------------

/// Nimbus's largest `user_data`, in bytes (from its API reference): reported in
/// [`Capabilities`], so that a configuration whose rendered scripts are longer is refused before
/// anything is created.
const NIMBUS_MAX_USER_DATA: usize = 16 * 1024;

/// A [`VmProvider`] on Nimbus's HTTP API.
///
/// `Debug` is derived: the API token is a [`Secret`], whose `Debug` shows no value, and
/// `reqwest` marks the `Authorization` header it sends as sensitive.
#[derive(Debug, Clone)]
pub struct NimbusProvider {
    /// The VM provider config name this provider serves (`vm_providers[].name`).
    name: String,
    /// Nimbus's API address, e.g. `https://api.nimbus.example/v1`.
    base: String,
    /// The API token.
    token: Secret,
    /// One client (one connection pool) for every call.
    http: reqwest::Client,
}

/// A machine as Nimbus's API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Machine {
    id: String,
    name: String,
    state: String,
    labels: BTreeMap<String, String>,
    private_ip: Option<String>,
    created_at: Option<String>,
}

/// One page of `GET /machines`.
#[derive(Debug, Serialize, Deserialize)]
struct MachinePage {
    machines: Vec<Machine>,
    next_page_token: Option<String>,
}

/// Nimbus's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ApiError {
    code: String,
    message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    error: ApiError,
}

impl NimbusProvider {
    /// A provider for config `name` on the API at `base`. Nothing is called yet.
    pub fn new(name: &str, base: &str, token: Secret) -> Result<Self, BackendError> {
        let http = reqwest::Client::builder()
            // The controller bounds every call by the config's `api_call_timeout`; these only
            // stop a stuck connection from outliving it.
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BackendError::InvalidRequest(format!("HTTP client: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request with the token: ONE attempt. Retrying is the controller's job (it
    /// backs off, honours `retry_after` and paces calls); a provider that retried too would
    /// multiply the load on a cloud that is already refusing.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BackendError> {
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            // No answer at all (refused connection, reset, timeout): passing, try again later.
            // `without_url` keeps query strings out of the message.
            .map_err(|e| BackendError::Transient(format!("Nimbus: {}", e.without_url())))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(classify(response).await)
        }
    }

    /// A Nimbus machine as a [`Vm`]. Its owner comes back from its labels: that is how a
    /// restarted controller finds (adopts) the VMs it made, and tells them from everyone
    /// else's.
    fn vm(&self, m: Machine) -> Result<Vm, BackendError> {
        let owner = Owner::from_tags(&m.labels).ok_or_else(|| {
            BackendError::Conflict(format!(
                "machine {} has no kasm-scale owner labels: it was not made by kasm-scale",
                m.id
            ))
        })?;
        let state = match m.state.as_str() {
            "provisioning" | "booting" => VmState::Pending,
            "running" => VmState::Running,
            "stopping" | "deleting" => VmState::Stopping,
            "stopped" => VmState::Stopped,
            "error" => VmState::Failed,
            "terminated" => VmState::Terminated,
            other => {
                return Err(BackendError::Transient(format!(
                    "machine {}: unknown state `{other}`",
                    m.id
                )));
            }
        };
        Ok(Vm {
            vm_id: m.id,
            owner,
            state,
            private_ip: m.private_ip,
            created_at: m.created_at.and_then(|t| t.parse().ok()),
        })
    }
}

/// Nimbus's error answer as a [`BackendError`] class: the class tells the controller what to
/// do (retry after a while, try later, stop and tell a person), so choose it by what the
/// answer MEANS, not by its number alone. The message is Nimbus's own words: never put the
/// token, a password or the startup script in it.
async fn classify(response: reqwest::Response) -> BackendError {
    let status = response.status();
    // `Retry-After: <seconds>` on 429 and 503.
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = response
        .json::<ErrorBody>()
        .await
        .map(|b| b.error)
        .unwrap_or_default();
    let message = format!(
        "Nimbus {}: {} {}",
        status.as_u16(),
        error.code,
        error.message
    );
    match (status.as_u16(), error.code.as_str()) {
        // The machine does not exist: `get` turns it into Ok(None), `destroy` into Ok(()).
        (404, _) => BackendError::NotFound(message),
        // Too many calls: retried after `retry_after`, and the controller slows down.
        (429, _) => BackendError::RateLimited {
            message,
            retry_after,
        },
        // The token is missing, wrong or expired: no retry helps, a person must fix it.
        (401, _) => BackendError::Auth(message),
        // An account limit: no retry helps until someone raises it.
        (403, "quota_exceeded") => BackendError::Quota(message),
        (403, _) => BackendError::Permission(message),
        // The name is taken by a machine that is not ours.
        (409, _) => BackendError::Conflict(message),
        // No room for this size in this region now: retried later.
        (503, "no_capacity") => BackendError::Capacity(message),
        // Other server faults: passing, retried with backoff.
        (500..=599, _) => BackendError::Transient(message),
        // The request is wrong (bad image, too long user data ...): retrying sends it again.
        _ => BackendError::InvalidRequest(message),
    }
}

#[async_trait]
impl VmProvider for NimbusProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_startup_script_bytes: Some(NIMBUS_MAX_USER_DATA),
            ..Capabilities::default()
        }
    }

    /// Must be idempotent on `spec.owner.server_id`: after a lost answer or a restart the
    /// controller calls `create` again for the same server, and must get the same VM back.
    /// Nimbus has an idempotency key (`client_token`) for that; on a cloud without one, look
    /// the server-id label up (`list`) before creating. Every VM carries the owner tags
    /// ([`Owner::tags`]) as labels.
    #[tracing::instrument(skip_all, fields(provider = %self.name, server = %spec.owner.server_id))]
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let body = serde_json::json!({
            "name": spec.hostname,
            "client_token": spec.owner.server_id.to_string(),
            "labels": spec.owner.tags(),
            "user_data": spec.startup_script.expose(),
        });
        let response = self
            .send(self.http.post(self.url("/machines")).json(&body))
            .await?;
        let machine: Machine = response
            .json()
            .await
            .map_err(|e| BackendError::Transient(format!("Nimbus: unreadable answer: {e}")))?;
        tracing::info!(vm = %machine.id, "machine created");
        self.vm(machine)
    }

    /// Destroying a VM that does not exist is Ok: the controller may destroy twice (a retry,
    /// a restart), and "already gone" is what it wanted.
    #[tracing::instrument(skip(self), fields(provider = %self.name))]
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        match self
            .send(self.http.delete(self.url(&format!("/machines/{vm_id}"))))
            .await
        {
            Ok(_) | Err(BackendError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `Ok(None)` for a VM that does not exist.
    #[tracing::instrument(skip(self), fields(provider = %self.name))]
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        match self
            .send(self.http.get(self.url(&format!("/machines/{vm_id}"))))
            .await
        {
            Ok(response) => {
                let machine: Machine = response.json().await.map_err(|e| {
                    BackendError::Transient(format!("Nimbus: unreadable answer: {e}"))
                })?;
                self.vm(machine).map(Some)
            }
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every VM of `owner_id` that is not terminated, across ALL pages: a VM missed here looks
    /// gone to the controller, which would then make another.
    #[tracing::instrument(skip(self), fields(provider = %self.name))]
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        let label = format!("{}={owner_id}", kasm_scale::traits::OWNER_TAG);
        let mut vms = Vec::new();
        let mut page_token: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut query = vec![("label", label.clone())];
            query.extend(page_token.take().map(|t| ("page_token", t)));
            let response = self
                .send(self.http.get(self.url("/machines")).query(&query))
                .await?;
            let page: MachinePage = response
                .json()
                .await
                .map_err(|e| BackendError::Transient(format!("Nimbus: unreadable answer: {e}")))?;
            for machine in page.machines {
                let vm = self.vm(machine)?;
                if vm.state != VmState::Terminated {
                    vms.push(vm);
                }
            }
            match page.next_page_token {
                // A cloud that hands a page token back twice would keep us here for ever.
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(BackendError::Transient(format!(
                        "Nimbus: page token {next} came back twice"
                    )));
                }
                Some(next) => page_token = Some(next),
                None => return Ok(vms),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The made-up cloud: Nimbus's API, with its own tables. Not part of what you copy.
// ---------------------------------------------------------------------------------------------

mod nimbus {
    //! Nimbus's API: `POST /v1/machines` (idempotent on `client_token`), `GET /v1/machines/{id}`,
    //! `GET /v1/machines?label=k=v&page_token=t` (two machines a page), `DELETE
    //! /v1/machines/{id}`; bearer token; at most `QUOTA` live machines; a machine boots for
    //! `BOOT` after its creation.

    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::Json;
    use axum::extract::{Path, Query, Request, State};
    use axum::http::{StatusCode, header};
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;

    use super::{ApiError, ErrorBody, Machine, MachinePage};

    /// Machines a page of `GET /machines`.
    const PAGE_SIZE: usize = 2;
    /// Live machines an account may hold.
    const QUOTA: usize = 6;
    /// Largest `user_data`, in bytes.
    const MAX_USER_DATA: usize = 16 * 1024;
    /// How long a machine stays `provisioning`.
    const BOOT: Duration = Duration::from_millis(300);

    struct Row {
        machine: Machine,
        created: Instant,
    }

    #[derive(Default)]
    struct Tables {
        rows: BTreeMap<String, Row>,
        by_client_token: HashMap<String, String>,
        next: u32,
    }

    #[derive(Clone)]
    struct Cloud {
        token: Arc<str>,
        tables: Arc<Mutex<Tables>>,
    }

    impl Cloud {
        fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
            self.tables.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    fn fail(status: StatusCode, code: &str, message: &str) -> Response {
        let body = ErrorBody {
            error: ApiError {
                code: code.into(),
                message: message.into(),
            },
        };
        (status, Json(body)).into_response()
    }

    /// The machine as it is now (booted once `BOOT` has passed).
    fn current(row: &Row) -> Machine {
        let mut m = row.machine.clone();
        if m.state == "provisioning" && row.created.elapsed() >= BOOT {
            m.state = "running".into();
        }
        m
    }

    #[derive(serde::Deserialize)]
    struct NewMachine {
        name: String,
        client_token: String,
        labels: BTreeMap<String, String>,
        user_data: String,
    }

    async fn create(State(cloud): State<Cloud>, Json(new): Json<NewMachine>) -> Response {
        if new.user_data.len() > MAX_USER_DATA {
            return fail(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "user_data is longer than 16384 bytes",
            );
        }
        if new.name.is_empty() || new.name.len() > 63 {
            return fail(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "name must be 1 to 63 characters",
            );
        }
        let mut t = cloud.tables();
        // The same client token again (a retry): the machine it made, not a second one.
        if let Some(id) = t.by_client_token.get(&new.client_token)
            && let Some(row) = t.rows.get(id)
        {
            return (StatusCode::OK, Json(current(row))).into_response();
        }
        let live = t
            .rows
            .values()
            .filter(|r| r.machine.state != "terminated")
            .count();
        if live >= QUOTA {
            return fail(
                StatusCode::FORBIDDEN,
                "quota_exceeded",
                "the account holds its 6 machines",
            );
        }
        t.next += 1;
        let id = format!("nm-{:06}", t.next);
        let machine = Machine {
            id: id.clone(),
            name: new.name,
            state: "provisioning".into(),
            labels: new.labels,
            private_ip: Some(format!("10.9.0.{}", t.next % 250 + 1)),
            created_at: Some(jiff::Timestamp::now().to_string()),
        };
        t.by_client_token.insert(new.client_token, id.clone());
        t.rows.insert(
            id,
            Row {
                machine: machine.clone(),
                created: Instant::now(),
            },
        );
        (StatusCode::CREATED, Json(machine)).into_response()
    }

    async fn one(State(cloud): State<Cloud>, Path(id): Path<String>) -> Response {
        match cloud.tables().rows.get(&id) {
            Some(row) => Json(current(row)).into_response(),
            None => fail(StatusCode::NOT_FOUND, "not_found", "no such machine"),
        }
    }

    async fn delete(State(cloud): State<Cloud>, Path(id): Path<String>) -> Response {
        match cloud.tables().rows.get_mut(&id) {
            // Terminated machines stay readable for a while, as on many clouds.
            Some(row) if row.machine.state != "terminated" => {
                row.machine.state = "terminated".into();
                StatusCode::ACCEPTED.into_response()
            }
            _ => fail(StatusCode::NOT_FOUND, "not_found", "no such machine"),
        }
    }

    async fn list(
        State(cloud): State<Cloud>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let filter = q.get("label").and_then(|l| l.split_once('='));
        let after = q.get("page_token").cloned().unwrap_or_default();
        let t = cloud.tables();
        let matching: Vec<Machine> = t
            .rows
            .iter()
            .filter(|(id, _)| after.is_empty() || id.as_str() > after.as_str())
            .map(|(_, row)| current(row))
            .filter(|m| filter.is_none_or(|(k, v)| m.labels.get(k).is_some_and(|x| x == v)))
            .collect();
        let more = matching.len() > PAGE_SIZE;
        let machines: Vec<Machine> = matching.into_iter().take(PAGE_SIZE).collect();
        let next_page_token = more
            .then(|| machines.last().map(|m| m.id.clone()))
            .flatten();
        Json(MachinePage {
            machines,
            next_page_token,
        })
        .into_response()
    }

    async fn authorize(State(cloud): State<Cloud>, request: Request, next: Next) -> Response {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(&*cloud.token) {
            return fail(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing or wrong API token",
            );
        }
        next.run(request).await
    }

    /// A running Nimbus: its API address and a look at its machine table.
    pub struct Running {
        /// `http://127.0.0.1:<port>/v1`.
        pub base: String,
        tables: Arc<Mutex<Tables>>,
    }

    impl Running {
        /// (id, name, state) of every machine, terminated ones included.
        pub fn table(&self) -> Vec<(String, String, String)> {
            let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
            t.rows
                .values()
                .map(current)
                .map(|m| (m.id, m.name, m.state))
                .collect()
        }
    }

    /// Starts Nimbus's API on `127.0.0.1:0`, accepting `token`.
    pub async fn start(token: &str) -> std::io::Result<Running> {
        let cloud = Cloud {
            token: token.into(),
            tables: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/machines", get(list).post(create))
            .route("/v1/machines/{id}", get(one).delete(delete))
            .route_layer(middleware::from_fn_with_state(cloud.clone(), authorize))
            .with_state(cloud.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Running {
            base,
            tables: cloud.tables,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Using it.
// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cloud = nimbus::start("nimbus-token-of-the-example").await?;
    let token = Secret::new("nimbus-token-of-the-example");
    let provider = NimbusProvider::new("nimbus", &cloud.base, token)?;

    // 1. The contract, checked by the same suite every shipped provider passes. It panics
    //    naming the broken rule. Give it an owner id nothing else uses on the cloud.
    testkit::vm_provider_contract(&provider, "conformance-run").await;
    println!(
        "conformance suite: passed ({} machines made and destroyed)",
        cloud.table().len()
    );

    // 2. What the controller is told for Nimbus's error answers.
    let stranger = NimbusProvider::new("nimbus", &cloud.base, Secret::new("wrong-token"))?;
    let e = stranger
        .list("anyone")
        .await
        .expect_err("a wrong token is refused");
    println!(
        "wrong token: {} ({}, retryable: {})",
        e,
        e.class(),
        e.is_retryable()
    );
    let huge = testkit::vm_spec("conformance-run", 99, &"x".repeat(NIMBUS_MAX_USER_DATA + 1));
    let e = provider
        .create(&huge)
        .await
        .expect_err("too long user data is refused");
    println!(
        "too long user data: {} ({}, retryable: {})",
        e,
        e.class(),
        e.is_retryable()
    );
    let down = NimbusProvider::new("nimbus", "http://127.0.0.1:9/v1", Secret::new("t"))?;
    let e = down
        .get("nm-1")
        .await
        .expect_err("nothing listens on port 9");
    println!("no answer: {} (retryable: {})", e.class(), e.is_retryable());

    // 3. The provider in a controller: the builder takes it for the config named "nimbus".
    let config = load_str(CONFIG, Format::Toml)?.config;
    let scaler = Autoscaler::builder(config)
        .owner_id("example-broker")
        .provider(Arc::new(provider))
        .build()?;
    for _ in 0..20 {
        scaler.tick().await;
        scaler.settle().await;
        let ready = scaler.pools().iter().map(|p| p.free_sessions).sum::<u32>();
        if ready >= 2 {
            break;
        }
        // Real time: Nimbus boots a machine in 300 ms.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let free: u32 = scaler.pools().iter().map(|p| p.free_sessions).sum();
    println!("standby: {free} free sessions on Nimbus");
    let alice = SessionRequest {
        user: Some("alice".into()),
        request_id: None,
        second_session: false,
    };
    match scaler.request_session("desktops", &alice).await? {
        SessionOutcome::Assigned { server, .. } => println!("alice runs on {server}"),
        SessionOutcome::Queued { .. } => println!("alice waits"),
    }
    let live = cloud
        .table()
        .into_iter()
        .filter(|(_, _, state)| state != "terminated");
    for (id, name, state) in live {
        println!("nimbus machine {id} {name} {state}");
    }
    Ok(())
}
