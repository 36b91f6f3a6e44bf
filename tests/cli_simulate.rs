//! `kasm-scale simulate`, run as a user would.

mod common;

use common::{kasm_scale, text};

#[test]
fn the_default_scenario_is_deterministic_and_writes_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let svg = svg.to_str().unwrap();
    let run = || kasm_scale(&["simulate", "--json", "--seed", "7", "--svg", svg]);
    let (a, b) = (run(), run());
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "same seed, same JSON");
    let m: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    for key in [
        "requests",
        "served_immediately",
        "served_immediately_pct",
        "wait_p50_s",
        "wait_p99_s",
        "wait_max_s",
        "vm_hours",
        "oracle_vm_hours",
        "peak_servers",
        "provisioned",
        "destroyed",
        "checkin_timeouts",
    ] {
        assert!(m.get(key).is_some(), "missing {key}");
    }
    assert!(m["oracle_vm_hours"].as_f64().unwrap() <= m["vm_hours"].as_f64().unwrap());
    let chart = std::fs::read_to_string(svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("servers on aws-sim"));
}

#[test]
fn compare_prints_both_policies() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("c.svg");
    let out = kasm_scale(&["simulate", "--compare", "--svg", svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("kasm") && header.contains("kasm-scale"),
        "{table}"
    );
    assert!(table.contains("VM-hours / oracle"), "{table}");
}

#[test]
fn a_malformed_trace_line_is_reported_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(
        &trace,
        "time,event,session,pool\n0,start,a,office\n60,begin,b,office\n",
    )
    .unwrap();
    let out = kasm_scale(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--svg",
        dir.path().join("x.svg").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: line 3: event `begin` must be `start` or `end`\n",
            trace.display()
        )
    );
}
