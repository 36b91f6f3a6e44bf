//! `kasm-scale serve` reloaded while it runs, as a real process: SIGHUP with a valid file (a
//! raised minimum shows in the pool's free slots) and with an invalid one (the process lives,
//! the running configuration stays, every problem is logged); `POST /api/v1/reload` both ways;
//! drains through the operator's commands; broker keys and the TLS certificate rotated while a
//! client keeps calling, none of its calls refused.

use crate::common;

use common::text;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use kasm_scale_core::testkit::Fixture;
use serde_json::Value;

const OLD_KEY: &str = "reload-old-broker-key-0123456789-0123456789";
const NEW_KEY: &str = "reload-new-broker-key-0123456789-0123456789";

/// A pool of single-seat servers on the in-memory cloud that boot at once, keeping `minimum`
/// free, with the broker `keys`.
fn config_text(minimum: u32, keys: &[&str]) -> String {
    Fixture::memory_pool("p")
        .max_instances(6)
        .boot_latency(0)
        .minimum_standby(minimum)
        .require_checkin(false)
        .toml(&format!("[broker_api]\nkeys = {keys:?}\n"))
        .to_toml()
}

/// The service, killed if the test fails half-way; its stderr (JSON log lines) collected.
struct Service {
    child: Child,
    base: String,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(config: &Path, tls: Option<(&str, &str)>) -> Self {
        let mut command = Command::new(common::binary());
        command
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--tick-interval", "1"])
            .args(["--shutdown-grace", "2"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((cert, key)) = tls {
            command.args(["--tls-cert", cert, "--tls-key", key]);
        }
        let mut child = command.spawn().expect("start kasm-scale serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (lines, first) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let logs = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let line: String = first
            .recv_timeout(Duration::from_secs(60))
            .expect("the service says where it listens");
        let base = line
            .strip_prefix("kasm-scale serve: listening on ")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        Self {
            child,
            base,
            logs: Some(logs),
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success());
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Stops the service (SIGTERM) and returns its log lines' messages and fields.
    fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "it stops");
            std::thread::sleep(Duration::from_millis(50));
        };
        let logs = self.logs.take().unwrap().join().unwrap();
        (status.code(), logs)
    }
}

/// `curl` with `key` (and `cacert` over TLS): the status and the JSON body.
fn curl(
    cacert: Option<&Path>,
    key: &str,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {key}"));
    if let Some(ca) = cacert {
        command.arg("--cacert").arg(ca);
    }
    if let Some(body) = body {
        command
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(body);
    }
    let out = command.arg(url).output().expect("run curl");
    assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
    let output = text(&out.stdout);
    let (body, code) = output.rsplit_once('\n').unwrap();
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON: {body}"))
    };
    (code.trim().parse().unwrap(), value)
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_and_starting(base: &str, cacert: Option<&Path>, key: &str) -> u64 {
    let (status, body) = curl(cacert, key, "GET", &format!("{base}/api/v1/pools"), None);
    assert_eq!(status, 200, "{body}");
    let pool = &body["pools"][0];
    pool["free_sessions"].as_u64().unwrap() + pool["starting_sessions"].as_u64().unwrap()
}

/// The messages (and problems) of the JSON log lines.
fn log_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// An invalid file with two problems, both named: a URL where a host is expected, and no
/// provider of that name.
fn invalid_text() -> String {
    config_text(3, &[OLD_KEY])
        .replace(
            "upstream_auth_address = \"kasm.example.com\"",
            "upstream_auth_address = \"https://x\"",
        )
        .replace(
            "vm_provider_config_id = \"mem\"",
            "vm_provider_config_id = \"nowhere\"",
        )
}

fn kasm_scale(args: &[&str], key: &str) -> Output {
    Command::new(common::binary())
        .args(args)
        .env("KASM_SCALE_BROKER_KEY", key)
        .output()
        .expect("run kasm-scale")
}

#[test]
fn sighup_and_the_api_reload_a_valid_file_and_refuse_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    std::fs::write(&config, config_text(1, &[OLD_KEY])).unwrap();
    let mut service = Service::start(&config, None);
    let base = service.base.clone();
    wait_for("one free slot", Duration::from_secs(30), || {
        free_and_starting(&base, None, OLD_KEY) >= 1
    });

    // A raised minimum, on SIGHUP.
    std::fs::write(&config, config_text(3, &[OLD_KEY])).unwrap();
    service.signal("-HUP");
    wait_for(
        "three free slots after SIGHUP",
        Duration::from_secs(30),
        || free_and_starting(&base, None, OLD_KEY) >= 3,
    );
    assert!(service.alive(), "SIGHUP does not end the service");

