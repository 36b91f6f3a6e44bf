//! Shared by the EC2 tests: the emulator's address, configs, specs, a raw SDK client for looking
//! behind the provider, and a loopback proxy that injects faults between the provider and moto.
//!
//! Each test uses a region of its own: moto keeps state per region, so tests running in parallel
//! do not see each other's instances, and a test starts by terminating what an earlier run of it
//! left in its region (state reset per test without wiping the others').

#![allow(dead_code)]

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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let rule: Arc<Rule> = Arc::new(rule);
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (rule, log, upstream, client) =
                    (rule.clone(), log.clone(), upstream.clone(), client.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (rule, log, upstream, client) =
                        (rule.clone(), log.clone(), upstream.clone(), client.clone());
                    async move { handle(req, &*rule, &log, &upstream, &client).await }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, seen, task }
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

async fn handle(
    req: Request<Incoming>,
    rule: &Rule,
    log: &Mutex<Vec<Seen>>,
    upstream: &str,
    client: &Upstream,
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
        let mut log = log.lock().unwrap();
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
    let (status, xml) = match rule(&seen) {
        Fault::Error(status, code) => (
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error></Errors><RequestID>test</RequestID></Response>"
            ),
        ),
        Fault::Answer(status, xml) => (status, xml),
        fault @ (Fault::Forward | Fault::ForwardThenDrop | Fault::ForwardAfter(_)) => {
            if let Fault::ForwardAfter(delay) = fault {
                tokio::time::sleep(delay).await;
            }
            let uri = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let mut forward = Request::builder().method(parts.method).uri(uri);
            for (name, value) in &parts.headers {
                forward = forward.header(name, value);
            }
            let forward = forward
                .body(Full::new(body))
                .map_err(std::io::Error::other)?;
            let answer = client
                .request(forward)
                .await
                .map_err(std::io::Error::other)?;
            let (head, body) = answer.into_parts();
            let body = body
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            if matches!(fault, Fault::ForwardThenDrop) {
                return Err(std::io::Error::other("answer dropped by the test proxy"));
            }
            return Ok(Response::from_parts(head, Full::new(body)));
        }
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .expect("a response"))
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
