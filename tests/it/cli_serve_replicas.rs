//! `kasm-scale serve` as two replicas on one PostgreSQL database (`KASM_SCALE_PG_URL`, started
//! by `.ci/run`; `KASM_SCALE_SKIP_PG=1` skips outside CI): exactly one is ready (it leads), the
//! other sends writes to it with `503` and its address; after SIGKILL of the leader the other
//! leads within the lease's TTL (3 s) and a little; SIGTERM ends the survivor cleanly.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kasm_scale_core::testkit::Fixture;

const BROKER_KEY: &str = "replica-broker-key-0123456789-0123456789";

/// Kills a replica if the test fails half-way.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `(status, body)` of a request with curl.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl (bash .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn ready(port: u16) -> (u16, String) {
    curl(&[&format!("http://127.0.0.1:{port}/readyz")])
}

pub(crate) fn fresh_database(server: &str) -> String {
    let name = format!("ks_cli_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server}: {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a database");
    });
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    format!("{base}/{name}")
}

#[test]
fn two_serve_replicas_share_one_database_and_the_survivor_takes_over() {
    let Some(server) = kasm_scale::testkit::test_server(
        "KASM_SCALE_PG_URL",
        "KASM_SCALE_SKIP_PG",
        "serve with a postgres store",
    ) else {
        return;
    };
    let url = fresh_database(&server);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("replicas.toml");
    let ports = [free_port(), free_port()];
    std::fs::write(
        &config,
        Fixture::memory_pool("p")
            .zone("upstream_auth_address", format!("127.0.0.1:{}", ports[0]))
            .max_instances(2)
            .boot_latency(0)
            .minimum_standby(1)
            .require_checkin(false)
            .toml(&format!(
                r#"
[checkin_token]
algorithm = "HS256"
key = "replica-test-check-in-key-0123456789-0123456789"

[broker_api]
keys = ["{BROKER_KEY}"]

[state_store]
kind = "postgres"
url = "{url}"
lease_ttl = 3
"#
            ))
            .to_toml(),
    )
    .unwrap();
    let start = |port: u16| {
        Replica(
            Command::new(common::binary())
                .args(["serve", "--config"])
                .arg(&config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--advertise", &format!("http://127.0.0.1:{port}")])
                .args(["--shutdown-grace", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start kasm-scale serve"),
        )
    };
    let mut replicas = [start(ports[0]), start(ports[1])];

    // Exactly one leads.
    let began = Instant::now();
    let leader = loop {
        let codes: Vec<u16> = ports.iter().map(|p| ready(*p).0).collect();
        match codes.iter().filter(|c| **c == 200).count() {
            1 if codes.iter().all(|c| *c == 200 || *c == 503) => {
                break codes.iter().position(|c| *c == 200).unwrap();
            }
            n => assert!(n <= 1, "two replicas are ready at once: {codes:?}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no replica leads: {codes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let follower = 1 - leader;
    let (status, body) = ready(ports[follower]);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"follower\"") && body.contains(&format!("127.0.0.1:{}", ports[leader])),
        "the follower names the leader: {body}"
    );
    let auth = format!("Authorization: Bearer {BROKER_KEY}");
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        &format!(
            "http://127.0.0.1:{}/api/v1/pools/p/sessions",
            ports[follower]
        ),
    ]);
    assert_eq!(status, 503, "a follower refuses a write: {body}");
    assert!(
        body.contains(&format!("http://127.0.0.1:{}", ports[leader])),
        "{body}"
    );
    let (status, body) = curl(&[
        "-H",
        &auth,
        &format!("http://127.0.0.1:{}/api/v1/pools", ports[follower]),
    ]);
    assert_eq!(status, 200, "a follower serves reads: {body}");

    // SIGKILL of the leader: the follower leads within the TTL and a little.
    replicas[leader].0.kill().unwrap();
    replicas[leader].0.wait().unwrap();
    let killed = Instant::now();
    while ready(ports[follower]).0 != 200 {
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "the survivor did not take over within 6 s (TTL 3 s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "takeover after SIGKILL: {} ms",
        killed.elapsed().as_millis()
    );
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        &format!(
            "http://127.0.0.1:{}/api/v1/pools/p/sessions",
            ports[follower]
        ),
    ]);
    assert_eq!(status, 201, "the new leader takes writes: {body}");

    // SIGTERM: a clean end.
    let survivor = &mut replicas[follower].0;
    Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status()
        .unwrap();
    let status = survivor.wait().unwrap();
    assert!(status.success(), "the survivor ends cleanly: {status}");
}
