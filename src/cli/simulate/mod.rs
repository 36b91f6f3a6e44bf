//! `kasm-scale simulate`: run a demand trace through the real controller on virtual time.

mod chart;
mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::Config;
use kasm_scale_core::sim::{
    ConfigChange, DEFAULT_CONFIG, DEFAULT_DAYS, DEFAULT_USERS, MAX_SIM_DURATION, MAX_SIM_EVENTS,
    Metrics, Progress, Series, SimError, SimOptions, TraceEvent, class_week, demand_policy,
    has_warm_tier, kasm_policy, office_week, parse_change_time, parse_duration, parse_trace,
    simulate, with_disconnects, without_warm_tier,
};
use kasm_scale_core::{ConfigError, Format, load_file, load_str};

use super::output::Stdout;

/// Most users of a generated workday (`--users`).
const MAX_USERS: u32 = 100_000;

/// Most days of generated demand (`--days`): a simulation covers at most 366 days.
const MAX_DAYS: u32 = 366;

/// Most warm-up days (`--warmup-days`): fewer than the most days.
const MAX_WARMUP_DAYS: u32 = MAX_DAYS - 1;

/// Trace events one generated user makes in a day at most: a morning and an afternoon session
/// around lunch, and an evening one.
const EVENTS_PER_USER_DAY: u64 = 6;

/// Where the chart goes unless `--svg`, `--no-svg` or `--json` says otherwise.
const DEFAULT_SVG: &str = "kasm-scale-simulation.svg";

/// Points of a chart line at most: longer simulations sample less often than every minute.
const MAX_CHART_POINTS: u64 = 3_000;

/// What to simulate and how to report it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration (default: the embedded scenario).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A demand trace, CSV `time,event,session,pool[,user]` (default: demand generated for
    /// the configuration's first pool, see `--generate`).
    #[arg(long, value_name = "FILE.csv")]
    pub trace: Option<PathBuf>,
    /// What demand to generate without `--trace`: `office` (workdays of `--users` users:
    /// morning ramp, lunch dip, evening tail) or `classes` (three classes of 30 students at
    /// 09:00, 10:00 and 11:00) [default: office].
    #[arg(long, value_name = "KIND", conflicts_with = "trace")]
    pub generate: Option<Generate>,
    /// Users of the generated office workdays (without `--trace`), 1 to 100000 [default: 300].
    #[arg(long, value_name = "N", conflicts_with = "trace",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_USERS)))]
    pub users: Option<u32>,
    /// Days of generated demand, 24 hours each from the start (without `--trace`), 1 to 366
    /// [default: 5, a week of workdays from the default start, a Monday]: Monday to Friday
    /// (UTC) get demand, each day drawn afresh; Saturdays and Sundays are empty. The run lasts
    /// the days in full unless `--duration` says otherwise.
    #[arg(long, value_name = "N", conflicts_with = "trace",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    pub days: Option<u32>,
    /// Days at the start, 24 hours each, that only warm the pool up: shown day by day but left
    /// out of the summary's figures; 0 to 365, fewer than the days simulated [default: 0].
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_WARMUP_DAYS)))]
    pub warmup_days: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Wall-clock time of the start, RFC 3339 (schedules are evaluated against it)
    /// [default: 2026-11-30T00:00:00Z, a Monday at midnight UTC].
    #[arg(long, value_name = "RFC3339")]
    pub start: Option<Timestamp>,
    /// How long to simulate: a number and a unit, e.g. `90m`, `8h`, `7d`, `1w`, `1h30m`; at most
    /// 366 days [default: the last trace event plus an hour].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<SignedDuration>,
    /// Where to write the chart [default: kasm-scale-simulation.svg, none with `--json`].
    #[arg(long, value_name = "PATH", conflicts_with = "no_svg")]
    pub svg: Option<PathBuf>,
    /// Write no chart.
    #[arg(long)]
    pub no_svg: bool,
    /// Print the metrics as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run the plain Kasm policy and ours on the same trace, side by side; when a config keeps
    /// a warm tier (`warm_pool`), ours twice: with running standby only and with the warm tier.
    #[arg(long)]
    pub compare: bool,
    /// Apply configuration FILE at AT, as a reload would (repeatable): AT an RFC 3339 time or
    /// an offset from the start such as `30h`, `90m` or `1d6h`. The run without the changes is
    /// simulated too, to compare with.
    #[arg(long, value_name = "AT=FILE", value_parser = change_arg)]
    pub change_config: Vec<(String, PathBuf)>,
    /// Percent of the sessions (0 to 100) whose user disconnects once and comes back within
    /// `--reconnect-within` while the session is kept (a reconnect) [default: 0].
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub disconnects: Option<f64>,
    /// How soon a disconnected user comes back, at most (with `--disconnects`) [default: 15m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "disconnects")]
    pub reconnect_within: Option<SignedDuration>,
}

