//! Runs each example a user copies and checks what it prints, so that an example that still
//! compiles but no longer works fails CI. `cargo test` builds the examples (into
//! `target/<profile>/examples/`) before it runs the tests; `policy_test` is a test itself and
//! `cargo test` runs it.

use std::path::PathBuf;
use std::process::Command;

/// Runs example `name` as `cargo run --example` would and returns its stdout; fails with its
/// stderr when it exits non-zero.
fn run_example(name: &str) -> String {
    // This test runs from `target/<profile>/deps/`; cargo puts the examples beside it.
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"))
        .unwrap_or_else(|| PathBuf::from("target/debug/examples"));
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: `cargo test --all-features` builds the examples before the tests \
         (a run of `--test it examples::` alone does not: `cargo build --examples --all-features` first)",
        path.display()
    );
    let out = Command::new(&path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{out}"))
}

#[test]
fn embed_seats_alice_after_the_check_ins() {
    let out = run_example("embed");
    assert!(line(&out, "alice: ").contains("Queued"), "{out}");
    assert!(line(&out, "check-in of ").ends_with("200 OK"), "{out}");
    assert!(
        line(&out, "alice's request ").contains(" now runs on "),
        "{out}"
    );
    assert!(out.contains("a second user lands on "), "{out}");
}

#[test]
fn render_renders_and_refuses() {
    let out = run_example("render");
    assert_eq!(
        line(&out, "uses: "),
        "uses: server_hostname, domain, ad_join_credential, checkin_jwt, upstream_auth_address"
    );
    assert!(
        out.contains("realm join --one-time-password='Xy7!q9mT2#vL8@pR4' example.local"),
        "{out}"
    );
    assert!(out.contains("(Debug hides it)"), "{out}");
    assert!(
        line(&out, "refused at configuration time: ").contains("1:9: ValueError"),
        "{out}"
    );
    assert!(line(&out, "refused: ").contains("KeyError"), "{out}");
}

#[test]
fn axum_broker_keeps_each_sides_auth_on_its_own_routes() {
    let out = run_example("axum_broker");
    assert!(
        line(&out, "guest check-in (no broker login): ").ends_with("200 OK"),
        "{out}"
    );
    assert!(
        line(&out, "broker route without a login: ").contains("401 Unauthorized"),
        "{out}"
    );
    assert!(
        line(&out, "broker route with an unknown session: ").contains("401 Unauthorized"),
        "{out}"
    );
    let alice = line(&out, "broker route as alice: ");
    assert!(alice.contains("200 OK"), "{out}");
    assert!(alice.contains(r#""user":"alice""#), "{out}");
    assert!(alice.contains(r#""server":"#), "{out}");
    assert!(
        line(&out, "kasm-scale API with the broker's cookie only: ").ends_with("401 Unauthorized"),
        "{out}"
    );
    assert!(
        line(&out, "kasm-scale API with its key: ")
            .ends_with(r#"200 OK, pools "desktops" (1 used)"#),
        "{out}"
    );
    assert!(line(&out, "health probe: ").contains("200 OK"), "{out}");
}

#[test]
fn custom_provider_passes_the_contract_and_serves_a_user() {
    let out = run_example("custom_provider");
    assert!(
        line(&out, "conformance suite: ").contains("passed"),
        "{out}"
    );
    assert!(
        line(&out, "wrong token: ").contains("(auth, retryable: false)"),
        "{out}"
    );
    assert!(
        line(&out, "too long user data: ").contains("(invalid_request, retryable: false)"),
        "{out}"
    );
    assert_eq!(
        line(&out, "no answer: "),
        "no answer: transient (retryable: true)"
    );
    assert_eq!(
        line(&out, "standby: "),
        "standby: 2 free sessions on Nimbus"
    );
    assert!(
        line(&out, "alice runs on ").len() > "alice runs on ".len(),
        "{out}"
    );
    let machines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("nimbus machine "))
        .collect();
    assert_eq!(machines.len(), 2, "the two standby servers: {out}");
    assert!(machines.iter().all(|m| m.ends_with(" running")), "{out}");
    // The API token never reaches the output.
    assert!(!out.contains("nimbus-token-of-the-example"), "{out}");
}
