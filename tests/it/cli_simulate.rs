//! `kasm-scale simulate`, run as a user would.

use crate::common;

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
            "{}: line 3: event `begin` must be `start`, `end` or `reconnect`\n",
            trace.display()
        )
    );
}

/// Runs `kasm-scale` in `dir` (so that a default chart lands there).
fn kasm_scale_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kasm-scale")
}

/// A one-pool config on a memory provider: `max_instances` servers of one session each, no
/// standby.
fn small_config(dir: &std::path::Path, max_instances: u32, extra: &str) -> String {
    let path = dir.join("small.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = {max_instances}
boot_latency = {{ fixed = 60 }}
checkin_delay = {{ fixed = 0 }}

[[pools]]
server_pool_name = "office"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
{extra}
"#
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn write(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn durations_take_the_units_people_write() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(dir.path(), "t.csv", "0,start,a,office\n600,end,a,office\n");
    // One server is kept free all the time: the VM-hours follow the duration.
    let config = small_config(dir.path(), 5, "minimum_pool_standby_sessions = 1");
    for (duration, hours) in [("2d", 48.0), ("1w", 168.0), ("1h30m", 1.5), ("90m", 1.5)] {
        let out = kasm_scale(&[
            "simulate",
            "--config",
            &config,
            "--trace",
            &trace,
            "--json",
            "--duration",
            duration,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{duration}: {}",
            text(&out.stderr)
        );
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let vm_hours = m["vm_hours"].as_f64().unwrap();
        assert!(
            (hours - 0.1..hours + 0.4).contains(&vm_hours),
            "{duration}: {vm_hours} VM-hours"
        );
    }
    for (duration, want) in [
        ("-1h", "`-1h` is negative"),
        (
            "99999999999h",
            "`99999999999h` is too long: a simulation covers at most 366 days",
        ),
        (
            "367d",
            "`367d` is too long: a simulation covers at most 366 days",
        ),
        ("1e300", "`1e300`: unknown unit `e`"),
        ("3600", "`3600` needs a unit"),
    ] {
        let out = kasm_scale(&["simulate", "--trace", &trace, "--duration", duration]);
        assert_eq!(out.status.code(), Some(2), "{duration}");
        assert!(
            text(&out.stderr).contains(want),
            "{duration}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn empty_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.toml", "");
    let out = kasm_scale_in(dir.path(), &["simulate", "--config", &empty]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{empty}: no pools defined: there is nothing to simulate\n")
    );
    for content in ["", "time,event,session,pool,user\n", "# only a comment\n"] {
        let trace = write(dir.path(), "t.csv", content);
        let out = kasm_scale_in(dir.path(), &["simulate", "--trace", &trace]);
        assert_eq!(out.status.code(), Some(1), "{content:?}");
        assert_eq!(
            text(&out.stderr),
            format!(
                "{trace}: the trace has no events: expected lines `time,event,session,pool[,user]` after the optional header\n"
            )
        );
        assert!(out.stdout.is_empty());
    }
    assert!(!dir.path().join("kasm-scale-simulation.svg").exists());
}

#[test]
fn an_unknown_pool_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        dir.path(),
        "t.csv",
        "time,event,session,pool\n0,start,a,office\n# a comment\n60,start,b,ofice\n",
    );
    let out = kasm_scale(&["simulate", "--trace", &trace, "--no-svg"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{trace}: line 4: the trace uses pool `ofice`, which the configuration does not define (its pools: office)\n"
        )
    );
}

#[test]
fn trace_times_out_of_range_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for time in ["1e300", "1e17", "5000000000", "-1"] {
        let trace = write(dir.path(), "t.csv", &format!("{time},start,a,office\n"));
        let began = std::time::Instant::now();
        let out = kasm_scale(&["simulate", "--trace", &trace, "--no-svg"]);
        assert_eq!(out.status.code(), Some(1), "{time}");
        assert!(text(&out.stderr).starts_with(&format!("{trace}: line 1: time {time} ")));
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "{time}"
        );
    }
}

