//! `kasm-scale serve` stopped by SIGTERM in the middle of a burst of session requests, then
//! started again on the same state file and the same cloud (EC2 through the moto emulator
//! `.ci/run` starts): no session the first process accepted is lost, and every instance it
//! created, finished or half-made, is a server of the second one (none unaccounted for, none
//! made twice).

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kasm_scale::aws::AwsProvider;
use kasm_scale::config::VmProviderConfig;
use kasm_scale::traits::VmProvider;
use serde_json::Value;

const BROKER_KEY: &str = "restart-broker-key-0123456789-0123456789";
/// Requests in the burst.
const BURST: usize = 40;
/// Its own moto region: no other test's instances are listed.
const REGION: &str = "ap-southeast-2";

/// The emulator's endpoint. Missing, the test fails, unless `KASM_SCALE_SKIP_EC2=1` opts out
/// outside CI (and says so).
fn moto() -> Option<String> {
    if let Ok(endpoint) = std::env::var("KASM_SCALE_EC2_ENDPOINT") {
        return Some(endpoint);
    }
    let skip = std::env::var("KASM_SCALE_SKIP_EC2").is_ok_and(|v| v == "1");
    if skip && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED (KASM_SCALE_SKIP_EC2=1): no EC2 emulator, serve's restart not tested");
        return None;
    }
    panic!(
        "KASM_SCALE_EC2_ENDPOINT is not set: this test needs the EC2 emulator (bash .ci/run \
         starts it; outside CI, KASM_SCALE_SKIP_EC2=1 skips it)"
    );
}