    // An invalid file, on SIGHUP: the process lives, the running configuration stays.
    std::fs::write(&config, invalid_text()).unwrap();
    service.signal("-HUP");
    std::thread::sleep(Duration::from_secs(2));
    assert!(service.alive(), "an invalid file does not end the service");
    assert!(free_and_starting(&base, None, OLD_KEY) >= 3);

    // The API reload: 422 with every problem, then 200 with what changed.
    let (status, body) = curl(
        None,
        OLD_KEY,
        "POST",
        &format!("{base}/api/v1/reload"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error_message"],
        "configuration refused: the running one stays"
    );
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("zones[0].upstream_auth_address"))
            && problems.iter().any(|p| p.contains("nowhere")),
        "every problem: {problems:?}"
    );
    // The operator's command says the same, exit 1.
    let run = kasm_scale(&["reload", "--url", &base], OLD_KEY);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("422"), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("zones[0].upstream_auth_address"),
        "{}",
        text(&run.stderr)
    );

    std::fs::write(&config, config_text(2, &[OLD_KEY])).unwrap();
    let (status, body) = curl(
        None,
        OLD_KEY,
        "POST",
        &format!("{base}/api/v1/reload"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_generations"], serde_json::json!([]), "{body}");
    assert_eq!(body["tls_reloaded"], false);
    let run = kasm_scale(&["reload", "--url", &base], OLD_KEY);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));

    // A changed state store cannot be reloaded: the reason says so.
    let moved = format!(
        "{}\n[state_store]\nkind = \"file\"\npath = \"{}\"\n\n[checkin_token]\nkey = \"reload-test-check-in-key-0123456789abcdef\"\n",
        config_text(2, &[OLD_KEY]),
        dir.path().join("state.json").display()
    );
    std::fs::write(&config, moved).unwrap();
    let (status, body) = curl(
        None,
        OLD_KEY,
        "POST",
        &format!("{base}/api/v1/reload"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("state_store: changed, but a reload cannot move the live state"),
        "{body}"
    );

    // Every refusal is counted, those found before the controller's own checks too (the file
    // that does not load: SIGHUP, the API, the command; the state store).
    let out = Command::new("curl")
        .args(["-sS", &format!("{base}/metrics")])
        .output()
        .expect("run curl");
    let metrics = text(&out.stdout);
    let count = |result: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("kasm_scale_reloads_total{{result=\"{result}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(count("refused"), 4.0, "{metrics}");
    assert!(count("applied") >= 2.0, "{metrics}");

    let (code, logs) = service.stop();
    assert_eq!(code, Some(0), "{logs}");
    let lines = log_lines(&logs);
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"] == "configuration file refused: the running configuration stays"
        })
        .collect();
    assert!(
        refused.len() >= 2,
        "SIGHUP's and the API's refusals are logged: {logs}"
    );
    let first = refused[0]["fields"]["problems"].as_str().unwrap();
    assert!(
        first.contains("zones[0].upstream_auth_address") && first.contains("nowhere"),
        "every problem in the log line: {first}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "configuration file reloaded")
            .count()
            >= 2,
        "{logs}"
    );
    assert!(!logs.contains(OLD_KEY), "the key is never logged");
}

