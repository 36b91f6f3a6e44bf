//! Fuzzing every reader of outside input with proptest over bytes: config loading (TOML, YAML,
//! JSON), state loading (`plan --state` JSON and the file store), trace parsing and template
//! rendering. Inputs are random bytes, soups of each grammar's tokens, and valid documents with
//! random edits. Each input must come back (an answer or an error) with no panic, within 5 s,
//! and allocating at most 1 GiB beyond what the process held before it (a counting allocator
//! refuses more, which aborts the run).

use std::alloc::System;
use std::collections::HashMap;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use cap::Cap;
use jiff::Timestamp;
use kasm_scale_core::controller::FileStore;
use kasm_scale_core::engine::State;
use kasm_scale_core::sim::parse_trace;
use kasm_scale_core::template::{self, Template};
use kasm_scale_core::traits::StateStore;
use kasm_scale_core::{Format, load_str};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// The most one input may allocate on top of what is held.
const MEMORY: usize = 1 << 30;
/// The longest one input may take.
const TIME: Duration = Duration::from_secs(5);

/// One input at a time in the whole process: the allocation limit is global.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `read` on `input` on a thread of its own, within [`TIME`] and [`MEMORY`].
fn bounded(what: &'static str, input: String, read: fn(&str)) -> Result<(), TestCaseError> {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let held = ALLOCATOR.allocated();
    ALLOCATOR
        .set_limit(held.saturating_add(MEMORY))
        .map_err(|()| TestCaseError::fail(format!("cannot limit memory above {held} bytes")))?;
    let (done, finished) = mpsc::channel();
    let shown: String = input.chars().take(300).collect();
    let worker = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| read(&input)).is_ok();
        let _ = done.send(outcome);
    });
    match finished.recv_timeout(TIME) {
        Ok(true) => {}
        Ok(false) => {
            return Err(TestCaseError::fail(format!(
                "{what}: panicked on {shown:?}"
            )));
        }
        Err(_) => {
            return Err(TestCaseError::fail(format!(
                "{what}: no answer within {TIME:?} for {shown:?}"
            )));
        }
    }
    let _ = worker.join();
    ALLOCATOR
        .set_limit(usize::MAX)
        .map_err(|()| TestCaseError::fail("cannot lift the memory limit"))?;
    Ok(())
}

/// Random bytes, read as text (invalid UTF-8 replaced: every reader takes `&str`).
fn bytes() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..2048)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Text made of `tokens`, which reaches deeper into a grammar than random bytes.
fn soup(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..200).prop_map(|t| t.concat())
}

/// `seed` with up to 8 random edits (a byte replaced, removed, or a token inserted).
fn edits(seed: &'static str, tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            prop::sample::select(tokens),
        ),
        0..8,
    )
    .prop_map(move |changes| {
        let mut text: Vec<char> = seed.chars().collect();
        for (at, kind, token) in changes {
            if text.is_empty() {
                break;
            }
            let i = at.index(text.len());
            match kind {
                0 => {
                    text.remove(i);
                }
                1 => text[i] = token.chars().next().unwrap_or(' '),
                _ => {
                    for (k, c) in token.chars().enumerate() {
                        text.insert(i + k, c);
                    }
                }
            }
        }
        text.into_iter().collect()
    })
}

fn any_of(seed: &'static str, tokens: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![bytes(), soup(tokens), edits(seed, tokens)].boxed()
}

/// Inputs per reader: `KASM_SCALE_FUZZ_CASES`, 2,000 by default (about 10 s in all).
fn cases() -> u32 {
    std::env::var("KASM_SCALE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn run(what: &'static str, strategy: BoxedStrategy<String>, read: fn(&str)) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |input| bounded(what, input, read)) {
        panic!("{what}: {e}");
    }
}

const CONFIG_TOKENS: &[&str] = &[
    "[[",
    "]]",
    "[",
    "]",
    "{",
    "}",
    "=",
    ":",
    ",",
    "\"",
    "'",
    "\n",
    " ",
    "- ",
    "<<: ",
    "*a",
    "&a ",
    "pools",
    "autoscale",
    "vm_providers",
    "zones",
    "provider",
    "memory",
    "aws",
    "azure",
    "name",
    "max_instances",
    "minimum_pool_standby_sessions",
    "schedules",
    "1e300",
    "-1",
    "99999999999999999999",
    "nan",
    ".inf",
    "true",
    "null",
    "~",
    "\u{feff}",
    "é",
    "#",
    "\\",
    "\"\"\"",
    "0x1F",
    "2026-11-30T12:00:00Z",
    "08:00",
    "state_store",
    "kind",
    "file",
];

