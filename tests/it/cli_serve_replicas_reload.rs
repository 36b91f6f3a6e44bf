//! Two `kasm-scale serve` replicas on one PostgreSQL database (`KASM_SCALE_PG_URL`, started by
//! `.ci/run`; `KASM_SCALE_SKIP_PG=1` skips outside CI), each with its own copy of the file,
//! reloaded at different moments: the follower's reload changes nothing the leader does; the
//! leader acts on its own file once it reloads it; no server is torn down on the way.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kasm_scale_core::testkit::Fixture;
use serde_json::Value;

const BROKER_KEY: &str = "replica-reload-broker-key-0123456789-0123456789";

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

fn curl(method: &str, url: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
            "-X",
            method,
            "-H",
        ])
        .arg(format!("Authorization: Bearer {BROKER_KEY}"))
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    (code.trim().parse().unwrap_or(0), value)
}

fn file(path: &Path, minimum: u32, url: &str) {
    std::fs::write(
        path,
        Fixture::memory_pool("p")
            .max_instances(4)
            .boot_latency(0)
            .minimum_standby(minimum)
            .require_checkin(false)
            .toml(&format!(
                "[checkin_token]\nalgorithm = \"HS256\"\nkey = \"replica-reload-check-in-key-0123456789-0123\"\n\n\
                 [broker_api]\nkeys = [\"{BROKER_KEY}\"]\n\n\
                 [state_store]\nkind = \"postgres\"\nurl = \"{url}\"\nlease_ttl = 3\n"
            ))
            .to_toml(),
    )
    .unwrap();
}

/// The live servers' ids, as the leader lists them.
fn servers(port: u16) -> Vec<(String, String)> {
    let (status, body) = curl("GET", &format!("http://127.0.0.1:{port}/api/v1/servers"));
    assert_eq!(status, 200, "{body}");
    body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn replicas_reloading_at_different_moments_act_on_the_leaders_file() {
    let Some(server) = kasm_scale::testkit::test_server(
        "KASM_SCALE_PG_URL",
        "KASM_SCALE_SKIP_PG",
        "serve replicas with a postgres store",
    ) else {
        return;
    };
    let url = super::cli_serve_replicas::fresh_database(&server);
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let files = [dir.path().join("a.toml"), dir.path().join("b.toml")];
    for f in &files {
        file(f, 1, &url);
    }
    let start = |i: usize| {
        Replica(
            Command::new(common::binary())
                .args(["serve", "--config"])
                .arg(&files[i])
                .args(["--listen", &format!("127.0.0.1:{}", ports[i])])
                .args(["--advertise", &format!("http://127.0.0.1:{}", ports[i])])
                .args(["--shutdown-grace", "2", "--tick-interval", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start kasm-scale serve"),
        )
    };
    let _replicas = [start(0), start(1)];
    let began = Instant::now();
    let leader = loop {
        let codes: Vec<u16> = ports
            .iter()
            .map(|p| curl("GET", &format!("http://127.0.0.1:{p}/readyz")).0)
            .collect();
        if let Some(i) = codes.iter().position(|c| *c == 200) {
            break i;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no leader: {codes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let follower = 1 - leader;
    let wait_for = |what: &str, ready: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ready() {
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("the leader keeps one server", &|| {
        servers(ports[leader]).len() == 1
    });
    let first = servers(ports[leader]);

    // The follower's file and reload first: the leader goes on with its own file.
    file(&files[follower], 3, &url);
    let (status, body) = curl(
        "POST",
        &format!("http://127.0.0.1:{}/api/v1/reload", ports[follower]),
    );
    assert_eq!(status, 200, "a follower reloads its own file: {body}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        servers(ports[leader]),
        first,
        "the leader acts on its file, not the follower's"
    );

    // Then the leader's: it acts on the new minimum, and nothing is torn down.
    file(&files[leader], 3, &url);
    let (status, body) = curl(
        "POST",
        &format!("http://127.0.0.1:{}/api/v1/reload", ports[leader]),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("three servers after the leader's reload", &|| {
        servers(ports[leader]).len() == 3
    });
    let now = servers(ports[leader]);
    assert!(
        first.iter().all(|(id, _)| now.iter().any(|(n, _)| n == id)),
        "the first server is still there: {first:?} {now:?}"
    );
    assert!(
        now.iter().all(|(_, state)| state != "destroying"),
        "nothing is torn down: {now:?}"
    );
    // The follower, reading the shared state, sees the same servers.
    wait_for("the follower sees them", &|| {
        servers(ports[follower]).len() == 3
    });
}
