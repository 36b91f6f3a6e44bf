//! The guides state what the code does: every metric the code records is in the operations
//! guide's metrics table and every metric there is recorded; every `serve` and `simulate` flag
//! is documented and every documented flag exists; the limits the guide gives are the code's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn read(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(Path::new(root).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Rust files under `dir` (recursively).
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The metric names recorded in the shipped crates: the string literal after each
/// `counter!(`, `gauge!(` and `histogram!(`.
fn recorded_metrics() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "src" || (name.starts_with("kasm-scale-") && dir.join("src").is_dir()) {
            sources(
                &if name == "src" {
                    dir.clone()
                } else {
                    dir.join("src")
                },
                &mut files,
            );
        }
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(call) {
                let rest = text[at + call.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"') {
                    let name = &literal[..literal.find('"').unwrap()];
                    names.insert(name.to_owned());
                }
            }
        }
    }
    assert!(names.len() > 20, "{names:?}");
    names
}

/// The names in the first column of the table headed `| metric | type | labels |`.
fn documented_metrics(guide: &str) -> BTreeSet<String> {
    let table = guide
        .split("| metric | type | labels |")
        .nth(1)
        .expect("docs/service.md has the metrics table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default().to_owned();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|n| n.split('{').next().unwrap_or(n).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_metric_is_documented_and_every_documented_metric_is_recorded() {
    let recorded = recorded_metrics();
    let guide = read("docs/service.md");
    let documented = documented_metrics(&guide);
    let missing: Vec<_> = recorded.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&recorded).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "not in the metrics table of docs/service.md: {missing:?}; in it but recorded nowhere: {unknown:?}"
    );
    // A metric named anywhere in the guides is one of them (or a PostgreSQL table).
    let tables = read("kasm-scale-postgres/migrations/0001_records_and_lease.sql")
        + &read("kasm-scale-postgres/src/migrate.rs");
    for page in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).unwrap() {
        let page = page.unwrap().path();
        let text = std::fs::read_to_string(&page).unwrap();
        for name in text.split('`').skip(1).step_by(2) {
            let name = name
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .next()
                .unwrap_or(name);
            if name.starts_with("kasm_scale_") && !name.contains(':') && name != "kasm_scale_core" {
                assert!(
                    recorded.contains(name)
                        || tables.contains(&format!("TABLE IF NOT EXISTS {name}")),
                    "{}: `{name}` is neither a metric nor a table",
                    page.display()
                );
            }
        }
    }
}

