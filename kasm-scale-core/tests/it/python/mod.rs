//! CPython for the differential tests of the template renderer: finding `python3` (a test that
//! cannot run fails, unless skipping is asked for outside CI) and formatting many templates with
//! it in one run of `format.py`.
//!
//! Shared by `kasm-scale-core/tests/it/template_differential.rs` and the facade's
//! `tests/it/render_differential.rs` (which includes this file with `#[path]`).

#![allow(dead_code)] // Each including test uses its own part.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// The formatting script: `{"template", "vars"}` lines in, Python's answers out.
const SCRIPT: &str = include_str!("format.py");

/// The variable that lets a machine without `python3` skip these tests (outside CI only).
pub const SKIP_VARIABLE: &str = "KASM_SCALE_SKIP_PYTHON";

/// Variables as Python sees them: strings, or `None`.
pub type Vars = HashMap<String, Option<String>>;

/// The machine's `python3` version (`3.11`), or `None` when it is missing and the test may skip,
/// which it says on stderr. Skipping needs `KASM_SCALE_SKIP_PYTHON=1` and is refused when the
/// environment variable `CI` is set: there a missing `python3` fails the test.
pub fn python3(test: &str) -> Option<String> {
    if let Some(version) = version() {
        return Some(version);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let opt_out = std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1");
    assert!(
        !ci,
        "{test}: python3 is not installed, and CI is set: the comparison with CPython must run \
         (.ci/run installs python3)"
    );
    assert!(
        opt_out,
        "{test}: python3 is not installed, so there is nothing to compare with; install CPython \
         3.11, or set {SKIP_VARIABLE}=1 to skip this test on purpose"
    );
    // Straight to stderr: `eprintln!` output of a passing test is captured and never shown.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: python3 is not installed and {SKIP_VARIABLE}=1"
    );
    None
}

fn version() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What `template.format(**vars)` does in CPython.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The text.
    Ok(String),
    /// The exception, and where.
    Err(PyError),
}

/// An exception of `str.format`, located in the template (see `format.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyError {
    /// `KeyError`, `ValueError`, …
    pub class: String,
    /// `str(e)`, or `repr(key)` for a `KeyError`.
    pub message: String,
    /// 1-based line and column (in characters) of the brace; `None` when not located.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// 0-based offset in characters of that brace.
    pub offset: Option<usize>,
    /// The offset after the `}` of the top-level field that failed (not for a rejected brace).
    pub field_end: Option<usize>,
    /// Whether the failing field is inside a nested format spec.
    pub nested: bool,
    /// The name of a `KeyError`.
    pub key: Option<String>,
}

/// Formats every `(template, vars)` with CPython, in one process.
pub fn format_all(cases: &[(&str, &Vars)]) -> Vec<Answer> {
    let input: String = cases
        .iter()
        .map(|(t, v)| serde_json::json!({"template": t, "vars": v}).to_string() + "\n")
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("python3's stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python3's answers");
    writer
        .join()
        .expect("the writer thread")
        .expect("write to python3");
    assert!(output.status.success(), "format.py failed");
    let answers: Vec<Answer> = String::from_utf8(output.stdout)
        .expect("UTF-8 answers")
        .lines()
        .map(|l| parse_answer(&serde_json::from_str(l).expect("a JSON answer")))
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per template");
    answers
}

fn parse_answer(v: &serde_json::Value) -> Answer {
    if let Some(text) = v.get("ok").and_then(|t| t.as_str()) {
        return Answer::Ok(text.to_owned());
    }
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let number = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .map(|n| n as usize)
    };
    Answer::Err(PyError {
        class: text("error").expect("an error class"),
        message: text("message").expect("an error message"),
        line: number("line"),
        column: number("column"),
        offset: number("offset"),
        field_end: number("field_end"),
        nested: v.get("nested").and_then(|x| x.as_bool()).unwrap_or(false),
        key: text("key"),
    })
}
