//! Shared by the EC2 tests: the emulator's address, configs, specs, a raw SDK client for looking
//! behind the provider, and a loopback proxy that injects faults between the provider and moto
//! and, made with [`Proxy::strict`], enforces EC2's client-token rules that moto ignores
//! ([`idempotency`]).
//!
//! Each test uses a region of its own: moto keeps state per region, so tests running in parallel
//! do not see each other's instances, and a test starts by terminating what an earlier run of it
//! left in its region (state reset per test without wiping the others').

#![allow(dead_code)]

pub mod idempotency;
pub mod lifecycle;

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::AwsVmConfig;
use tokio::net::TcpListener;

/// The guests read their user data from EC2 (for `testkit::Scenario` and
/// `testkit::check_in_starting`).
pub struct Ec2Guests(pub aws_sdk_ec2::Client);

#[async_trait::async_trait]
impl kasm_scale_core::testkit::Guests for Ec2Guests {
    async fn startup_script(&self, vm_id: &str) -> String {
        user_data(&self.0, vm_id).await
    }
}

/// The emulator's endpoint (`.ci/run` starts it). Missing, the test fails, unless
/// `KASM_SCALE_SKIP_EC2=1` opts out outside CI.
pub fn endpoint() -> Option<String> {
    kasm_scale_core::testkit::test_server(
        "KASM_SCALE_EC2_ENDPOINT",
        "KASM_SCALE_SKIP_EC2",
        "EC2 (moto)",
    )
}

/// A provider config in `region`, with `extra` TOML lines.
pub fn config(name: &str, region: &str, extra: &str) -> AwsVmConfig {
    let toml = format!(
        r#"
name = "{name}"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{region}"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 300
{extra}
"#
    );
    toml::from_str(&toml).expect("test config")
}

/// A provider on `endpoint`.
pub async fn provider_at(config: AwsVmConfig, endpoint: &str) -> AwsProvider {
    AwsProvider::builder(config)
        .endpoint_url(endpoint)
        .build()
        .await
        .expect("provider")
}

/// A raw EC2 client on the emulator, for checking what the provider did.
pub fn raw_client(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "AKIATESTTESTTESTTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// Terminates every instance of `region` (what an earlier run left there).
pub async fn reset_region(endpoint: &str, region: &str) {
    let client = raw_client(endpoint, region);
    let mut ids = Vec::new();
    let mut pages = client.describe_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("describe");
        ids.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| i.instance_id().map(str::to_owned)),
        );
    }
    for chunk in ids.chunks(500) {
        client
            .terminate_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
            .expect("terminate");
    }
}

/// A spec for server `n` of `owner`.
#[allow(unused_imports)]
pub use kasm_scale_core::testkit::vm_spec as spec;

/// The user data EC2 holds for an instance, decoded.
pub async fn user_data(client: &aws_sdk_ec2::Client, instance: &str) -> String {
    use base64::Engine;
    let attribute = client
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .expect("DescribeInstanceAttribute");
    let encoded = attribute
        .user_data()
        .and_then(|u| u.value())
        .expect("user data");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 user data");
    String::from_utf8(decoded).expect("UTF-8 user data")
}

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Pass it to the emulator and its answer back.
    Forward,
    /// Wait this long (a network round trip), then forward it.
    ForwardAfter(std::time::Duration),
    /// Pass it to the emulator, then close the connection without answering (a lost answer).
    ForwardThenDrop,
    /// Pass it to the emulator, then hold the connection without ever answering (the caller
    /// is cut off while waiting: a process killed after EC2 took its request).
    ForwardThenHang,
    /// Neither pass it on nor answer (a process killed before EC2 got its request).
    Hang,
    /// Answer with an EC2 error of this HTTP status and code, without asking the emulator.
    Error(u16, &'static str),
    /// Answer with this HTTP status and XML body.
    Answer(u16, String),
}

/// The request the proxy is deciding on.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The EC2 action (`RunInstances`, …).
    pub action: String,
    /// The form-encoded body.
    pub body: String,
    /// How many requests with this action came before this one.
    pub nth: usize,
    /// The `Authorization` header (SigV4: names the access key id, never the secret).
    pub authorization: String,
}

type Rule = dyn Fn(&Seen) -> Fault + Send + Sync;

