//! The summary table and the notes under it, in an admin's words.

use std::fmt::Write as _;

use kasm_scale_core::sim::Metrics;

use super::Run;

/// A table row: its label and how to show a run's value.
type Row = (&'static str, fn(&Metrics) -> String);

/// The label of the oracle's row.
pub(crate) const ORACLE: &str = "oracle: lower bound (perfect foresight)";

/// A wait as people read it: `45 s`, `3 m 45 s`, `1 h 5 m`.
pub(crate) fn wait(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {} s", s / 60, s % 60),
        _ => format!("{} h {} m", s / 3600, s % 3600 / 60),
    }
}

/// The metrics side by side, one column per policy.
pub(crate) fn table(runs: &[Run]) -> String {
    let rows: [Row; 13] = [
        ("session requests", |m| m.requests.to_string()),
        ("served at once", |m| {
            format!(
                "{} ({:.1}%)",
                m.served_immediately, m.served_immediately_pct
            )
        }),
        ("never served", |m| m.never_served.to_string()),
        ("wait p50 / p95", |m| {
            format!("{} / {}", wait(m.wait_p50_s), wait(m.wait_p95_s))
        }),
        ("wait p99 / max", |m| {
            format!("{} / {}", wait(m.wait_p99_s), wait(m.wait_max_s))
        }),
        ("VM-hours", |m| format!("{:.1}", m.vm_hours)),
        ("  per provider", |m| {
            m.vm_hours_by_provider
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        (ORACLE, |m| format!("{:.1}", m.oracle_vm_hours)),
        ("VM-hours / oracle", |m| format!("{:.2}", m.ratio_to_oracle)),
        ("peak servers", |m| m.peak_servers.to_string()),
        ("provisioned", |m| m.provisioned.to_string()),
        ("destroyed", |m| m.destroyed.to_string()),
        ("check-in timeouts", |m| m.checkin_timeouts.to_string()),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| runs.iter().map(|r| f(&r.metrics)).collect())
        .collect();
    let label = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let width: Vec<usize> = (0..runs.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([runs[i].title.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:<label$}", "");
    for (i, run) in runs.iter().enumerate() {
        let _ = write!(out, "  {:>w$}", run.title, w = width[i]);
    }
    out.push('\n');
    for ((name, _), row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{name:<label$}");
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(out, "  {:>w$}", cell, w = width[i]);
        }
        out.push('\n');
    }
    out
}

/// What the table cannot say: demand beyond what the configuration can hold.
pub(crate) fn notes(runs: &[Run]) -> String {
    // Every policy runs the same trace on the same max_instances: the first run tells.
    let Some(m) = runs.first().map(|r| &r.metrics) else {
        return String::new();
    };
    if m.beyond_capacity == 0 || m.requests == 0 {
        return String::new();
    }
    format!(
        "note: {} of {} requests ({:.1}%) came when their pool was already full: the \
         configuration holds at most {} sessions at once (max_instances × sessions per server). \
         No policy can serve them on arrival, and the oracle counts only the sessions served.\n",
        m.beyond_capacity,
        m.requests,
        100.0 * m.beyond_capacity as f64 / m.requests as f64,
        m.capacity_sessions
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_read_as_minutes_and_seconds() {
        for (s, want) in [
            (0.0, "0 s"),
            (44.6, "45 s"),
            (225.0, "3 m 45 s"),
            (3900.0, "1 h 5 m"),
            (f64::NAN, "–"),
        ] {
            assert_eq!(super::wait(s), want);
        }
    }
}