fn provider_toml(endpoint: &str) -> String {
    format!(
        r#"provider = "aws"
name = "ec2"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{REGION}"
aws_endpoint_url = "{endpoint}"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 8
"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the service if the test fails half-way.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, port: u16, owner: &str) -> Service {
    start_with(config, port, owner, &[])
}

fn start_with(config: &Path, port: u16, owner: &str, extra: &[&str]) -> Service {
    let mut child = Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--owner-id", owner, "--shutdown-grace", "20"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kasm-scale serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the service says where it listens");
    assert!(first.contains("listening on"), "{first}");
    let service = Service(child);
    let url = format!("http://127.0.0.1:{port}/readyz");
    let start = Instant::now();
    while curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]).stdout != b"200" {
        assert!(start.elapsed() < Duration::from_secs(60), "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    service
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(args)
        .output()
        .expect("curl is needed (bash .ci/run installs it)")
}

/// A broker API call: (status, body).
fn api(port: u16, method: &str, path: &str) -> (u16, Value) {
    api_with(port, method, path, None)
}

/// A broker API call with a JSON body: (status, body).
fn api_with(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let data: Vec<&str> = match body {
        Some(b) => vec!["-H", "Content-Type: application/json", "--data-binary", b],
        None => vec![],
    };
    let out = curl(
        &[
            &["-s", "-X", method][..],
            &data,
            &[
                "-H",
                &format!("Authorization: Bearer {BROKER_KEY}"),
                "-w",
                "\n%{http_code}",
                "--max-time",
                "30",
                &format!("http://127.0.0.1:{port}{path}"),
            ],
        ]
        .concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let code = code.trim().parse().unwrap_or(0);
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn signal_term(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_during_a_burst_loses_no_session_and_the_next_start_knows_every_instance() {
    let Some(endpoint) = moto() else { return };
    let owner = format!("restart-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = dir.path().join("service.toml");
    let provider = provider_toml(&endpoint);
    std::fs::write(
        &config,
        format!(
            r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "127.0.0.1"

[[vm_providers]]
{provider}
[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "ec2"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
require_checkin = false

[checkin_token]
algorithm = "HS256"
key = "restart-test-hs256-key-0123456789-0123456789"

[broker_api]
keys = ["{BROKER_KEY}"]

[state_store]
kind = "file"
path = "{}"
"#,
            state.display()
        ),
    )
    .unwrap();

    // The first process, and a burst of requests; SIGTERM once some have been answered.
    let port = free_port();
    let mut first = start(&config, port, &owner);
    let (tx, answers) = mpsc::channel();
    // All at once, right after the first tick started creating the standby servers.
    let go = std::sync::Arc::new(std::sync::Barrier::new(BURST));
    let workers: Vec<_> = (0..BURST)
        .map(|_| {
            let (tx, go) = (tx.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let _ = tx.send(api(port, "POST", "/api/v1/pools/p/sessions"));
            })
        })
        .collect();
    drop(tx);
    let mut accepted: Vec<(u64, Value)> = Vec::new();
    let mut refused: Vec<u16> = Vec::new();
    let mut record = |(code, body): (u16, Value)| match code {
        201 | 202 => accepted.push((body["session"].as_u64().expect("a session id"), body)),
        // Not accepted: nothing to keep (the connection was refused or closed at shutdown).
        other => refused.push(other),
    };
    for _ in 0..BURST / 4 {
        record(answers.recv().expect("an answer"));
    }
    signal_term(&first.0);
    for answer in answers.iter() {
        record(answer);
    }
    for w in workers {
        w.join().unwrap();
    }
    let exit = first.0.wait().expect("the first process ends");
    assert!(exit.success(), "SIGTERM ends serve cleanly: {exit}");
    assert!(accepted.len() >= BURST / 4, "{} accepted", accepted.len());
    // Refused or closed connections (curl's 000), or 503 while shutting down; never a 5xx
    // for a request the service took.
    assert!(
        refused.iter().all(|c| *c == 0 || *c == 503),
        "answers: {refused:?}"
    );
    eprintln!(
        "{} accepted, {} not accepted ({refused:?}) at the shutdown",
        accepted.len(),
        refused.len()
    );

    // The second process on the same state and cloud.
    let port = free_port();
    let second = start(&config, port, &owner);
    for (session, before) in &accepted {
        let (code, now) = api(port, "GET", &format!("/api/v1/sessions/{session}"));
        assert_eq!(
            code, 200,
            "session {session} ({before}) is lost after the restart"
        );
        if before["state"] == "assigned" {
            assert_eq!(now["state"], "assigned", "session {session}: {now}");
            assert_eq!(
                now["server"]["id"], before["server"]["id"],
                "session {session} moved"
            );
        }
    }

    // Every instance of ours in the cloud is a server of the second process, once it has
    // reconciled (its first reconcile runs before /readyz says ready).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = kasm_scale::load_file(&config).expect("the test's config");
    let Some(VmProviderConfig::Aws(aws)) = loaded.config.vm_providers.first().cloned() else {
        panic!("the test's config has its EC2 provider first");
    };
    let cloud = runtime.block_on(async {
        AwsProvider::builder(aws)
            .endpoint_url(&endpoint)
            .build()
            .await
            .expect("an EC2 client")
    });
    let instances: Vec<_> = runtime
        .block_on(cloud.list(&owner))
        .expect("list")
        .into_iter()
        .filter(|vm| !vm.state.is_dead())
        .collect();
    let (_, servers) = api(port, "GET", "/api/v1/servers");
    let servers = servers["servers"].as_array().expect("servers").clone();
    let known: Vec<&str> = servers.iter().filter_map(|s| s["vm_id"].as_str()).collect();
    for vm in &instances {
        assert!(
            known.contains(&vm.vm_id.as_str()),
            "instance {} is unaccounted for after the restart; servers: {servers:?}",
            vm.vm_id
        );
    }
    assert!(
        instances.len() <= 8,
        "{} instances: more than max_instances, something was made twice",
        instances.len()
    );
    for s in &servers {
        assert_ne!(
            s["sessions_unknown"], true,
            "{s}: its record was lost (adopted with unknown sessions)"
        );
    }

    // Clean up: the second process stops, the instances go.
    let mut second = second;
    signal_term(&second.0);
    let exit = second.0.wait().expect("the second process ends");
    assert!(exit.success(), "SIGTERM ends serve cleanly: {exit}");
    runtime.block_on(async {
        for vm in cloud.list(&owner).await.unwrap_or_default() {
            let _ = cloud.destroy(&vm.vm_id).await;
        }
    });
}

/// Polls `ready` every 200 ms for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `serve` on the memory store, restarted with EC2 (moto) VMs running: their sessions are
/// unknown, so they are held full; the broker reports them through the API, and the pool
/// scales in as it should: a server reported empty after its session goes, one never reported
/// is taken as empty after the unknown-sessions timeout and goes too; the one with a session
/// and the standby stay.
#[test]
fn after_a_restart_on_the_memory_store_the_broker_reports_sessions_and_the_pool_scales_in() {
    let Some(endpoint) = moto() else { return };
    let owner = format!("report-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    let provider = provider_toml(&endpoint).replace(REGION, "ap-northeast-3");
    std::fs::write(
        &config,
        format!(
            r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "127.0.0.1"

[[vm_providers]]
{provider}
[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "ec2"
connection_type = "RDP"
minimum_pool_standby_sessions = 1
require_checkin = false

[checkin_token]
algorithm = "HS256"
key = "report-test-hs256-key-0123456789-0123456789"

[broker_api]
keys = ["{BROKER_KEY}"]
"#
        ),
    )
    .unwrap();
    let fast = ["--tick-interval", "1", "--unknown-sessions-timeout", "15"];

    // Three sessions on three single-use servers, and one standby server.
    let port = free_port();
    let mut first = start_with(&config, port, &owner, &fast);
    let sessions: Vec<u64> = (0..3)
        .map(|_| {
            let (code, body) = api(port, "POST", "/api/v1/pools/p/sessions");
            assert!(code == 201 || code == 202, "{code} {body}");
            body["session"].as_u64().unwrap()
        })
        .collect();
    let mut on: Vec<String> = Vec::new();
    wait_for("three sessions seated", Duration::from_secs(60), || {
        on = sessions
            .iter()
            .filter_map(|s| {
                let (_, b) = api(port, "GET", &format!("/api/v1/sessions/{s}"));
                b["server"]["id"].as_str().map(str::to_owned)
            })
            .collect();
        on.len() == 3
    });
    wait_for("a free standby server", Duration::from_secs(60), || {
        let (_, pools) = api(port, "GET", "/api/v1/pools");
        pools["pools"][0]["free_sessions"].as_u64() == Some(1)
    });
    signal_term(&first.0);
    assert!(first.0.wait().unwrap().success());

    // The second process lost everything but the cloud: every running VM is adopted, held full.
    let port = free_port();
    let mut second = start_with(&config, port, &owner, &fast);
    let mut servers: Vec<Value> = Vec::new();
    wait_for("four adopted servers", Duration::from_secs(60), || {
        let (_, body) = api(port, "GET", "/api/v1/servers");
        servers = body["servers"].as_array().cloned().unwrap_or_default();
        servers
            .iter()
            .filter(|s| s["sessions_unknown"] == true)
            .count()
            == 4
    });
    // The adopted ones only (the new process may already have made a standby server of its own).
    servers.retain(|s| s["sessions_unknown"] == true);
    let standby: String = servers
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| !on.contains(id))
        .expect("the standby server");
    let report = |id: &str, body: &str| {
        api_with(
            port,
            "POST",
            &format!("/api/v1/servers/{id}/sessions"),
            Some(body),
        )
    };
    // The broker's report: one session still on the first, the second's ended during the
    // restart, the standby never had one; the third is not reported.
    let (code, body) = report(&on[0], r#"{"sessions": 1, "used": true}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(report(&on[1], r#"{"sessions": 0, "used": true}"#).0, 200);
    assert_eq!(report(&standby, r#"{"sessions": 0, "used": false}"#).0, 200);
    let (code, body) = report(&uuid::Uuid::new_v4().to_string(), r#"{"sessions": 0}"#);
    assert_eq!(code, 404, "{body}");
    assert_eq!(report("not-an-id", r#"{"sessions": 0}"#).0, 400);

    let ids = |port: u16| -> Vec<String> {
        let (_, body) = api(port, "GET", "/api/v1/servers");
        body["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|s| s["state"] != "destroying")
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // The emptied single-use server goes; the unreported one is still held.
    wait_for(
        "the reported-empty server destroyed",
        Duration::from_secs(60),
        || !ids(port).contains(&on[1]),
    );
    assert!(ids(port).contains(&on[2]), "held until the timeout");
    // Past the timeout the unreported server is taken as empty and used, and goes.
    wait_for(
        "the unreported server destroyed",
        Duration::from_secs(60),
        || !ids(port).contains(&on[2]),
    );
    let left = ids(port);
    assert!(left.contains(&on[0]) && left.contains(&standby), "{left:?}");
    // While every adopted server was held full, the pool made a new standby server (its
    // minimum); that one and the reported standby are its idle surplus now, scaled in on
    // Kasm's downscale backoff. No other adopted server is left.
    let adopted: Vec<&Value> = servers.iter().collect();
    for id in &left {
        if id != &on[0] && id != &standby {
            assert!(
                !adopted.iter().any(|s| s["id"] == id.as_str()),
                "adopted server {id} kept: {left:?}"
            );
        }
    }
    assert!(left.len() <= 3, "{left:?}");

    signal_term(&second.0);
    assert!(second.0.wait().unwrap().success());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = kasm_scale::load_file(&config).expect("the test's config");
    let Some(VmProviderConfig::Aws(aws)) = loaded.config.vm_providers.first().cloned() else {
        panic!("the test's config has its EC2 provider first");
    };
    runtime.block_on(async {
        let cloud = AwsProvider::builder(aws)
            .endpoint_url(&endpoint)
            .build()
            .await
            .expect("an EC2 client");
        let running: Vec<_> = cloud
            .list(&owner)
            .await
            .unwrap()
            .into_iter()
            .filter(|vm| !vm.state.is_dead())
            .collect();
        assert_eq!(
            running.len(),
            left.len(),
            "only the kept servers run: {running:?}"
        );
        for vm in running {
            let _ = cloud.destroy(&vm.vm_id).await;
        }
    });
}