#[test]
fn drains_through_the_operators_commands() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    std::fs::write(&config, config_text(1, &[OLD_KEY])).unwrap();
    let service = Service::start(&config, None);
    let base = service.base.clone();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{OLD_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let with_file = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--url", &base, "--key-file", key_file]);
        kasm_scale(&all, "")
    };

    let run = with_file(&[
        "drain",
        "--pool",
        "p",
        "--by",
        "ops",
        "--reason",
        "patch night",
        "--until",
        "30m",
        "--then",
        "keep",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let drain: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(drain["target"]["kind"], "pool");
    assert_eq!(drain["then"], "keep");
    assert!(drain["until"].is_string(), "{drain}");

    let run = with_file(&["drains"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let list: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(list["drains"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["drains"][0]["reason"], "patch night");
    assert!(list["drains"][0]["age_seconds"].is_i64(), "{list}");

    // The key from the environment works the same.
    let run = kasm_scale(&["undrain", "--pool", "p", "--url", &base], OLD_KEY);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let run = kasm_scale(&["undrain", "--pool", "p", "--url", &base], OLD_KEY);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("pool:p is not drained"),
        "{}",
        text(&run.stderr)
    );
    let run = kasm_scale(&["drains", "--url", &base], "wrong-key-0123456789");
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains("401"), "{}", text(&run.stderr));
    // No key at all: said, nothing sent.
    let run = Command::new(common::binary())
        .args(["drains", "--url", &base])
        .env_remove("KASM_SCALE_BROKER_KEY")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        text(&run.stderr).contains("set the environment variable KASM_SCALE_BROKER_KEY"),
        "{}",
        text(&run.stderr)
    );
    let run = kasm_scale(&["generations", "--url", &base], OLD_KEY);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let generations: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(generations["generations"][0]["config"], "c");
    let (code, logs) = service.stop();
    assert_eq!(code, Some(0), "{logs}");
}

/// A self-signed certificate for 127.0.0.1 (its PEM and its key's).
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).expect("a certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn keys_and_the_certificate_rotate_while_requests_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (old_cert, old_key) = certificate();
    let (new_cert, new_key) = certificate();
    let cert = write(&dir.path().join("cert.pem"), &old_cert);
    let key = write(&dir.path().join("key.pem"), &old_key);
    // The client trusts both certificates; `new_only` trusts the new one alone.
    let both = write(
        &dir.path().join("both.pem"),
        &format!("{old_cert}{new_cert}"),
    );
    let new_only = write(&dir.path().join("new.pem"), &new_cert);
    let config = dir.path().join("service.toml");
    std::fs::write(&config, config_text(1, &[OLD_KEY])).unwrap();
    let service = Service::start(
        &config,
        Some((cert.to_str().unwrap(), key.to_str().unwrap())),
    );
    let base = service.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    let pools = format!("{base}/api/v1/pools");

    // Before: the new certificate is not served.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--cacert"])
        .arg(&new_only)
        .arg(&pools)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the old certificate is served at first"
    );

    // A client keeps calling with the old key.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = std::thread::spawn({
        let (stop, calls, refused) = (stop.clone(), calls.clone(), refused.clone());
        let (both, pools) = (both.clone(), pools.clone());
        move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = curl(Some(&both), OLD_KEY, "GET", &pools, None);
                calls.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    refused.fetch_add(1, Ordering::SeqCst);
                    failures.push(format!("{status} {body}"));
                }
            }
            failures
        }
    });
    wait_for("calls flowing", Duration::from_secs(30), || {
        calls.load(Ordering::SeqCst) >= 5
    });

    // The rotation begins: both keys, and the new certificate.
    std::fs::write(&config, config_text(1, &[NEW_KEY, OLD_KEY])).unwrap();
    std::fs::write(&cert, &new_cert).unwrap();
    std::fs::write(&key, &new_key).unwrap();
    service.signal("-HUP");
    wait_for(
        "the new key and certificate",
        Duration::from_secs(30),
        || {
            let out = Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(&new_only)
                .arg("-H")
                .arg(format!("Authorization: Bearer {NEW_KEY}"))
                .arg(&pools)
                .output()
                .unwrap();
            out.status.success() && text(&out.stdout) == "200"
        },
    );
    let at_rotation = calls.load(Ordering::SeqCst);
    wait_for("calls after the rotation", Duration::from_secs(30), || {
        calls.load(Ordering::SeqCst) >= at_rotation + 5
    });
    stop.store(true, Ordering::SeqCst);
    let failures = client.join().unwrap();
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "no call refused for the rotation: {failures:?}"
    );

    // The rotation ends: the old key is refused, the new one works.
    std::fs::write(&config, config_text(1, &[NEW_KEY])).unwrap();
    service.signal("-HUP");
    wait_for("the old key refused", Duration::from_secs(30), || {
        curl(Some(&new_only), OLD_KEY, "GET", &pools, None).0 == 401
    });
    assert_eq!(curl(Some(&new_only), NEW_KEY, "GET", &pools, None).0, 200);

    // A bad certificate pair is refused whole: the running one (and the configuration) stay.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(&config, config_text(1, &[OLD_KEY])).unwrap();
    let (status, body) = curl(
        Some(&new_only),
        NEW_KEY,
        "POST",
        &format!("{base}/api/v1/reload"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("TLS certificate"),
        "{body}"
    );
    assert_eq!(curl(Some(&new_only), NEW_KEY, "GET", &pools, None).0, 200);
    assert_eq!(curl(Some(&new_only), OLD_KEY, "GET", &pools, None).0, 401);
    let (code, logs) = service.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        !logs.contains(NEW_KEY) && !logs.contains(OLD_KEY),
        "keys are never logged"
    );
}
