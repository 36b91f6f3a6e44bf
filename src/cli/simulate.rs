//! `kasm-scale simulate`: run a demand trace through the real controller on virtual time.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::Config;
use kasm_scale_core::sim::{
    DEFAULT_USERS, Metrics, Progress, Series, SimOptions, TraceEvent, default_scenario,
    kasm_policy, parse_trace, simulate, workday,
};
use kasm_scale_core::{ConfigError, load_file};

use super::output::Stdout;

/// What to simulate and how to report it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration (default: the embedded scenario).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A demand trace, CSV `time,event,session,pool[,user]` (default: a generated workday).
    #[arg(long, value_name = "FILE.csv")]
    pub trace: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Wall-clock time of the start (schedules are evaluated against it).
    #[arg(long, value_name = "RFC3339")]
    pub start: Option<Timestamp>,
    /// How long to simulate, e.g. `24h` (default: the last trace event plus an hour).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<SignedDuration>,
    /// Where to write the chart.
    #[arg(long, value_name = "PATH", default_value = "kasm-scale-simulation.svg")]
    pub svg: PathBuf,
    /// Print the metrics as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run the plain Kasm policy and ours on the same trace, side by side.
    #[arg(long)]
    pub compare: bool,
}

fn fail(code: u8, message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(code)
}

/// Runs the simulation; exit 0, 1 for an invalid configuration or trace, 2 for unreadable files.
pub fn run(args: Args) -> ExitCode {
    let mut options = SimOptions {
        seed: args.seed,
        duration: args.duration,
        ..SimOptions::default()
    };
    if let Some(start) = args.start {
        options.start = start;
    }
    let (config, default_trace) = match &args.config {
        None => default_scenario(args.seed),
        Some(path) => match load_file(path) {
            Ok(l) => {
                let pool = l
                    .config
                    .pools
                    .first()
                    .map(|p| p.server_pool_name.clone())
                    .unwrap_or_default();
                let trace = workday(&pool, DEFAULT_USERS, args.seed);
                (l.config, trace)
            }
            Err(ConfigError::Invalid { problems }) => {
                let text: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {p}", path.display()))
                    .collect();
                return fail(1, text.join("\n"));
            }
            Err(e) => return fail(2, e.to_string()),
        },
    };
    let trace: Vec<TraceEvent> = match &args.trace {
        None => default_trace,
        Some(path) => {
            let text = match kasm_scale_core::read_input_file(path) {
                Ok(t) => t,
                Err(e) => return fail(2, format!("{}: cannot read: {e}", path.display())),
            };
            match parse_trace(&text, options.start) {
                Ok(t) => t,
                Err(e) => return fail(1, format!("{}: {e}", path.display())),
            }
        }
    };
    let runs: Vec<(&str, Config)> = if args.compare {
        vec![
            ("kasm", kasm_policy(&config)),
            ("kasm-scale", config.clone()),
        ]
    } else {
        vec![("kasm-scale", config.clone())]
    };
    let mut results = Vec::new();
    for (name, config) in &runs {
        // A progress bar on stderr when a person watches stdout.
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(1000);
            bar.set_message(format!("simulating {name}"));
            bar
        });
        if let Some(bar) = &bar {
            let bar = bar.clone();
            options.progress = Some(Progress(std::sync::Arc::new(move |done: f64| {
                bar.set_position((done * 1000.0) as u64)
            })));
        }
        let result = simulate(config, &trace, &options);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        match result {
            Ok(r) => results.push((*name, r)),
            Err(e) => return fail(1, e.to_string()),
        }
    }
    let mut out = Stdout::new();
    if args.json {
        let json = if args.compare {
            serde_json::to_string(
                &results
                    .iter()
                    .map(|(n, (m, _))| ((*n).to_owned(), m))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        } else {
            serde_json::to_string(&results[0].1.0)
        };
        match json {
            Ok(j) => out.line(j),
            Err(e) => return fail(2, format!("cannot write the metrics: {e}")),
        }
    } else {
        out.text(&table(&results));
    }
    if let Some((_, (_, series))) = results.last()
        && let Err(e) = chart(series, &args.svg)
    {
        return fail(
            2,
            format!("{}: cannot write the chart: {e}", args.svg.display()),
        );
    }
    if !args.json {
        out.line(format_args!("chart: {}", args.svg.display()));
    }
    out.finish(ExitCode::SUCCESS)
}

/// A table row: its label and how to show a run's value.
type Row = (&'static str, fn(&Metrics) -> String);

/// The metrics side by side.
fn table(results: &[(&str, (Metrics, Series))]) -> String {
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
            format!("{:.0} s / {:.0} s", m.wait_p50_s, m.wait_p95_s)
        }),
        ("wait p99 / max", |m| {
            format!("{:.0} s / {:.0} s", m.wait_p99_s, m.wait_max_s)
        }),
        ("VM-hours", |m| format!("{:.1}", m.vm_hours)),
        ("  per provider", |m| {
            m.vm_hours_by_provider
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ("oracle VM-hours", |m| format!("{:.1}", m.oracle_vm_hours)),
        ("VM-hours / oracle", |m| format!("{:.2}", m.ratio_to_oracle)),
        ("peak servers", |m| m.peak_servers.to_string()),
        ("provisioned", |m| m.provisioned.to_string()),
        ("destroyed", |m| m.destroyed.to_string()),
        ("check-in timeouts", |m| m.checkin_timeouts.to_string()),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| results.iter().map(|(_, (m, _))| f(m)).collect())
        .collect();
    let width: Vec<usize> = (0..results.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([results[i].0.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:<20}", "");
    for (i, (name, _)) in results.iter().enumerate() {
        let _ = write!(out, "  {:>w$}", name, w = width[i]);
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{label:<20}");
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(out, "  {:>w$}", cell, w = width[i]);
        }
        out.push('\n');
    }
    out
}

/// Demand, free sessions and servers per provider over time.
fn chart(series: &Series, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let hours: Vec<f64> = series.minutes.iter().map(|m| m / 60.0).collect();
    let x_max = hours.last().copied().unwrap_or(1.0).max(1.0);
    let y_max = series
        .demand
        .iter()
        .chain(series.free.iter())
        .chain(series.servers.values().flatten())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("kasm-scale simulation", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("sessions / servers")
        .draw()?;
    let line = |values: &[u32]| {
        hours
            .iter()
            .copied()
            .zip(values.iter().map(|v| f64::from(*v)))
            .collect::<Vec<_>>()
    };
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = vec![
        ("sessions".into(), line(&series.demand)),
        ("free sessions".into(), line(&series.free)),
    ];
    lines.extend(
        series
            .servers
            .iter()
            .map(|(name, v)| (format!("servers on {name}"), line(v))),
    );
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
