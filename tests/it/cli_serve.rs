//! `kasm-scale serve` as a real process with the in-memory cloud: the built-in Linux startup
//! script a server received runs under real `bash` and checks in with real `curl` over TLS (a
//! throw-away certificate the script's curl trusts through `CURL_CA_BUNDLE`); the server becomes
//! ready; SIGTERM stops the service cleanly.

use crate::common;

use common::{kasm_scale, text};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kasm_scale_core::testkit::Fixture;

/// The broker's API key in the service's configuration.
const BROKER_KEY: &str = "e2e-broker-key-0123456789-0123456789";

/// A certificate and key for 127.0.0.1, written to `dir`.
fn throwaway_certificate(dir: &Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("a certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
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

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_guest_runs_the_builtin_linux_script_and_checks_in_over_https() {
    for tool in ["bash", "curl"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed (bash .ci/run installs it)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = throwaway_certificate(dir.path());
    let scripts = dir.path().join("guests");
    std::fs::create_dir(&scripts).unwrap();
    let port = free_port();
    let config = dir.path().join("service.toml");
    std::fs::write(
        &config,
        Fixture::memory_pool("p")
            .zone("upstream_auth_address", format!("127.0.0.1:{port}"))
            .max_instances(2)
            .provider_without("startup_script")
            .provider("startup_script_builtin", "linux")
            .boot_latency(0)
            .minimum_standby(1)
            .require_checkin(true)
            .toml(&format!("[broker_api]\nkeys = [\"{BROKER_KEY}\"]\n"))
            .to_toml(),
    )
    .unwrap();
    let mut child = Command::new(common::binary())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--shutdown-grace",
            "5",
        ])
        .arg("--guest-scripts")
        .arg(&scripts)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kasm-scale serve");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let service = Service(child);
    let (lines, listening) = mpsc::channel();
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
    let first = listening
        .recv_timeout(Duration::from_secs(60))
        .expect("the service says where it listens");
    assert_eq!(
        first,
        format!("kasm-scale serve: listening on https://127.0.0.1:{port}")
    );

    // The first tick creates one server; its guest receives the rendered script.
    let mut script = None;
    wait_for("a guest script", Duration::from_secs(30), || {
        script = std::fs::read_dir(&scripts)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "sh"));
        script.is_some()
    });
    let script = script.unwrap();
    // What the script does to its VM (name the host, install and start xrdp, create users)
    // must not happen to this machine: stand-ins record the calls instead. Only bash, cat,
    // printf, seq, sleep and curl are real.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("calls.log");
    for tool in [
        "hostnamectl",
        "apt-get",
        "dnf",
        "systemctl",
        "realm",
        "useradd",
        "chpasswd",
        "id",
    ] {
        std::fs::write(
            bin.join(tool),
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 0\n",
                calls.display()
            ),
        )
        .unwrap();
        Command::new("chmod")
            .arg("+x")
            .arg(bin.join(tool))
            .status()
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let guest = Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("CURL_CA_BUNDLE", &cert)
        .output()
        .expect("run the guest script");
    assert_eq!(
        guest.status.code(),
        Some(0),
        "the script's check-in succeeds: {}",
        text(&guest.stderr)
    );

    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("hostnamectl set-hostname kasm-")),
        "the script named the host through the stand-in: {calls}"
    );

    // The broker asks for a session with curl: the ready server takes it.
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-fsS", "--cacert", &cert, "-H"])
            .arg(format!("Authorization: Bearer {BROKER_KEY}"))
            .args(args)
            .output()
            .expect("run curl");
        assert_eq!(
            out.status.code(),
            Some(0),
            "curl {args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    let base = format!("https://127.0.0.1:{port}/api/v1");
    let session = curl(&["-X", "POST", &format!("{base}/pools/p/sessions")]);
    assert_eq!(session["state"], "assigned", "{session}");
    let server_name = session["server"]["hostname"].as_str().unwrap().to_owned();
    let servers = curl(&[&format!("{base}/servers")]);
    let ours = servers["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == server_name.as_str())
        .expect("the server is listed");
    assert_eq!(ours["state"], "running");
    assert_eq!(ours["sessions"], 1);
    assert!(
        ours["reported_status"]
            .as_str()
            .unwrap()
            .starts_with("running")
    );

    // Stop: SIGTERM ends the service cleanly.
    let pid = service.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut service = service;
    let mut status = None;
    wait_for("the service stops", Duration::from_secs(30), || {
        status = service.0.try_wait().unwrap();
        status.is_some()
    });
    let logs = logs.join().unwrap();
    assert_eq!(status.unwrap().code(), Some(0), "{logs}");
    // One JSON object per log line.
    let messages: Vec<String> = logs
        .lines()
        .map(|l| {
            let line: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON log line: {l}"));
            line["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        messages.iter().any(|m| m == "server ready"),
        "the check-in made it ready: {logs}"
    );
    assert!(messages.iter().any(|m| m == "stopped"), "{logs}");
    let token = std::fs::read_to_string(&script)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN=eyJ"))
        .map(|rest| format!("eyJ{rest}"))
        .expect("the token in the script");
    assert!(!logs.contains(&token), "the token is never logged");
}

#[test]
fn plain_http_is_refused_off_loopback_and_a_bad_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    std::fs::write(
        &config,
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 1

[[pools]]
server_pool_name = "p"
"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = kasm_scale(&["serve", "--config", config, "--listen", "0.0.0.0:0"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("plain HTTP on 0.0.0.0:0 would carry check-in tokens in clear"),
        "{}",
        text(&run.stderr)
    );
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[zones]]\nzone_name = \"default\"\nupstream_auth_address = \"https://x\"\n",
    )
    .unwrap();
    let run = kasm_scale(&["serve", "--config", broken.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("zones[0].upstream_auth_address"),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_one_and_both_are_logged() {
    let hard = Command::new("bash")
        .args(["-c", "ulimit -H -n"])
        .output()
        .expect("bash");
    let hard: u64 = text(&hard.stdout).trim().parse().expect("a number");
    assert!(
        hard > 600,
        "this test needs a hard open-file limit above 600, got {hard}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    std::fs::write(
        &config,
        "[[zones]]\nzone_name = \"default\"\nupstream_auth_address = \"kasm.example.com\"\n\n\
         [[vm_providers]]\nprovider = \"memory\"\nname = \"mem\"\nmax_instances = 1\n\n\
         [[pools]]\nserver_pool_name = \"p\"\n",
    )
    .unwrap();
    // The service starts with a soft limit of 512, as a default shell or unit would give it.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg("ulimit -S -n 512 && exec \"$0\" \"$@\"")
        .arg(common::binary())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--max-connections", "1000000"])
        .env("RUST_LOG", "kasm_scale_http=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kasm-scale serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let service = Service(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("listening on http://127.0.0.1:"), "{line}");
    drop(service);
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).unwrap();
    assert!(
        logs.contains("\"soft_before\":512") && logs.contains(&format!("\"soft\":{hard}")),
        "the limit before and after is logged:\n{logs}"
    );
    // The cap asked for does not fit: it is lowered to the limit less a reserve, and said.
    assert!(
        logs.contains("connection cap lowered to fit the open-file limit")
            && logs.contains(&format!("\"max_connections\":{}", hard - 256)),
        "{logs}"
    );
}

#[test]
fn the_published_demo_keys_are_refused_off_loopback() {
    for example in [
        "examples/config/service-memory.toml",
        "examples/config/replicas.toml",
    ] {
        let file = std::fs::read_to_string(example).unwrap();
        assert!(file.contains("demo-only-"), "{example} has demo keys");
        let run = kasm_scale(&[
            "serve",
            "--config",
            example,
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
        ]);
        assert_eq!(run.status.code(), Some(1), "{example}");
        let err = text(&run.stderr);
        assert!(
            err.contains("is a demo key published in the example configurations"),
            "{example}: {err}"
        );
        assert!(
            !err.contains("demo-only-"),
            "the key itself is not shown: {err}"
        );
    }
}

#[test]
fn a_real_cloud_needs_an_owner_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    std::fs::write(
        &config,
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "aws"
name = "ec2"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "us-east-1"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 2

[[pools]]
server_pool_name = "p"
"#,
    )
    .unwrap();
    let run = kasm_scale(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = text(&run.stderr);
    assert!(
        err.contains("--owner-id is required with a real cloud (vm_providers `ec2`)"),
        "{err}"
    );
}

#[test]
fn a_second_serve_on_the_same_state_file_refuses_to_start_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = dir.path().join("service.toml");
    std::fs::write(
        &config,
        format!(
            "[[zones]]\nzone_name = \"default\"\nupstream_auth_address = \"kasm.example.com\"\n\n\
             [[vm_providers]]\nprovider = \"memory\"\nname = \"mem\"\nmax_instances = 1\n\n\
             [[pools]]\nserver_pool_name = \"p\"\n\n\
             [checkin_token]\nalgorithm = \"HS256\"\nkey = \"lock-test-hs256-key-0123456789-0123456789\"\n\n\
             [state_store]\nkind = \"file\"\npath = \"{}\"\n",
            state.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kasm-scale serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let first = Service(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let second = kasm_scale(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(second.status.code(), Some(1));
    let err = text(&second.stderr);
    assert!(
        err.contains("is used by another process (pid ")
            && err.contains(&format!("pid {}", first.0.id())),
        "{err}"
    );
    drop(first);
}
