//! A reader that goes away (`kasm-scale simulate | head -1`, `validate … | head -0`) ends every
//! subcommand quietly: no panic, no "Broken pipe" message, the status the command would have had.

use std::process::{Command, Output, Stdio};

use crate::common;

use common::text;

/// Runs `kasm-scale args` with stdout a pipe whose reading end is closed before it starts, so
/// that its first write fails with a broken pipe (every time: no race with a reader that exits).
fn with_closed_stdout(args: &[&str]) -> Output {
    // A FIFO opened for reading and writing (Linux opens it at once), then for writing only;
    // closing the first leaves a pipe without a reader.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stdout");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo is needed for this test (coreutils)");
    assert!(made.success());
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(reader);
    Command::new(common::binary())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run kasm-scale")
}

fn assert_quiet(args: &[&str], status: i32) {
    let out = with_closed_stdout(args);
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{args:?}: {stderr}"
    );
    assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
}

#[test]
fn every_subcommand_ends_quietly_when_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(feature = "sim")]
    let svg = dir.path().join("chart.svg");
    #[cfg(feature = "sim")]
    let svg = svg.to_str().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"servers": []}"#).unwrap();
    let config = "examples/config/multi-cloud.json";

    assert_quiet(&["validate", config], 0);
    assert_quiet(&["validate", config, "tests/data/five-mistakes.toml"], 1);
    assert_quiet(
        &[
            "plan",
            "--config",
            config,
            "--state",
            state.to_str().unwrap(),
            "--now",
            "2026-11-30T15:00:00Z",
        ],
        0,
    );
    assert_quiet(
        &[
            "plan",
            "--config",
            config,
            "--state",
            state.to_str().unwrap(),
            "--now",
            "2026-11-30T15:00:00Z",
            "--explain",
        ],
        0,
    );
    assert_quiet(&["render", "--builtin", "linux", "--example-vars"], 0);
    assert_quiet(&["render", "--builtin", "windows", "--raw"], 0);
    #[cfg(feature = "sim")]
    assert_quiet(&["simulate", "--svg", svg], 0);
    #[cfg(feature = "sim")]
    assert_quiet(&["simulate", "--json", "--svg", svg], 0);
}

/// A failure to write that is not a closed pipe is still reported.
#[test]
fn a_full_disk_is_reported() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        panic!("/dev/full is needed for this test (Linux)");
    };
    let out = Command::new(common::binary())
        .args(["render", "--builtin", "linux", "--raw"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "cannot write the output: No space left on device (os error 28)\n"
    );
}
