//! The summary table, the notes under it and the day-by-day table, in an admin's words.

use std::fmt::Write as _;

use kasm_scale_core::sim::Metrics;

use super::Run;

/// A table row: its label, how to show a run's value, and how to show the difference of the
/// second run from the first (for numeric rows).
type Row = (
    &'static str,
    fn(&Metrics) -> String,
    Option<fn(&Metrics, &Metrics) -> String>,
);

/// The title of the difference column in `--compare` mode.
pub(crate) const DIFFERENCE: &str = "difference";

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

/// A signed wait: `+45 s`, `-3 m 45 s`, `+0 s`.
fn wait_change(seconds: f64) -> String {
    let sign = if seconds < 0.0 { '-' } else { '+' };
    format!("{sign}{}", wait(seconds.abs()))
}

/// A signed count: `+3`, `-12`, `+0`.
fn count_change(a: u64, b: u64) -> String {
    format!("{:+}", i128::from(b) - i128::from(a))
}

/// A cost as the tables show it: `123.45`, or `–` when unpriced.
pub(crate) fn money(cost: Option<f64>) -> String {
    cost.map_or_else(|| "–".into(), |c| format!("{c:.2}"))
}

/// A signed difference of two costs, empty when either is unpriced.
fn money_change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.2}", b - a),
        _ => String::new(),
    }
}

