//! The `kasm-scale` binary an operator builds for `serve` does not carry tokio's test clock
//! (its `test-util` feature, which the simulator's paused clock needs): only a build with the
//! feature `sim` does. Features unify per build, so this asks cargo which tokio features each
//! build compiles (`cargo tree`, offline, well under a second each) rather than trusting the
//! manifest's comments.

use std::process::Command;

/// tokio's features in a build of this package (normal and build dependencies: what
/// `cargo build --release` compiles, dev-dependencies left out) with `args` as the feature
/// flags.
fn tokio_features(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "-p",
            "kasm-scale",
            "-e",
            "features,no-dev",
            "-i",
            "tokio",
            "--depth",
            "0",
            "-f",
            "{p}|{f}",
        ])
        .args(args)
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one tokio in the build {args:?}: {stdout}");
    let (package, features) = lines[0].split_once('|').expect("`{p}|{f}`");
    assert!(package.starts_with("tokio v1."), "{args:?}: {package}");
    features.split(',').map(str::to_owned).collect()
}

/// Asserts the build `args` has tokio's timers (which every build uses, so the line read is
/// the right one) and, as `test_clock` says, its test clock or not.
fn assert_tokio(args: &[&str], test_clock: bool) {
    let features = tokio_features(args);
    assert!(
        features.iter().any(|f| f == "time"),
        "{args:?}: {features:?}"
    );
    assert_eq!(
        features.iter().any(|f| f == "test-util"),
        test_clock,
        "tokio's test-util in the build {args:?}: {features:?}"
    );
}

#[test]
fn the_serve_build_has_no_test_clock() {
    // `cargo build --release`: the default features (the command line, `serve` included), on
    // tokio's multi-threaded runtime.
    assert_tokio(&[], false);
    assert!(tokio_features(&[]).iter().any(|f| f == "rt-multi-thread"));
    // `serve` with every backend, as the operations docs build it.
    assert_tokio(&["--features", "aws,azure,ldap,postgres"], false);
    assert_tokio(
        &[
            "--no-default-features",
            "--features",
            "cli,http,aws,azure,ldap,postgres,testkit",
        ],
        false,
    );
}

#[test]
fn the_simulator_build_has_the_paused_clock() {
    // The check above would also pass if it could not see the feature: here it must see it.
    assert_tokio(&["--features", "sim"], true);
    assert_tokio(&["--no-default-features", "--features", "sim"], true);
}
