//! `kasm-scale plan`, run as a user would.

use std::process::Output;

use crate::common;

use common::{kasm_scale, text};

const CONFIG: &str = "examples/config/multi-cloud.json";
// Monday 2026-11-30 15:00 UTC = 10:00 in New York: the Azure config's schedule is open.
const NOW: &str = "2026-11-30T15:00:00Z";

fn plan_with(state: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, state).unwrap();
    let mut args = vec![
        "plan",
        "--config",
        CONFIG,
        "--state",
        path.to_str().unwrap(),
        "--now",
        NOW,
    ];
    args.extend(extra);
    kasm_scale(&args)
}

const STATE: &str = r#"{
  "servers": [
    {"id": "00000000-0000-4000-8000-000000000001", "config": "engineering-aws", "state": "running",
     "sessions": 0, "used": true, "created_at": "2026-11-30T08:00:00Z", "checked_in_at": "2026-11-30T08:04:00Z"},
    {"id": "00000000-0000-4000-8000-000000000002", "config": "engineering-aws", "state": "running",
     "sessions": 0, "created_at": "2026-11-30T08:00:00Z", "checked_in_at": "2026-11-30T08:04:00Z"},
    {"id": "00000000-0000-4000-8000-000000000003", "config": "engineering-azure", "state": "starting",
     "sessions": 0, "created_at": "2026-11-30T14:00:00Z", "checked_in_at": null}
  ],
  "pending_requests": {"engineering": 0},
  "bookkeeping": {"engineering-azure": {"downscale_requested_at": null, "consecutive_failures": 0, "last_failure_at": null}}
}"#;

#[test]
fn prints_the_plan_as_json_and_as_reasons() {
    let out = plan_with(STATE, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = plan["actions"].as_array().unwrap();
    let summary: Vec<(String, String)> = actions
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["cause"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("destroy".into(), "session_ended".into()),
            ("provision".into(), "below_minimum".into()),
            ("destroy".into(), "checkin_timeout".into()),
        ]
    );
    assert_eq!(actions[1]["config"], "engineering-aws");
    assert_eq!(actions[1]["count"], 2);
    assert_eq!(
        plan["bookkeeping"]["engineering-azure"]["consecutive_failures"],
        1
    );
    assert_eq!(
        plan["bookkeeping"]["engineering-azure"]["last_failure_at"],
        NOW
    );

    let out = plan_with(STATE, &["--explain"]);
    assert_eq!(
        text(&out.stdout),
        "destroy 00000000-0000-4000-8000-000000000001 of engineering-aws: its single session ended (reusable is false)\n\
         provision 2 on engineering-aws: 1 free < minimum 3 (deficit 2, 1 session per server)\n\
         destroy 00000000-0000-4000-8000-000000000003 of engineering-azure: not ready 3600 s after creation (checkin_timeout 1200 s)\n\
         note: engineering: engineering-azure: 0 free < minimum 2, but waiting until 2026-11-30T15:01:00Z after 1 consecutive failure(s)\n"
    );
}

#[test]
fn invalid_state_is_rejected_with_the_path() {
    let cases = [
        (
            STATE.replace(
                "\"engineering-aws\", \"state\": \"running\",\n     \"sessions\": 0, \"used\"",
                "\"gcp\", \"state\": \"running\",\n     \"sessions\": 0, \"used\"",
            ),
            "servers[0].config: refers to auto-scale config `gcp`, which is not defined",
        ),
        (
            STATE.replacen("\"sessions\": 0", "\"sessions\": -1", 1),
            "servers[0].sessions: must be at least 0, got -1",
        ),
        (
            STATE.replacen("\"sessions\": 0", "\"sessions\": 2", 1),
            "servers[0].sessions: 2 is more than the server's capacity 1",
        ),
        (
            STATE.replacen("2026-11-30T08:00:00Z", "yesterday", 1),
            "servers[0].created_at: ",
        ),
        (
            STATE.replace("\"engineering\": 0", "\"enginering\": 0"),
            "pending_requests.enginering: refers to pool `enginering`, which is not defined",
        ),
        (
            STATE.replacen("\"state\": \"running\"", "\"state\": \"up\"", 1),
            "servers[0].state: unknown variant `up`",
        ),
    ];
    for (state, want) in cases {
        let out = plan_with(&state, &[]);
        assert_eq!(out.status.code(), Some(1), "{want}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("state.json: {want}")),
            "want {want:?}, got {stderr}"
        );
        assert_eq!(text(&out.stdout), "");
    }
    let out = plan_with("{\"servers\": [", &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a file that is not JSON exits 2, with the position"
    );
    assert!(
        text(&out.stderr).contains("EOF while parsing"),
        "{}",
        text(&out.stderr)
    );
}