/// The long flags `kasm-scale <command> --help` lists.
fn flags(command: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kasm-scale"))
        .args([command, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches([',', '.'])
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .filter(|w| w != "--help")
        .collect()
}

/// The words after `kasm-scale` (or cargo's `--` separator) that are long flags.
fn flags_in(command_line: &str) -> Vec<String> {
    let after = match (command_line.find("kasm-scale "), command_line.find(" -- ")) {
        (Some(at), _) => &command_line[at..],
        (None, Some(at)) => &command_line[at + 4..],
        (None, None) => return Vec::new(),
    };
    after
        .split_whitespace()
        .map(|w| w.trim_start_matches(['[', '(']))
        .filter(|w| w.starts_with("--") && w[2..].starts_with(|c: char| c.is_ascii_lowercase()))
        .map(|w| {
            w.trim_end_matches([',', '.', ')', ']'])
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The `--flags` of kasm-scale a guide names: in its command lines (fenced or inline, after
/// `kasm-scale` or cargo's `--`) and alone in backticks (`--tick-interval`).
fn named_flags(guide: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut prose = String::new();
    let mut fenced = false;
    let mut command = String::new();
    for line in guide.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            // A command continued over several lines is one command.
            command.push_str(line.trim_end_matches('\\'));
            command.push(' ');
            if !line.ends_with('\\') {
                named.extend(flags_in(&command));
                command.clear();
            }
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for code in prose.split('`').skip(1).step_by(2) {
        let first = code.split_whitespace().next().unwrap_or_default();
        if first.starts_with("--") {
            named.extend(flags_in(&format!("kasm-scale {first}")));
        } else {
            named.extend(flags_in(code));
        }
    }
    named
}

fn check_flags(command: &str, page: &str, others: &[&str]) {
    let real = flags(command);
    let guide = read(page);
    let named = named_flags(&guide);
    let missing: Vec<_> = real.iter().filter(|f| !named.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "`{command}` flags not in {page}: {missing:?}"
    );
    // A flag the guide names is this command's or one of the commands it also shows.
    let mut known = real.clone();
    for other in others {
        known.extend(flags(other));
    }
    // Other programs' flags the guides name alone in prose.
    known.extend(
        [
            "--features",          /* cargo */
            "--one-time-password", /* realm */
        ]
        .map(str::to_owned),
    );
    let unknown: Vec<_> = named.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "{page} names flags no command has: {unknown:?}"
    );
}

#[test]
fn every_serve_flag_is_documented_and_every_documented_flag_exists() {
    check_flags("serve", "docs/service.md", OPERATIONS);
}

/// The commands the operations guide shows beside `serve`.
const OPERATIONS: &[&str] = &[
    "validate",
    "render",
    "plan",
    "drain",
    "undrain",
    "drains",
    "generations",
    "reload",
    "resume-rollout",
];

#[test]
fn every_flag_of_the_operators_commands_is_documented() {
    let mut others = OPERATIONS.to_vec();
    others.push("serve");
    for command in ["drain", "undrain", "reload"] {
        check_flags(command, "docs/service.md", &others);
    }
}

#[test]
fn every_simulate_flag_is_documented_and_every_documented_flag_exists() {
    check_flags("simulate", "docs/simulator.md", &["plan"]);
}

#[test]
fn the_limits_the_guide_states_are_the_codes() {
    let guide = read("docs/service.md");
    let limits = kasm_scale::http::ConnectionLimits::default();
    let thousands = |n: usize| {
        let s = n.to_string();
        let (head, tail) = s.split_at(s.len() - 3);
        format!("{head},{tail}")
    };
    for stated in [
        format!(
            "`--max-connections` (default {}",
            thousands(limits.max_connections)
        ),
        format!(
            "`--header-timeout` (default {} s)",
            limits.header_read_timeout.as_secs()
        ),
        format!(
            "`--idle-timeout` (default {} s)",
            limits.idle_timeout.as_secs()
        ),
        format!(
            "within {} hours",
            kasm_scale::controller::REQUEST_ID_TTL.as_secs() / 3600
        ),
        format!(
            "`Idempotency-Key: <1 to {} visible ASCII",
            kasm_scale::controller::MAX_REQUEST_ID
        ),
        format!(
            "past {} a second after a burst of {}",
            kasm_scale::http::BAD_TOKENS_PER_SECOND,
            kasm_scale::http::BAD_TOKEN_BURST
        ),
        format!(
            "At most {} sources are tracked apart",
            thousands(kasm_scale::http::MAX_SOURCES)
        ),
        format!(
            "forgotten every {} s",
            kasm_scale::http::PRUNE_EVERY.as_secs()
        ),
    ] {
        assert!(
            guide.contains(&stated),
            "docs/service.md should say: {stated}"
        );
    }
}

#[test]
fn the_ranges_the_reference_states_are_the_codes() {
    use kasm_scale::config::{
        MAX_API_CONCURRENCY, MAX_CALL_TIMEOUT_SECONDS, MAX_DELAY_SECONDS, MAX_INSTANCES,
        MAX_OPERATION_TIMEOUT_SECONDS, MAX_RATE_PER_SECOND, MAX_SESSIONS_PER_SERVER,
        MAX_STANDBY_SESSIONS, MAX_WAIT_SECONDS, MIN_RATE_PER_SECOND,
    };
    let reference = read("docs/configuration.md");
    for stated in [
        format!("| 0–{MAX_DELAY_SECONDS} s (7 days) |"),
        format!("– {MAX_WAIT_SECONDS} s (30 days) |"),
        format!("| 1–{MAX_CALL_TIMEOUT_SECONDS} s (1 hour), whole seconds |"),
        format!("| 1–{MAX_OPERATION_TIMEOUT_SECONDS} s (1 day), whole seconds |"),
        format!("| {MIN_RATE_PER_SECOND}–{MAX_RATE_PER_SECOND} calls per second |"),
        format!("| `api_concurrency` | 1–{MAX_API_CONCURRENCY} |"),
        format!("| `max_instances` *(upper bound ours)* | 1–{MAX_INSTANCES} |"),
        format!(
            "| `max_simultaneous_sessions_per_server` *(upper bound ours)* | 1–{MAX_SESSIONS_PER_SERVER} |"
        ),
        format!("a schedule *(upper bound ours)* | 0–{MAX_STANDBY_SESSIONS} |"),
    ] {
        assert!(
            reference.contains(&stated),
            "docs/configuration.md should say: {stated}"
        );
    }
}

#[test]
fn the_guide_numbers_the_scaling_rules_as_the_engine_applies_them() {
    let engine = read("kasm-scale-core/src/engine/plan.rs");
    let body = engine
        .split("pub fn plan(")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("engine/plan.rs has plan()");
    let applied: Vec<&str> = body
        .match_indices("pass.")
        .map(|(at, _)| {
            let name = &body[at + "pass.".len()..];
            &name[..name.find('(').unwrap()]
        })
        .filter(|name| *name != "finish")
        .collect();
    let guide = read("docs/policies.md");
    let documented: Vec<&str> = guide
        .lines()
        .filter(|l| {
            l.split_once(". **")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .filter_map(|l| l.split("(`").nth(1)?.split('`').next())
        .collect();
    assert_eq!(
        documented, applied,
        "docs/policies.md's numbered rules vs engine::plan"
    );
}