#[test]
fn charts_are_written_only_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(dir.path(), "t.csv", "0,start,a,office\n600,end,a,office\n");
    let default_chart = dir.path().join("kasm-scale-simulation.svg");
    // --no-svg: none, and the summary does not mention one.
    let out = kasm_scale_in(dir.path(), &["simulate", "--trace", &trace, "--no-svg"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!default_chart.exists());
    assert!(
        !text(&out.stdout).contains("chart:"),
        "{}",
        text(&out.stdout)
    );
    // --json: none unless --svg is given.
    let out = kasm_scale_in(dir.path(), &["simulate", "--trace", &trace, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!default_chart.exists());
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    // Without either: the default chart, named in the summary.
    let out = kasm_scale_in(dir.path(), &["simulate", "--trace", &trace]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(default_chart.exists());
    assert!(text(&out.stdout).ends_with("chart: kasm-scale-simulation.svg\n"));
    // Both options: refused by the parser.
    let out = kasm_scale_in(dir.path(), &["simulate", "--no-svg", "--svg", "x.svg"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_chart_path_that_cannot_be_written_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // This trace would fail the run (unknown pool, exit 1): the chart path is checked first.
    let trace = write(dir.path(), "t.csv", "0,start,a,nowhere\n");
    let missing = dir.path().join("no-such-dir").join("c.svg");
    let missing = missing.to_str().unwrap();
    for path in [missing, dir.path().to_str().unwrap()] {
        let out = kasm_scale(&["simulate", "--trace", &trace, "--svg", path]);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).starts_with(&format!("{path}: cannot write the chart: ")),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    // A run that fails leaves no chart file it made behind.
    let chart = dir.path().join("new.svg");
    let out = kasm_scale(&[
        "simulate",
        "--trace",
        &trace,
        "--svg",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!chart.exists());
}

#[test]
fn the_compare_chart_and_summary_name_both_policies_the_seed_the_start_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("c.svg");
    let out = kasm_scale(&[
        "simulate",
        "--compare",
        "--days",
        "1",
        "--seed",
        "5",
        "--start",
        "2026-12-07T00:00:00Z",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("Kasm's rules") && header.contains("kasm-scale: demand"),
        "{table}"
    );
    assert!(
        table.contains("\noracle: lower bound (perfect foresight) "),
        "{table}"
    );
    // Waits read in minutes and seconds, never as bare seconds with decimals.
    let waits = table
        .lines()
        .find(|l| l.starts_with("wait p99 / max"))
        .unwrap();
    assert!(waits.contains(" s / ") && waits.ends_with(" s"), "{waits}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    for want in [
        "kasm-scale simulation: the default scenario, seed 5, start 2026-12-07 00:00 UTC",
        "free sessions — Kasm&apos;s rules",
        "free sessions — kasm-scale: demand",
        "servers on aws-sim — Kasm&apos;s rules",
        "servers on aws-sim — kasm-scale: demand",
        "time (UTC)",
        // The axis shows clock time.
        "10:00",
        "15:00",
    ] {
        assert!(chart.contains(want), "missing {want}");
    }
}

#[test]
fn demand_beyond_the_configs_capacity_is_said_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    // Two single-session servers for a workday of 300 users.
    let config = small_config(dir.path(), 2, "");
    let out = kasm_scale(&["simulate", "--config", &config, "--no-svg"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let note = summary
        .lines()
        .find(|l| l.starts_with("note: "))
        .unwrap_or_else(|| panic!("no note in\n{summary}"));
    assert!(
        note.contains("requests (") && note.contains("came when their pool was already full: the configuration holds at most 2 sessions at once"),
        "{note}"
    );
    let out = kasm_scale(&["simulate", "--config", &config, "--json"]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["capacity_sessions"], 2);
    let beyond = m["beyond_capacity"].as_u64().unwrap();
    assert!(beyond * 2 > m["requests"].as_u64().unwrap(), "{m}");
    // The default scenario fits its config: no note.
    let out = kasm_scale(&["simulate", "--no-svg"]);
    assert!(
        !text(&out.stdout).contains("note: "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn users_and_days_shape_the_generated_workdays() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 50, "");
    let requests = |args: &[&str]| {
        let mut all = vec!["simulate", "--config", &config, "--json"];
        all.extend_from_slice(args);
        let out = kasm_scale(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        m["requests"].as_u64().unwrap()
    };
    let one = requests(&["--users", "20", "--days", "1"]);
    assert!((20..=60).contains(&one), "{one}");
    let three = requests(&["--users", "20", "--days", "3"]);
    assert!((60..=180).contains(&three) && three > one, "{three}");
    for (args, want) in [
        (vec!["--users", "0"], "0 is not in 1..=100000"),
        (vec!["--days", "367"], "367 is not in 1..=366"),
        (
            vec!["--users", "100000", "--days", "10"],
            "--users 100000 × --days 10 may make up to 6000000 trace events, more than the simulator takes (2000000)",
        ),
        (
            vec!["--users", "5", "--trace", "x.csv"],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["simulate", "--no-svg"];
        all.extend_from_slice(&args);
        let out = kasm_scale(&all);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_config_too_big_to_simulate_is_refused_when_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(
        dir.path(),
        1_000_000,
        "minimum_pool_standby_sessions = 2147483647",
    );
    let out = kasm_scale(&[
        "simulate",
        "--config",
        &config,
        "--duration",
        "2h",
        "--no-svg",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{config}: vm_providers[0].max_instances: must be between 1 and 10000, got 1000000\n\
             {config}: pools[0].autoscale[0].minimum_pool_standby_sessions: must be between 0 and 100000, got 2147483647\n"
        )
    );
}

#[test]
fn a_year_of_quiet_time_costs_little() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(dir.path(), "t.csv", "0,start,a,office\n600,end,a,office\n");
    let small = small_config(dir.path(), 5, "minimum_pool_standby_sessions = 1");
    // A pool without schedules, and the default scenario's schedules and rate-limited clouds.
    for (config, limit) in [(Some(small.as_str()), 30), (None, 180)] {
        let mut args = vec![
            "simulate",
            "--trace",
            &trace,
            "--duration",
            "366d",
            "--json",
        ];
        if let Some(c) = config {
            args.extend(["--config", c]);
        }
        let began = std::time::Instant::now();
        let out = kasm_scale(&args);
        let took = began.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(took.as_secs() < limit, "{config:?}: {took:?}");
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // 366 days of ticks every 10 s would be 3162240: most were skipped.
        let ticks = m["controller_ticks"].as_u64().unwrap();
        assert!(ticks < 3_162_240 / 10, "{config:?}: {ticks} ticks");
    }
}

#[test]
fn a_start_out_of_range_is_refused_not_a_panic() {
    for start in ["9999-12-30T00:00:00Z", "1969-12-31T23:59:59Z"] {
        let out = kasm_scale(&["simulate", "--start", start, "--duration", "2d", "--no-svg"]);
        assert_eq!(out.status.code(), Some(1), "{start}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr),
            format!(
                "cannot simulate: the start must be between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z, got {start}\n"
            )
        );
    }
}

/// `kasm-scale simulate --json` with `args`, its metrics.
fn json_of(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["simulate", "--json"];
    all.extend_from_slice(args);
    let out = kasm_scale(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn warm_up_days_are_shown_but_left_out_of_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 50, "minimum_pool_standby_sessions = 2");
    let base = ["--config", config.as_str(), "--users", "20", "--days", "3"];
    let all = json_of(&base);
    let mut args = base.to_vec();
    args.extend(["--warmup-days", "1"]);
    let warm = json_of(&args);
    let days = warm["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(warm["warmup_days"], 1);
    let flags: Vec<bool> = days
        .iter()
        .map(|d| d["warmup"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [true, false, false]);
    assert_eq!(days[0]["date"], "2026-11-30");
    let requests = |m: &serde_json::Value| m["requests"].as_u64().unwrap();
    assert!(requests(&warm) < requests(&all), "{warm} vs {all}");
    let later: u64 = days[1..]
        .iter()
        .map(|d| d["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests(&warm), later);
    assert_eq!(
        requests(&all),
        later + days[0]["requests"].as_u64().unwrap()
    );
    let hours = |m: &serde_json::Value| m["vm_hours"].as_f64().unwrap();
    assert!(hours(&warm) < hours(&all));
    assert!(warm["oracle_vm_hours"].as_f64().unwrap() < all["oracle_vm_hours"].as_f64().unwrap());
}

#[test]
fn a_run_of_several_days_prints_a_row_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 50, "");
    // Friday to Monday: the weekend is empty.
    let out = kasm_scale(&[
        "simulate",
        "--config",
        &config,
        "--users",
        "10",
        "--days",
        "4",
        "--start",
        "2026-12-04T00:00:00Z",
        "--warmup-days",
        "1",
        "--no-svg",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let rows: Vec<&str> = report
        .lines()
        .skip_while(|l| *l != "day by day:")
        .skip(1)
        .collect();
    assert!(
        rows[0].contains("requests") && rows[0].contains("VM-hours / oracle"),
        "{report}"
    );
    assert_eq!(rows.len(), 5, "{report}");
    for (row, day) in rows[1..].iter().zip([
        "2026-12-04 Fri",
        "2026-12-05 Sat",
        "2026-12-06 Sun",
        "2026-12-07 Mon",
    ]) {
        assert!(row.starts_with(day), "{report}");
    }
    assert!(rows[1].ends_with("(warm-up)"), "{report}");
    assert!(!rows[2].contains("warm-up"), "{report}");
    // Nobody comes at the weekend.
    assert!(rows[2].split_whitespace().nth(2) == Some("0"), "{report}");
    assert!(rows[3].contains(" – "), "{report}");

    // One day: no table.
    let out = kasm_scale(&[
        "simulate", "--config", &config, "--users", "10", "--days", "1", "--no-svg",
    ]);
    assert!(!text(&out.stdout).contains("day by day"));
}

#[test]
fn compare_shows_the_difference_and_both_policies_day_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(
        dir.path(),
        50,
        "minimum_pool_standby_sessions = 2\n\
         [[pools.autoscale.schedules]]\n\
         days_of_the_week = [\"Monday\", \"Tuesday\"]\n\
         active_start_time = \"07:00\"\n\
         active_end_time = \"18:00\"\n\
         timezone = \"UTC\"\n\
         minimum_pool_standby_sessions = 6\n",
    );
    let out = kasm_scale(&[
        "simulate",
        "--config",
        &config,
        "--users",
        "20",
        "--days",
        "2",
        "--compare",
        "--no-svg",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let line = |label: &str| {
        report
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {report}"))
            .to_owned()
    };
    assert!(
        report.lines().next().unwrap().ends_with("difference"),
        "{report}"
    );
    let last = |l: String| l.split_whitespace().last().unwrap().to_owned();
    assert!(last(line("VM-hours  ")).starts_with(['+', '-']), "{report}");
    assert!(last(line("served at once")) == "pp", "{report}");
    assert!(
        line("VM-hours / oracle").split_whitespace().count() == 6,
        "{report}"
    );
    assert!(line("session requests").ends_with("+0"), "{report}");
    let header = report
        .lines()
        .skip_while(|l| *l != "day by day:")
        .nth(1)
        .unwrap();
    assert!(
        header.contains("kasm: served at once") && header.contains("kasm-scale: VM-hours"),
        "{report}"
    );
}

#[test]
fn classes_are_generated_on_workdays() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 100, "");
    let m = json_of(&["--config", &config, "--generate", "classes", "--days", "2"]);
    assert_eq!(m["requests"], 180);
    let days = m["days"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert!(days.iter().all(|d| d["requests"] == 90));
    // From Saturday: nothing on the weekend, classes on Monday.
    let m = json_of(&[
        "--config",
        &config,
        "--generate",
        "classes",
        "--days",
        "3",
        "--start",
        "2026-12-05T00:00:00Z",
    ]);
    let per_day: Vec<u64> = m["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(per_day, [0, 0, 90]);
}

#[test]
fn warm_up_and_generator_mistakes_are_named() {
    for (args, want) in [
        (
            vec!["--days", "2", "--warmup-days", "2"],
            "--warmup-days 2 must be less than the days simulated (2: the run ends an hour after the last session; --duration runs longer): nothing would be measured\n",
        ),
        (
            vec!["--duration", "3d", "--warmup-days", "3"],
            "--warmup-days 3 must be less than the days simulated (3, from --duration): nothing would be measured\n",
        ),
        (
            vec!["--generate", "classes", "--users", "40"],
            "--users 40 cannot be used with --generate classes: its classes have 30 students each\n",
        ),
    ] {
        let mut all = vec!["simulate", "--no-svg"];
        all.extend_from_slice(&args);
        let out = kasm_scale(&all);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), want, "{args:?}");
    }
    for (args, want) in [
        (vec!["--warmup-days", "366"], "366 is not in 0..=365"),
        (
            vec!["--generate", "lecture"],
            "possible values: office, classes",
        ),
        (
            vec!["--generate", "classes", "--trace", "x.csv"],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["simulate", "--no-svg"];
        all.extend_from_slice(&args);
        let out = kasm_scale(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// (ours) A one-pool config on a memory provider priced `prices`, with `autoscale` added to
/// its auto-scale config.
fn priced_config(dir: &std::path::Path, prices: &str, autoscale: &str) -> String {
    write(
        dir,
        "priced.toml",
        &format!(
            r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 30
boot_latency = {{ fixed = 60 }}
checkin_delay = {{ fixed = 0 }}
{prices}

[[pools]]
server_pool_name = "office"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
require_checkin = true
reusable = true
max_simultaneous_sessions_per_server = 2
minimum_pool_standby_sessions = 2
{autoscale}
"#
        ),
    )
}

#[test]
fn compare_shows_the_cost_of_each_policy_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let prices = "price_per_hour = 0.5\nstopped_price_per_hour = 0.02";
    let config = priced_config(dir.path(), prices, "");
    let args = |config: &str| {
        vec![
            "simulate".to_owned(),
            "--config".into(),
            config.to_owned(),
            "--users".into(),
            "10".into(),
            "--days".into(),
            "2".into(),
            "--compare".into(),
            "--no-svg".into(),
        ]
    };
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kasm_scale(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let report = run(&args(&config));
    let line = |report: &str, label: &str| {
        report
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {report}"))
            .to_owned()
    };
    // Two costs and their difference.
    let cost = line(&report, "cost (running + stopped)");
    let cells: Vec<&str> = cost.split_whitespace().skip(4).collect();
    assert_eq!(cells.len(), 3, "{report}");
    assert!(cells[0].parse::<f64>().unwrap() > 0.0, "{report}");
    assert!(cells[2].starts_with(['+', '-']), "{report}");
    assert!(
        line(&report, "  cost per provider").contains("mem "),
        "{report}"
    );
    assert!(
        line(&report, "oracle: cost at the first offering's price")
            .split_whitespace()
            .count()
            > 7,
        "{report}"
    );
    let header = report
        .lines()
        .skip_while(|l| *l != "day by day:")
        .nth(1)
        .unwrap();
    assert!(
        header.contains("kasm: cost") && header.contains("kasm-scale: cost"),
        "{report}"
    );

    // With a warm tier: Kasm's rules, the demand policy with running standby only, and with
    // the warm tier, each with its cost.
    let warm = priced_config(
        dir.path(),
        prices,
        "warm_pool = { min_stopped = 1, max_stopped = 4 }",
    );
    let report = run(&args(&warm));
    let title = report.lines().next().unwrap();
    assert!(
        title.contains("Kasm's rules")
            && title.contains("kasm-scale: demand ")
            && title.contains("kasm-scale: demand + warm")
            && title.ends_with("difference"),
        "{report}"
    );
    let header = report
        .lines()
        .skip_while(|l| *l != "day by day:")
        .nth(1)
        .unwrap();
    assert!(header.contains("kasm-scale-warm: cost"), "{report}");
    let mut json_args = args(&warm);
    json_args.push("--json".into());
    let json: serde_json::Value = serde_json::from_str(&run(&json_args)).unwrap();
    for key in ["kasm", "kasm-scale", "kasm-scale-warm"] {
        assert!(json[key]["cost"].as_f64().is_some(), "{key}: {json}");
        assert!(json[key]["days"][0]["cost"].as_f64().is_some(), "{key}");
    }

    // Unpriced: no cost rows, no cost columns.
    let unpriced = priced_config(dir.path(), "", "");
    let report = run(&args(&unpriced));
    assert!(!report.contains("cost"), "{report}");
}

#[test]
fn the_slow_default_week_is_the_default_with_windows_latencies_and_a_warm_tier() {
    let out = kasm_scale(&["validate", "examples/default-week-slow.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let slow = kasm_scale::load_file(std::path::Path::new("examples/default-week-slow.toml"))
        .unwrap()
        .config;
    let mut default =
        kasm_scale::load_str(kasm_scale::sim::DEFAULT_CONFIG, kasm_scale::Format::Toml)
            .unwrap()
            .config;
    // The default with 10-15 minute builds, 1-2 minute starts, the check-in timeout a build
    // needs and a warm tier on the first config: nothing else differs.
    for p in &mut default.vm_providers {
        let kasm_scale::config::VmProviderConfig::Memory(m) = p else {
            panic!("the default's providers are memory clouds")
        };
        m.boot_latency = kasm_scale::config::Distribution::Uniform([600.0, 900.0]);
        m.start_latency = kasm_scale::config::Distribution::Uniform([60.0, 120.0]);
    }
    for c in &mut default.pools[0].autoscale {
        c.checkin_timeout = 1800;
    }
    default.pools[0].autoscale[0].warm_pool = slow.pools[0].autoscale[0].warm_pool;
    assert!(slow.pools[0].autoscale[0].warm_pool.is_some());
    assert_eq!(slow, default);
}

#[test]
fn the_slow_default_week_with_two_tiers_differs_only_in_the_second_configs_tier() {
    let load = |f: &str| {
        kasm_scale::load_file(std::path::Path::new(f))
            .unwrap()
            .config
    };
    let both = load("examples/default-week-slow-both.toml");
    let mut one = load("examples/default-week-slow.toml");
    assert!(one.pools[0].autoscale[1].warm_pool.is_none());
    one.pools[0].autoscale[1].warm_pool = one.pools[0].autoscale[0].warm_pool;
    assert_eq!(both, one);
}

#[test]
fn the_warm_week_examples_load() {
    let out = kasm_scale(&[
        "validate",
        "examples/warm-week.toml",
        "examples/warm-week-outage.toml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warnings expected");
    for file in ["examples/warm-week.toml", "examples/warm-week-outage.toml"] {
        let config = kasm_scale::load_file(std::path::Path::new(file))
            .unwrap()
            .config;
        let kasm_scale::config::VmProviderConfig::Memory(m) = &config.vm_providers[0] else {
            panic!("{file}: a memory provider")
        };
        assert_eq!(
            m.boot_latency,
            kasm_scale::config::Distribution::Uniform([600.0, 900.0])
        );
        assert_eq!(
            m.start_latency,
            kasm_scale::config::Distribution::Uniform([60.0, 120.0])
        );
        assert!(m.price_per_hour.is_some() && m.stopped_price_per_hour.is_some());
        assert_eq!(m.alternatives.len(), 1, "{file}: a fallback offering");
        assert!(config.pools[0].autoscale[0].warm_pool.is_some());
    }
    let outage = kasm_scale::load_file(std::path::Path::new("examples/warm-week-outage.toml"))
        .unwrap()
        .config;
    let kasm_scale::config::VmProviderConfig::Memory(m) = &outage.vm_providers[0] else {
        unreachable!()
    };
    // An hour each workday morning, 08:00 UTC from the Monday start.
    assert_eq!(m.outages.len(), 5);
    for (day, o) in m.outages.iter().enumerate() {
        assert_eq!(
            (o.start, o.duration),
            (day as f64 * 86_400.0 + 8.0 * 3600.0, 3600.0)
        );
    }
}