/// `AT=FILE`, split at the first `=`.
fn change_arg(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((at, file)) if !at.trim().is_empty() && !file.is_empty() => {
            Ok((at.trim().to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "`{text}` is not AT=FILE: give a time and a configuration file, e.g. 30h=new.toml \
             or 2026-12-01T10:00:00Z=new.toml"
        )),
    }
}

/// A percentage from 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        Ok(_) => Err(format!("`{text}` must be from 0 to 100")),
        Err(_) => Err(format!("`{text}` is not a number from 0 to 100")),
    }
}

/// The demand `--generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// Office workdays of `--users` users, Monday to Friday.
    Office,
    /// Three classes of 30 students each workday, at 09:00, 10:00 and 11:00.
    Classes,
}

/// One policy's run: its JSON key, its column title, what it measured.
pub(crate) struct Run {
    pub key: &'static str,
    pub title: &'static str,
    pub metrics: Metrics,
    pub series: Series,
}

fn fail(code: u8, message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(code)
}

/// Reads the trace file: the one place the simulator reads one.
fn read_trace(path: &Path) -> Result<String, String> {
    kasm_scale_core::read_input_file(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// The configuration and how the chart names it; an exit status when it cannot be used.
fn config(args: &Args) -> Result<(Config, String), ExitCode> {
    let Some(path) = &args.config else {
        // The embedded text is checked by the tests: it always loads.
        let config = load_str(DEFAULT_CONFIG, Format::Toml)
            .map(|l| l.config)
            .unwrap_or_default();
        return Ok((config, "the default scenario".into()));
    };
    let (config, warnings) = load(path, "")?;
    if config.pools.is_empty() {
        return Err(fail(
            1,
            format!(
                "{}: no pools defined: there is nothing to simulate",
                path.display()
            ),
        ));
    }
    for w in warnings {
        eprintln!("{w}");
    }
    Ok((config, file_name(path)))
}

/// How reports name a file: its name.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// A configuration file and its warnings, each prefixed with `context` and the file; every
/// problem too (exit 1 for an invalid file, 2 for one that cannot be read).
fn load(path: &Path, context: &str) -> Result<(Config, Vec<String>), ExitCode> {
    match load_file(path) {
        Ok(l) => {
            let warnings = l
                .warnings
                .iter()
                .map(|w| format!("{context}{}: {w}", path.display()))
                .collect();
            Ok((l.config, warnings))
        }
        Err(ConfigError::Invalid { problems }) => {
            let text: Vec<String> = problems
                .iter()
                .map(|p| format!("{context}{}: {p}", path.display()))
                .collect();
            Err(fail(1, text.join("\n")))
        }
        Err(e) => Err(fail(2, format!("{context}{e}"))),
    }
}

/// The `--change-config` changes, each read and checked before the run.
fn changes(args: &Args, start: Timestamp) -> Result<Vec<ConfigChange>, ExitCode> {
    let mut out = Vec::new();
    for (at, path) in &args.change_config {
        let context = format!("--change-config {at}={}: ", path.display());
        let at = parse_change_time(at, start).map_err(|e| fail(1, format!("{context}{e}")))?;
        let (config, warnings) = load(path, &context)?;
        for w in warnings {
            eprintln!("{w}");
        }
        out.push(ConfigChange {
            at,
            config,
            label: file_name(path),
        });
    }
    Ok(out)
}

/// The trace: the file's, or generated demand for the configuration's first pool.
fn trace(args: &Args, config: &Config, start: Timestamp) -> Result<Vec<TraceEvent>, ExitCode> {
    if let Some(path) = &args.trace {
        let text = read_trace(path).map_err(|e| fail(2, e))?;
        return parse_trace(&text, start).map_err(|e| fail(1, format!("{}: {e}", path.display())));
    }
    let pool = &config.pools[0].server_pool_name;
    let days = args.days.unwrap_or(DEFAULT_DAYS);
    if args.generate == Some(Generate::Classes) {
        if let Some(users) = args.users {
            return Err(fail(
                1,
                format!(
                    "--users {users} cannot be used with --generate classes: its classes have \
                     30 students each"
                ),
            ));
        }
        return Ok(class_week(pool, days, start, args.seed));
    }
    let users = args.users.unwrap_or(DEFAULT_USERS);
    let events = u64::from(users) * u64::from(days) * EVENTS_PER_USER_DAY;
    if events > MAX_SIM_EVENTS as u64 {
        return Err(fail(
            1,
            format!(
                "--users {users} × --days {days} may make up to {events} trace events, more than \
                 the simulator takes ({MAX_SIM_EVENTS}): fewer users or days"
            ),
        ));
    }
    Ok(office_week(pool, users, days, start, args.seed))
}

/// Runs the simulation; exit 0, 1 for an invalid configuration, trace or option, 2 for files
/// that cannot be read or written.
pub fn run(args: Args) -> ExitCode {
    let mut options = SimOptions {
        seed: args.seed,
        duration: args.duration,
        warmup_days: args.warmup_days,
        ..SimOptions::default()
    };
    if let Some(start) = args.start {
        options.start = start;
    }
    let (config, config_name) = match config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut trace = match trace(&args, &config, options.start) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if let Some(share) = args.disconnects {
        let within = args
            .reconnect_within
            .unwrap_or(SignedDuration::from_mins(15));
        if within.is_negative() || within.is_zero() {
            return fail(
                1,
                format!("--reconnect-within {within:#} must be longer than 0"),
            );
        }
        trace = with_disconnects(&trace, share / 100.0, within, args.seed);
    }
    options.changes = match changes(&args, options.start) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Generated demand runs its whole days (a weekend at the end included); a trace until an
    // hour after its last event.
    if options.duration.is_none() && args.trace.is_none() {
        let days = args.days.unwrap_or(DEFAULT_DAYS);
        options.duration = Some(SignedDuration::from_hours(24 * i64::from(days)));
    }
    // About MAX_CHART_POINTS samples, each a whole number of minutes.
    let end = options.duration.unwrap_or_else(|| {
        trace.last().map_or(SignedDuration::ZERO, |e| e.at) + SignedDuration::from_hours(1)
    });
    let end = end.clamp(SignedDuration::ZERO, MAX_SIM_DURATION);
    let days = (end.as_secs().unsigned_abs()).div_ceil(86_400).max(1);
    if u64::from(args.warmup_days) >= days {
        return fail(
            1,
            format!(
                "--warmup-days {} must be less than the days simulated ({days}{}): nothing \
                 would be measured",
                args.warmup_days,
                if args.duration.is_some() {
                    ", from --duration"
                } else {
                    ": the run ends an hour after the last session; --duration runs longer"
                }
            ),
        );
    }
    let minutes = (end.as_secs().unsigned_abs() / 60).div_ceil(MAX_CHART_POINTS);
    options.sample = std::time::Duration::from_secs(60 * minutes.max(1));

    // A chart path that cannot be written fails before the run.
    let svg = args
        .svg
        .clone()
        .or_else(|| (!args.no_svg && !args.json).then(|| PathBuf::from(DEFAULT_SVG)));
    let target = match svg.as_deref().map(chart::Target::open).transpose() {
        Ok(t) => t,
        Err((path, e)) => {
            return fail(
                2,
                format!("{}: cannot write the chart: {e}", path.display()),
            );
        }
    };

    // The same configuration twice: under Kasm's rules exactly, and with our demand policy
    // (the changes' configurations the same way); with a warm tier, our demand policy with
    // running standby only and with the warm tier.
    type Policy = fn(&Config) -> Config;
    let runs: Vec<(&str, &str, Policy)> = if args.compare && has_warm_tier(&config) {
        vec![
            ("kasm", "Kasm's rules", kasm_policy),
            ("kasm-scale", "kasm-scale: demand", demand_running_only),
            (
                "kasm-scale-warm",
                "kasm-scale: demand + warm",
                demand_policy,
            ),
        ]
    } else if args.compare {
        vec![
            ("kasm", "Kasm's rules", kasm_policy),
            ("kasm-scale", "kasm-scale: demand", demand_policy),
        ]
    } else {
        vec![("kasm-scale", "kasm-scale", Config::clone)]
    };
    let mut results = Vec::new();
    for (key, title, policy) in &runs {
        let mut options = options.clone();
        for c in &mut options.changes {
            c.config = policy(&c.config);
        }
        match simulate_one(&policy(&config), &trace, &options, key) {
            Ok((metrics, series)) => results.push(Run {
                key,
                title,
                metrics,
                series,
            }),
            Err(e) => {
                if let Some(t) = target {
                    t.abandon();
                }
                return fail(1, sim_error(&args, &e));
            }
        }
    }
    let mut out = Stdout::new();
    if args.json {
        let json = if args.compare {
            serde_json::to_string(
                &results
                    .iter()
                    .map(|r| (r.key.to_owned(), &r.metrics))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        } else {
            serde_json::to_string(&results[0].metrics)
        };
        match json {
            Ok(j) => out.line(j),
            Err(e) => return fail(2, format!("cannot write the metrics: {e}")),
        }
    } else {
        out.text(&report::table(&report::with_baseline(&results)));
        out.text(&report::notes(&results));
        out.text(&report::changes(&results));
        out.text(&report::reconnects(&results));
        out.text(&report::days(&results));
    }
    if let Some(target) = target {
        let about = chart::About {
            seed: args.seed,
            start: options.start,
            config: &config_name,
        };
        let path = target.path().to_owned();
        if let Err(e) = chart::render(&results, &about).and_then(|svg| Ok(target.write(&svg)?)) {
            return fail(
                2,
                format!("{}: cannot write the chart: {e}", path.display()),
            );
        }
        if !args.json {
            out.line(format_args!("chart: {}", path.display()));
        }
    }
    out.finish(ExitCode::SUCCESS)
}

/// Our demand policy with running standby only (no warm tier).
fn demand_running_only(config: &Config) -> Config {
    demand_policy(&without_warm_tier(config))
}

/// One run, with a progress bar on stderr when a person watches stdout.
fn simulate_one(
    config: &Config,
    trace: &[TraceEvent],
    options: &SimOptions,
    name: &str,
) -> Result<(Metrics, Series), SimError> {
    let mut options = options.clone();
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
    let result = simulate(config, trace, &options);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// A simulation error; one about a line of the trace file names the file.
fn sim_error(args: &Args, e: &SimError) -> String {
    match (e, &args.trace) {
        (SimError::UnknownPool { line, .. }, Some(path)) if *line > 0 => {
            format!("{}: {e}", path.display())
        }
        _ => e.to_string(),
    }
}