const CONFIG_SEED: &str = include_str!("../../examples/config/aws-windows-ad.toml");

#[test]
fn config_loading_never_panics_hangs_or_explodes() {
    for format in [Format::Toml, Format::Yaml, Format::Json] {
        let read: fn(&str) = match format {
            Format::Toml => |t| drop(load_str(t, Format::Toml)),
            Format::Yaml => |t| drop(load_str(t, Format::Yaml)),
            Format::Json => |t| drop(load_str(t, Format::Json)),
        };
        run("config", any_of(CONFIG_SEED, CONFIG_TOKENS), read);
    }
}

const STATE_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "servers",
    "id",
    "config",
    "state",
    "running",
    "provisioning",
    "sessions",
    "capacity",
    "created_at",
    "checked_in_at",
    "queue_slots",
    "pending_requests",
    "records",
    "format",
    "1",
    "-1",
    "1e999",
    "null",
    "true",
    "\"2026-11-30T12:00:00Z\"",
    "\"00000000-0000-0000-0000-000000000001\"",
    "18446744073709551616",
];

const STATE_SEED: &str = r#"{"servers": [{"id": "00000000-0000-0000-0000-000000000001", "config": "c", "state": "running", "sessions": 1, "created_at": "2026-11-30T11:00:00Z", "checked_in_at": "2026-11-30T11:05:00Z"}], "pending_requests": {"p": 2}}"#;

const RECORDS_SEED: &str = r#"{"format": 1, "records": {"servers": {}, "sessions": {"1": "00000000-0000-0000-0000-000000000001"}, "queued": {"p": [{"session": 2, "since": "2026-11-30T12:00:00Z"}]}, "bookkeeping": {}, "next_session": 2, "orphans": {}, "removed": {}}}"#;

#[test]
fn state_loading_never_panics_hangs_or_explodes() {
    run("plan state", any_of(STATE_SEED, STATE_TOKENS), |t| {
        drop(State::from_json(t))
    });
    run("state file", any_of(RECORDS_SEED, STATE_TOKENS), |t| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("state.json");
        std::fs::write(&path, t).expect("write");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        drop(runtime.block_on(FileStore::new(path).load()));
    });
}

const TRACE_TOKENS: &[&str] = &[
    ",",
    "\n",
    "#",
    "\"",
    " ",
    "start",
    "end",
    "p",
    "s1",
    "0",
    "1e300",
    "1e17",
    "5000000000",
    "-1",
    "nan",
    "inf",
    "2026-11-30T12:00:00Z",
    "9999-12-31T23:59:59Z",
    "\r\n",
    "é",
];

const TRACE_SEED: &str = "0,start,s1,p\n60,start,s2,p\n3600,end,s1,p\n";

#[test]
fn trace_parsing_never_panics_hangs_or_explodes() {
    run("trace", any_of(TRACE_SEED, TRACE_TOKENS), |t| {
        let start: Timestamp = "2026-11-30T00:00:00Z".parse().expect("a time");
        drop(parse_trace(t, start))
    });
}

const TEMPLATE_TOKENS: &[&str] = &[
    "{",
    "}",
    "{{",
    "}}",
    "!r",
    "!s",
    "!a",
    ":",
    ">",
    "<",
    "^",
    "=",
    "+",
    "-",
    " ",
    "#",
    "0",
    ",",
    "_",
    ".",
    "9",
    "99999999999",
    "[0]",
    "[x]",
    ".y",
    "domain",
    "server_hostname",
    "x",
    "e",
    "f",
    "%",
    "s",
    "d",
    "\n",
    "é",
    "\\",
];

const TEMPLATE_SEED: &str = "hostnamectl set-hostname {server_hostname}\n\
    curl -k -f https://{upstream_auth_address}/api/set_server_status?token={checkin_jwt}\n\
    echo {domain:>20} {x!r:^{width}} {{literal}}\n";

#[test]
fn template_rendering_never_panics_hangs_or_explodes() {
    run("template", any_of(TEMPLATE_SEED, TEMPLATE_TOKENS), |t| {
        let mut vars: HashMap<String, String> = HashMap::new();
        for name in [
            "server_hostname",
            "upstream_auth_address",
            "checkin_jwt",
            "domain",
            "x",
            "width",
            "0",
        ] {
            vars.insert(name.into(), "12".into());
        }
        drop(template::format(t, &vars));
        if let Ok(parsed) = Template::parse(t) {
            drop(parsed.render(&vars));
        }
    });
}
