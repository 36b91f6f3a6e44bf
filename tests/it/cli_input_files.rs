//! Input files (configurations, traces, plan states, templates) must be regular files of at
//! most 16 MiB: a symlink to `/dev/zero`, a FIFO or a huge file is refused at once, with the
//! path and the limit, instead of a read without end.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use common::text;

/// Runs `kasm-scale args`, killed (and the test failed) after 30 s.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(common::binary())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kasm-scale");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still reading after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Three bad inputs in `dir`, with the message each one must get after `PATH: cannot read: `.
fn bad_inputs(dir: &Path, extension: &str) -> Vec<(String, String)> {
    let zero = dir.join(format!("zero.{extension}"));
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = dir.join(format!("fifo.{extension}"));
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo is needed for this test (coreutils)");
    assert!(made.success());
    let big = dir.join(format!("big.{extension}"));
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    vec![
        (
            zero.display().to_string(),
            "not a regular file (a character device); kasm-scale reads only regular files"
                .to_owned(),
        ),
        (
            fifo.display().to_string(),
            "not a regular file (a FIFO); kasm-scale reads only regular files".to_owned(),
        ),
        (
            big.display().to_string(),
            "17825792 bytes, over the 16 MiB (16777216-byte) limit for input files".to_owned(),
        ),
    ]
}

fn assert_refused(args: &[&str], path: &str, why: &str) {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stderr),
        format!("{path}: cannot read: {why}\n"),
        "{args:?}"
    );
}

#[test]
fn validate_refuses_what_is_not_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    for extension in ["toml", "yaml", "json"] {
        for (path, why) in bad_inputs(dir.path(), extension) {
            assert_refused(&["validate", &path], &path, &why);
        }
    }
}

#[test]
fn plan_refuses_such_configurations_and_states() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"servers": []}"#).unwrap();
    let state = state.to_str().unwrap();
    let config = "examples/config/multi-cloud.json";
    for (path, why) in bad_inputs(dir.path(), "json") {
        assert_refused(&["plan", "--config", &path, "--state", state], &path, &why);
        assert_refused(&["plan", "--config", config, "--state", &path], &path, &why);
    }
}

#[cfg(feature = "sim")]
#[test]
fn simulate_refuses_such_configurations_and_traces() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let svg = svg.to_str().unwrap();
    for (path, why) in bad_inputs(dir.path(), "toml") {
        assert_refused(&["simulate", "--config", &path, "--svg", svg], &path, &why);
    }
    for (path, why) in bad_inputs(dir.path(), "csv") {
        assert_refused(&["simulate", "--trace", &path, "--svg", svg], &path, &why);
    }
}

#[test]
fn render_refuses_such_templates_and_variable_files() {
    let dir = tempfile::tempdir().unwrap();
    for (path, why) in bad_inputs(dir.path(), "sh") {
        assert_refused(&["render", "--template", &path], &path, &why);
        assert_refused(
            &["render", "--builtin", "linux", "--vars", &path],
            &path,
            &why,
        );
    }
}

/// Exactly 16 MiB is read (and refused for what it holds, not for its size).
#[test]
fn a_file_at_the_limit_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limit.toml");
    let mut padding = String::from("# padding\n");
    padding.push_str(&"#".repeat(16 * 1024 * 1024 - padding.len() - 1));
    padding.push('\n');
    assert_eq!(padding.len(), 16 * 1024 * 1024);
    std::fs::write(&path, padding).unwrap();
    let out = run(&["validate", path.to_str().unwrap()]);
    assert!(
        !text(&out.stderr).contains("limit for input files"),
        "{}",
        text(&out.stderr)
    );
}
