//! `kasm-scale simulate --change-config` and `--disconnects`, run as a user would.

use crate::common;

use common::{kasm_scale, text};

fn write(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The embedded default scenario with a new image on AWS (its startup script changed).
fn new_image() -> String {
    kasm_scale::sim::DEFAULT_CONFIG.replacen(
        "name = \"aws-sim\"\n",
        "name = \"aws-sim\"\nstartup_script = \"# image 2026-12\\n{checkin_jwt}\"\n",
        1,
    )
}

#[test]
fn a_changed_config_is_applied_at_its_time_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let change = write(dir.path(), "new-image.toml", &new_image());
    let svg = dir.path().join("chart.svg");
    let at = format!("2026-12-01T10:00:00Z={change}");
    let json = kasm_scale(&["simulate", "--days", "2", "--json", "--change-config", &at]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json.stderr));
    let m: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let c = &m["changes"][0];
    assert_eq!(c["label"], "new-image.toml");
    assert_eq!(c["at"], "2026-12-01T10:00:00Z");
    assert_eq!(
        c["reload"]["new_generations"],
        serde_json::json!(["office-aws"])
    );
    assert_eq!(c["sessions_ended_by_us"], 0);
    assert_eq!(c["built_outdated"], 0);
    assert!(c["outdated_at_change"].as_u64().unwrap() > 0, "{c}");
    for key in [
        "last_outdated_gone_at",
        "built",
        "minutes_below_baseline",
        "minutes_below_baseline_after",
    ] {
        assert!(c.get(key).is_some(), "missing {key}: {c}");
    }
    assert_eq!(m["baseline"]["requests"], m["requests"]);
    assert!(m["baseline"].get("changes").is_none());

    // As text: both runs side by side, the change under them, and marked on the chart.
    let out = kasm_scale(&[
        "simulate",
        "--days",
        "2",
        "--svg",
        svg.to_str().unwrap(),
        "--change-config",
        &format!("1d10h={change}"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("without the changes") && header.contains("with the changes"),
        "{table}"
    );
    assert!(
        table.contains("configuration changes:\n  1. new-image.toml at Tue 2026-12-01 10:00 UTC"),
        "{table}"
    );
    assert!(
        table.contains("     new generation: office-aws\n"),
        "{table}"
    );
    assert!(table.contains("     sessions ended by us: 0\n"), "{table}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("change 1: new-image.toml"), "no change mark");
}

#[test]
fn a_bad_change_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", &new_image());
    let bad = write(
        dir.path(),
        "bad.toml",
        &kasm_scale::sim::DEFAULT_CONFIG.replacen(
            "vm_provider_config_id = \"aws-sim\"",
            "vm_provider_config_id = \"nowhere\"",
            1,
        ),
    );
    let run = |changes: &[String]| {
        let mut args = vec!["simulate", "--days", "1", "--json"];
        for c in changes {
            args.extend(["--change-config", c.as_str()]);
        }
        kasm_scale(&args)
    };
    let cases = [
        (
            vec![format!("soon={good}")],
            1,
            format!("--change-config soon={good}: "),
        ),
        (
            vec![format!("2d={good}")],
            1,
            "cannot simulate: change 1 (good.toml) at 48h: outside the run, which lasts 24h: a \
             change must come before its end"
                .to_owned(),
        ),
        (
            vec![
                format!("10h={good}"),
                format!("2026-11-30T10:00:00Z={good}"),
            ],
            1,
            "cannot simulate: change 2 (good.toml) at 10h and change 1 (good.toml) apply at the \
             same instant: give each its own time"
                .to_owned(),
        ),
        (
            vec![format!("10h={bad}")],
            1,
            format!("--change-config 10h={bad}: {bad}: "),
        ),
        (
            vec![format!("10h={}", dir.path().join("missing.toml").display())],
            2,
            format!(
                "--change-config 10h={}: ",
                dir.path().join("missing.toml").display()
            ),
        ),
    ];
    for (changes, code, want) in cases {
        let out = run(&changes);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{changes:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).starts_with(&want),
            "{changes:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing ran");
    }
    let out = kasm_scale(&["simulate", "--change-config", "10h"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not AT=FILE"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn disconnects_make_reconnects_that_land_on_the_same_server() {
    let out = kasm_scale(&[
        "simulate",
        "--days",
        "1",
        "--json",
        "--disconnects",
        "30",
        "--reconnect-within",
        "10m",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &m["reconnects"];
    assert!(r["requests"].as_u64().unwrap() > 50, "{r}");
    assert_eq!(r["elsewhere"], 0);
    assert_eq!(r["same_server_pct"], 100.0);
    let out = kasm_scale(&["simulate", "--disconnects", "120"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`120` must be from 0 to 100"),
        "{}",
        text(&out.stderr)
    );
}