/// The rows about stopped VMs and cost, for the runs that have them: stopped VM-hours when any
/// run kept VMs stopped, the cost rows when any run is priced (an unpriced run shows `–`).
fn cost_rows(runs: &[Run]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    if runs.iter().any(|r| r.metrics.stopped_vm_hours > 0.0) {
        rows.push((
            "stopped VM-hours (warm tier)",
            |m| format!("{:.1}", m.stopped_vm_hours),
            Some(|a, b| format!("{:+.1}", b.stopped_vm_hours - a.stopped_vm_hours)),
        ));
    }
    if runs
        .iter()
        .any(|r| r.metrics.cost.is_some() || !r.metrics.cost_by_provider.is_empty())
    {
        rows.push((
            COST,
            |m| match (m.cost, m.running_cost, m.stopped_cost) {
                (Some(c), Some(run), Some(stop)) if stop > 0.0 => {
                    format!("{c:.2} ({run:.2} + {stop:.2} stopped)")
                }
                (c, ..) => money(c),
            },
            Some(|a, b| money_change(a.cost, b.cost)),
        ));
        rows.push((
            "  cost per provider",
            |m| {
                m.cost_by_provider
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            None,
        ));
        rows.push((
            ORACLE_COST,
            |m| money(m.oracle_cost),
            Some(|a, b| money_change(a.oracle_cost, b.oracle_cost)),
        ));
    }
    rows
}

/// The label of the cost row.
pub(crate) const COST: &str = "cost (running + stopped)";

/// The label of the oracle's cost row.
pub(crate) const ORACLE_COST: &str = "oracle: cost at the first offering's price";

/// The metrics side by side, one column per policy; with two policies or more, a last column
/// with the last minus the one before it.
pub(crate) fn table(runs: &[Run]) -> String {
    let mut rows: Vec<Row> = vec![
        (
            "session requests",
            |m| m.requests.to_string(),
            Some(|a, b| count_change(a.requests, b.requests)),
        ),
        (
            "served at once",
            |m| {
                format!(
                    "{} ({:.1}%)",
                    m.served_immediately, m.served_immediately_pct
                )
            },
            Some(|a, b| {
                format!(
                    "{:+.1} pp",
                    b.served_immediately_pct - a.served_immediately_pct
                )
            }),
        ),
        (
            "never served",
            |m| m.never_served.to_string(),
            Some(|a, b| count_change(a.never_served, b.never_served)),
        ),
        (
            "wait p50 / p95",
            |m| format!("{} / {}", wait(m.wait_p50_s), wait(m.wait_p95_s)),
            Some(|a, b| {
                format!(
                    "{} / {}",
                    wait_change(b.wait_p50_s - a.wait_p50_s),
                    wait_change(b.wait_p95_s - a.wait_p95_s)
                )
            }),
        ),
        (
            "wait p99 / max",
            |m| format!("{} / {}", wait(m.wait_p99_s), wait(m.wait_max_s)),
            Some(|a, b| {
                format!(
                    "{} / {}",
                    wait_change(b.wait_p99_s - a.wait_p99_s),
                    wait_change(b.wait_max_s - a.wait_max_s)
                )
            }),
        ),
        (
            "VM-hours",
            |m| format!("{:.1}", m.vm_hours),
            Some(|a, b| format!("{:+.1}", b.vm_hours - a.vm_hours)),
        ),
        (
            "  per provider",
            |m| {
                m.vm_hours_by_provider
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            None,
        ),
        (
            ORACLE,
            |m| format!("{:.1}", m.oracle_vm_hours),
            Some(|a, b| format!("{:+.1}", b.oracle_vm_hours - a.oracle_vm_hours)),
        ),
        (
            "VM-hours / oracle",
            |m| format!("{:.2}", m.ratio_to_oracle),
            Some(|a, b| format!("{:+.2}", b.ratio_to_oracle - a.ratio_to_oracle)),
        ),
        // The stopped VM-hours and cost rows go here.
        (
            "peak servers",
            |m| m.peak_servers.to_string(),
            Some(|a, b| count_change(a.peak_servers, b.peak_servers)),
        ),
        (
            "provisioned",
            |m| m.provisioned.to_string(),
            Some(|a, b| count_change(a.provisioned, b.provisioned)),
        ),
        (
            "destroyed",
            |m| m.destroyed.to_string(),
            Some(|a, b| count_change(a.destroyed, b.destroyed)),
        ),
        (
            "check-in timeouts",
            |m| m.checkin_timeouts.to_string(),
            Some(|a, b| count_change(a.checkin_timeouts, b.checkin_timeouts)),
        ),
    ];
    let at = rows
        .iter()
        .position(|(l, _, _)| *l == "VM-hours / oracle")
        .map_or(rows.len(), |i| i + 1);
    rows.splice(at..at, cost_rows(runs));
    let mut titles: Vec<&str> = runs.iter().map(|r| r.title).collect();
    let pair = match runs {
        [.., a, b] => Some((&a.metrics, &b.metrics)),
        _ => None,
    };
    if pair.is_some() {
        titles.push(DIFFERENCE);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f, change)| {
            let mut row: Vec<String> = runs.iter().map(|r| f(&r.metrics)).collect();
            if let Some((a, b)) = pair {
                row.push(change.map_or_else(String::new, |c| c(a, b)));
            }
            row
        })
        .collect();
    let labels: Vec<&str> = rows.iter().map(|(l, _, _)| *l).collect();
    grid(&labels, &titles, &cells)
}

/// Rows under a header: a left-aligned label column (its header blank), then right-aligned
/// columns, each as wide as its widest cell or title.
fn grid(labels: &[&str], titles: &[&str], cells: &[Vec<String>]) -> String {
    let label = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let width: Vec<usize> = (0..titles.len())
        .map(|i| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([titles[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:<label$}", "");
    for (title, w) in titles.iter().zip(&width) {
        let _ = write!(out, "  {title:>w$}");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for (name, row) in labels.iter().zip(cells) {
        let _ = write!(out, "{name:<label$}");
        for (cell, w) in row.iter().zip(&width) {
            let _ = write!(out, "  {cell:>w$}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// The day-by-day table, when the run covers more than one day: per day its date and
/// weekday, requests, and per policy the share served at once, the VM-hours and (when any run
/// is priced) the cost (with one policy also the ratio to the oracle); warm-up days marked,
/// their figures left out of the summary above.
pub(crate) fn days(runs: &[Run]) -> String {
    let Some(first) = runs.first().map(|r| &r.metrics) else {
        return String::new();
    };
    if first.days.len() < 2 {
        return String::new();
    }
    let one = runs.len() == 1;
    let priced = runs
        .iter()
        .any(|r| r.metrics.days.iter().any(|d| d.cost.is_some()));
    let mut titles: Vec<String> = vec!["requests".into()];
    for r in runs {
        let who = if one {
            String::new()
        } else {
            format!("{}: ", r.key)
        };
        titles.push(format!("{who}served at once"));
        titles.push(format!("{who}VM-hours"));
        if priced {
            titles.push(format!("{who}cost"));
        }
    }
    if one {
        titles.push("VM-hours / oracle".into());
    }
    titles.push(String::new());
    let mut labels = Vec::new();
    let mut cells = Vec::new();
    for (i, d) in first.days.iter().enumerate() {
        let weekday = d
            .date
            .parse::<jiff::civil::Date>()
            .map(|date| date.strftime("%a").to_string())
            .unwrap_or_default();
        labels.push(format!("{} {weekday}", d.date));
        let mut row = vec![d.requests.to_string()];
        for r in runs {
            if let Some(day) = r.metrics.days.get(i) {
                row.push(if day.requests == 0 {
                    "–".into()
                } else {
                    format!("{:.1}%", day.served_immediately_pct)
                });
                row.push(format!("{:.1}", day.vm_hours));
                if priced {
                    row.push(money(day.cost));
                }
            }
        }
        if one {
            row.push(format!("{:.2}", d.ratio_to_oracle));
        }
        row.push(if d.warmup { "(warm-up)" } else { "" }.into());
        cells.push(row);
    }
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let mut out = String::from("\nday by day:\n");
    out += &grid(&labels, &titles, &cells);
    out
}

/// With one policy and configuration changes: the run without them (its baseline) and the run
/// with them, side by side (their difference in a third column); else `runs` as they are.
pub(crate) fn with_baseline(runs: &[Run]) -> Vec<Run> {
    let copy = |r: &Run, title: &'static str, metrics: Metrics| Run {
        key: r.key,
        title,
        metrics,
        series: Default::default(),
    };
    match runs {
        [one] if one.metrics.baseline.is_some() => {
            let base = one.metrics.baseline.as_deref().cloned();
            let mut out: Vec<Run> = base
                .map(|b| copy(one, "without the changes", b))
                .into_iter()
                .collect();
            out.push(copy(one, "with the changes", one.metrics.clone()));
            out
        }
        _ => runs
            .iter()
            .map(|r| copy(r, r.title, r.metrics.clone()))
            .collect(),
    }
}

/// A time as the change section shows it: `Tue 2026-12-01 10:00 UTC`.
fn when(t: jiff::Timestamp) -> String {
    t.strftime("%a %Y-%m-%d %H:%M UTC").to_string()
}

/// What each configuration change did, per policy.
pub(crate) fn changes(runs: &[Run]) -> String {
    let mut out = String::new();
    for r in runs.iter().filter(|r| !r.metrics.changes.is_empty()) {
        let who = if runs.len() > 1 {
            format!(" ({})", r.title)
        } else {
            String::new()
        };
        let _ = writeln!(out, "\nconfiguration changes{who}:");
        for (i, c) in r.metrics.changes.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>3}. {} at {} ({} after the start)",
                i + 1,
                c.label,
                when(c.at),
                wait(c.at_s)
            );
            let generations = &c.reload.new_generations;
            let _ = writeln!(
                out,
                "     new generation: {}",
                if generations.is_empty() {
                    "none (no config's servers are shaped differently)".to_owned()
                } else {
                    generations.join(", ")
                }
            );
            let gone = match (c.last_outdated_gone_at, c.last_outdated_gone_after_s) {
                _ if c.outdated_at_change == 0 => String::new(),
                (Some(t), Some(after)) => format!(
                    "; the last went at {}, {} after the change",
                    when(t),
                    wait(after)
                ),
                _ => "; some were left at the end of the run (not by the end)".to_owned(),
            };
            let _ = writeln!(out, "     servers outdated: {}{gone}", c.outdated_at_change);
            let built: Vec<String> = c
                .built
                .iter()
                .map(|b| {
                    format!(
                        "{} {} of {}{}",
                        b.config,
                        b.servers,
                        b.generation.as_deref().unwrap_or("an unknown generation"),
                        if b.current { " (current)" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "     servers built: {}; of an older generation: {}",
                if built.is_empty() {
                    "none".to_owned()
                } else {
                    built.join(", ")
                },
                c.built_outdated
            );
            let _ = writeln!(
                out,
                "     minutes below both the run without changes and the minimum: {} during \
                 the rollout, {} after it",
                c.minutes_below_baseline, c.minutes_below_baseline_after
            );
            let _ = writeln!(out, "     sessions ended by us: {}", c.sessions_ended_by_us);
            if c.requests_refused > 0 {
                let _ = writeln!(
                    out,
                    "     requests refused (their pool is gone): {}",
                    c.requests_refused
                );
            }
        }
    }
    out
}

/// How the reconnects landed, per policy.
pub(crate) fn reconnects(runs: &[Run]) -> String {
    let mut out = String::new();
    for r in runs.iter().filter(|r| !r.metrics.reconnects.is_empty()) {
        let c = &r.metrics.reconnects;
        let who = if runs.len() > 1 {
            format!(" ({})", r.title)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nreconnects{who}: {}; to the same server {} ({:.1}% of those seated), still \
             waiting {}, elsewhere {}",
            c.requests, c.same_server, c.same_server_pct, c.still_waiting, c.elsewhere
        );
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