/// A loopback HTTP proxy in front of the emulator.
pub struct Proxy {
    /// Its endpoint (`http://127.0.0.1:port`).
    pub url: String,
    /// Every request it received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// EC2's client-token table, when strict.
    pub table: Option<Arc<idempotency::Table>>,
    /// The instances terminated and stopped through it, when strict (EC2's lifecycle rules).
    pub lifecycle: Option<Arc<lifecycle::Lifecycle>>,
    /// Requests the emulator answered, by action (a hung or dropped answer counts: EC2 took it).
    answered: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` deciding by `rule`.
    pub async fn start(
        upstream: &str,
        rule: impl Fn(&Seen) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        Self::launch(upstream, rule, None).await
    }

    /// Starts a proxy to `upstream` deciding by `rule` that also answers `RunInstances` as EC2
    /// does for a client token it has seen ([`idempotency`]), from its own memory of the first
    /// answer: what moto, which ignores client tokens, cannot show; and refuses to stop or start
    /// an instance terminated through it, and to change the type of one it did not stop, as EC2
    /// does and moto does not ([`lifecycle`]).
    pub async fn strict(
        upstream: &str,
        rule: impl Fn(&Seen) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        Self::launch(upstream, rule, Some(Arc::default())).await
    }

    async fn launch(
        upstream: &str,
        rule: impl Fn(&Seen) -> Fault + Send + Sync + 'static,
        table: Option<Arc<idempotency::Table>>,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let lifecycle = table
            .as_ref()
            .map(|_| Arc::<lifecycle::Lifecycle>::default());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answered: Arc<Mutex<Vec<String>>> = Arc::default();
        let rule: Arc<Rule> = Arc::new(rule);
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let front = Front {
            rule,
            log: seen.clone(),
            answered: answered.clone(),
            upstream,
            client,
            table: table.clone(),
            lifecycle: lifecycle.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let front = front.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let front = front.clone();
                    async move { front.handle(req).await }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            url,
            seen,
            table,
            lifecycle,
            answered,
            task,
        }
    }

    /// How many requests of `action` the emulator answered (or EC2's rules answered from
    /// memory), whether or not the answer reached the caller.
    pub fn answered(&self, action: &str) -> usize {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|a| *a == action)
            .count()
    }

    /// The form-encoded bodies of the requests of `action` it received, in order.
    pub fn bodies(&self, action: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.action == action)
            .map(|s| s.body.clone())
            .collect()
    }

    /// How many requests of `action` it received.
    pub fn count(&self, action: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.action == action)
            .count()
    }
}

type Upstream = HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// What every connection of a proxy shares.
#[derive(Clone)]
struct Front {
    rule: Arc<Rule>,
    log: Arc<Mutex<Vec<Seen>>>,
    answered: Arc<Mutex<Vec<String>>>,
    upstream: Arc<str>,
    client: Upstream,
    table: Option<Arc<idempotency::Table>>,
    lifecycle: Option<Arc<lifecycle::Lifecycle>>,
}

fn xml_answer(status: u16, xml: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(xml.into()))
        .expect("a response")
}

impl Front {
    async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        let action = text
            .split('&')
            .find_map(|p| p.strip_prefix("Action="))
            .unwrap_or_default()
            .to_owned();
        let seen = {
            let mut log = self.log.lock().unwrap();
            let nth = log.iter().filter(|s| s.action == action).count();
            let authorization = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let seen = Seen {
                action,
                body: text,
                nth,
                authorization,
            };
            log.push(seen.clone());
            seen
        };
        let fault = match (self.rule)(&seen) {
            Fault::Error(status, code) => {
                return Ok(xml_answer(
                    status,
                    idempotency::error_xml(code, "injected by the test proxy"),
                ));
            }
            Fault::Answer(status, xml) => return Ok(xml_answer(status, xml)),
            Fault::Hang => std::future::pending().await,
            fault => fault,
        };
        if let Fault::ForwardAfter(delay) = fault {
            tokio::time::sleep(delay).await;
        }
        let region = idempotency::region(&seen.authorization);
        let ids = instance_ids(&seen.body);
        if let Some((code, message)) = self
            .lifecycle
            .as_ref()
            .and_then(|t| t.refuse(&region, &seen.action, &seen.body, &ids))
        {
            return Ok(xml_answer(400, idempotency::error_xml(code, &message)));
        }
        let strict = self
            .table
            .as_ref()
            .filter(|_| seen.action == "RunInstances");
        let decision = strict.map_or(idempotency::Decision::Forward, |t| {
            t.decide(&region, &seen.body)
        });
        let answer = match decision {
            idempotency::Decision::Refuse {
                status,
                code,
                message,
            } => return Ok(xml_answer(status, idempotency::error_xml(code, &message))),
            idempotency::Decision::Repeat { status, body } => xml_answer(status, body),
            idempotency::Decision::Forward => {
                let answer = self.forward(&parts, body).await?;
                if let Some(table) = strict {
                    let (head, body) = answer.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map_err(std::io::Error::other)?
                        .to_bytes();
                    table.bind(&region, &seen.body, head.status.as_u16(), &bytes);
                    Response::from_parts(head, Full::new(bytes))
                } else {
                    answer
                }
            }
        };
        if let Some(t) = &self.lifecycle
            && answer.status().is_success()
        {
            t.record(&region, &seen.action, &ids);
        }
        self.answered.lock().unwrap().push(seen.action.clone());
        match fault {
            Fault::ForwardThenDrop => {
                Err(std::io::Error::other("answer dropped by the test proxy"))
            }
            Fault::ForwardThenHang => std::future::pending().await,
            _ => Ok(answer),
        }
    }

    /// The request to the emulator, and its whole answer.
    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let uri = format!(
            "{}{}",
            self.upstream,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut forward = Request::builder().method(parts.method.clone()).uri(uri);
        for (name, value) in &parts.headers {
            forward = forward.header(name, value);
        }
        let forward = forward
            .body(Full::new(body))
            .map_err(std::io::Error::other)?;
        let answer = self
            .client
            .request(forward)
            .await
            .map_err(std::io::Error::other)?;
        let (head, body) = answer.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok(Response::from_parts(head, Full::new(body)))
    }
}

/// The instance ids (`InstanceId.N`) of a form-encoded EC2 request.
pub fn instance_ids(body: &str) -> Vec<String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| k.starts_with("InstanceId.") || *k == "InstanceId")
        .map(|(_, v)| v.replace("%2D", "-").replace("%2d", "-"))
        .collect()
}

/// Whether `id` has the form of an EC2 instance id: `i-` and 8 or 17 lowercase hexadecimal
/// digits (EC2's resource id formats: the short one before 2016, the long one since).
pub fn well_formed_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// What real EC2 answers and moto does not: per EC2's error-code reference, an instance id that
/// is not of that form is refused with `400 InvalidInstanceID.Malformed` ("the specified ID for
/// the resource you are trying to access is not valid") before anything is looked up, by every
/// action taking instance ids. `None` when the request has no malformed id.
pub fn malformed_id(seen: &Seen) -> Option<Fault> {
    instance_ids(&seen.body)
        .iter()
        .any(|id| !well_formed_instance_id(id))
        .then_some(Fault::Error(400, "InvalidInstanceID.Malformed"))
}

/// A controller on EC2 at `endpoint` in `region`: the shared scenario's pool
/// (`testkit::scenario_config`) on one AWS VM provider config `vm` with `provider_extra` TOML
/// lines (the instance type among them) and `autoscale_extra` for its auto-scale config, the
/// owner id unique per run (moto lists terminated instances of earlier runs for a while).
pub async fn ec2_controller(
    endpoint: &str,
    region: &str,
    provider_extra: &str,
    autoscale_extra: &str,
) -> (
    kasm_scale_core::controller::Autoscaler,
    Arc<AwsProvider>,
    String,
) {
    use kasm_scale_core::config::VmProviderConfig;
    let config = kasm_scale_core::testkit::scenario_config(
        &format!(
            r##"
[[vm_providers]]
provider = "aws"
name = "vm"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{region}"
aws_ec2_ami_id = "ami-12c6146b"
aws_endpoint_url = "{endpoint}"
max_instances = 20
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"
{provider_extra}
"##
        ),
        autoscale_extra,
    );
    let VmProviderConfig::Aws(aws) = config.vm_providers[0].clone() else {
        panic!("an AWS provider")
    };
    let provider = Arc::new(AwsProvider::builder(aws).build().await.expect("provider"));
    let owner = format!("ec2-{region}-{}", uuid::Uuid::new_v4());
    let scaler = kasm_scale_core::controller::Autoscaler::builder(config)
        .owner_id(&owner)
        .provider(provider.clone())
        .build()
        .expect("controller");
    (scaler, provider, owner)
}
