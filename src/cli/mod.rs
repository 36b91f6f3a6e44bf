//! Command-line interface.

mod output;
mod plan;
mod reload;
mod remote;
mod render;
mod serve;
#[cfg(feature = "sim")]
mod simulate;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Auto-scale pools of remote-desktop servers the way Kasm Workspaces does.
#[derive(Debug, Parser)]
#[command(name = "kasm-scale", version, about)]
pub struct Cli {
    /// How the log lines on stderr look (printed only when `RUST_LOG` is set): `text` or
    /// `json` (one JSON object per line, for log collectors).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check configuration files (TOML, YAML or JSON) and report every problem.
    ///
    /// Exit status: 0 when all files are valid, 1 when one is invalid, 2 when one cannot be read
    /// or parsed.
    Validate {
        /// Configuration files; the format comes from the extension.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print what the scaling engine would do now for every pool, as JSON.
    ///
    /// Exit status: 0, 1 when the configuration or the state is invalid (every problem with its
    /// path on stderr), 2 when a file cannot be read or parsed.
    Plan {
        /// The configuration (TOML, YAML or JSON).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The state: servers, queued requests and bookkeeping (JSON, see docs/embedding.md).
        #[arg(long, value_name = "STATE.json")]
        state: PathBuf,
        /// The time to plan for (RFC 3339); default: now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<jiff::Timestamp>,
        /// Print the reasons as text instead of the JSON plan.
        #[arg(long)]
        explain: bool,
    },
    /// Simulate a configuration against a demand trace on virtual time, with the real controller.
    ///
    /// Without options: the embedded default scenario (a pool fed by two clouds, a workday of 300
    /// users). Prints a summary table (or `--json`) and writes an SVG chart.
    #[cfg(feature = "sim")]
    Simulate(simulate::Args),
    /// Simulate a configuration against a demand trace on virtual time, with the real controller.
    ///
    /// Not in this build: the simulator is the feature `sim` (it needs tokio's test clock, which
    /// a build for `serve` leaves out). `cargo run --release --features sim -- simulate` runs it.
    #[cfg(not(feature = "sim"))]
    #[command(disable_help_flag = true)]
    Simulate {
        /// The simulator's options, unread in this build.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run the controller as a service: its tick loop, Kasm's guest check-in API
    /// (`/api/set_server_status`, …) and the health probes, until SIGINT or SIGTERM.
    ///
    /// Exit status: 0 after a clean shutdown, 1 when the configuration is invalid or the service
    /// cannot start, 2 when the configuration cannot be read or parsed.
    Serve(serve::Args),
    /// Drain a server, an auto-scale config or a pool of a running `serve`: its servers take
    /// no new session (a user's reconnect still goes to their own), and go once empty (or are
    /// kept with `--then keep`).
    ///
    /// Exit status: 0 done (the drain as JSON on stdout), 1 refused by the service (its reason
    /// on stderr), 2 the service cannot be reached or an option is wrong.
    Drain(remote::DrainArgs),
    /// End the drain of a server, an auto-scale config or a pool of a running `serve`.
    ///
    /// Exit status: as `drain`'s.
    Undrain(remote::UndrainArgs),
    /// List the drains in force in a running `serve`, with who asked, why, until when and
    /// their age.
    ///
    /// Exit status: as `drain`'s.
    Drains(remote::Api),
    /// List each auto-scale config's generation, its current and outdated servers and its
    /// rollout, in a running `serve`.
    ///
    /// Exit status: as `drain`'s.
    Generations(remote::Api),
    /// Make a running `serve` read its configuration file and TLS certificate again (as
    /// SIGHUP does), and print what changed or every problem.
    ///
    /// Exit status: 0 reloaded, 1 refused (every problem on stderr; the running configuration
    /// stays), 2 the service cannot be reached.
    Reload(remote::Api),
    /// Resume the paused rollout of an auto-scale config in a running `serve`.
    ///
    /// Exit status: as `drain`'s.
    ResumeRollout(remote::ResumeArgs),
    /// Render a startup-script template exactly as Kasm does (Python's `str.format`).
    ///
    /// Prints the rendered script on stdout (exit 0); on template errors prints one
    /// `FILE:LINE:COL: <Python's error>` line per problem on stderr, the error Python raises
    /// first, then every other problem in document order (exit 1); exit 2 when an input cannot
    /// be read. A built-in script is rendered as a server receives it: each value quoted for
    /// the script's language (bash or PowerShell); a template file is rendered raw, as Kasm does.
    Render {
        /// The template file.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "builtin",
            conflicts_with = "builtin"
        )]
        template: Option<PathBuf>,
        /// A built-in script instead of a file: `windows` or `linux`.
        #[arg(long, value_name = "NAME")]
        builtin: Option<String>,
        /// A variable; may be repeated. Overrides `--vars`.
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = render::parse_var)]
        vars: Vec<(String, String)>,
        /// A JSON object of variables (string values, or null for Python's None).
        #[arg(long = "vars", value_name = "FILE.json")]
        vars_file: Option<PathBuf>,
        /// Only parse, and list the variables the template uses. The variables are ignored: the
        /// problems listed are those that fail whatever their values (no `KeyError`).
        #[arg(long)]
        check: bool,
        /// Print the template text itself, unrendered (`{{` and `}}` as written).
        #[arg(long, conflicts_with_all = ["check", "vars", "vars_file", "example_vars"])]
        raw: bool,
        /// Start from a documented sample value of every built-in variable (a built-in script's
        /// own variables take their defaults); `--vars` and `--var` override them.
        #[arg(long)]
        example_vars: bool,
    },
}

impl Cli {
    /// Runs the command and returns the process exit status.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Validate { files } => validate::run(&files),
            #[cfg(feature = "sim")]
            Command::Simulate(args) => simulate::run(args),
            #[cfg(not(feature = "sim"))]
            Command::Simulate { .. } => {
                eprintln!(
                    "kasm-scale simulate: this kasm-scale is built without the simulator (the \
                     feature `sim`); build it with `--features sim`, e.g. \
                     `cargo run --release --features sim -- simulate`"
                );
                ExitCode::from(2)
            }
            Command::Serve(args) => serve::run(args),
            Command::Drain(args) => remote::drain(args),
            Command::Undrain(args) => remote::undrain(args),
            Command::Drains(api) => remote::simple(api, reqwest::Method::GET, "/api/v1/drains"),
            Command::Generations(api) => {
                remote::simple(api, reqwest::Method::GET, "/api/v1/generations")
            }
            Command::Reload(api) => remote::simple(api, reqwest::Method::POST, "/api/v1/reload"),
            Command::ResumeRollout(args) => remote::resume(args),
            Command::Plan {
                config,
                state,
                now,
                explain,
            } => plan::run(&config, &state, now, explain),
            Command::Render {
                template,
                builtin,
                vars,
                vars_file,
                check,
                raw,
                example_vars,
            } => {
                let source = match (template, builtin) {
                    (Some(file), _) => render::Source::File(file),
                    (None, Some(name)) => render::Source::Builtin(name),
                    // clap requires one of the two.
                    (None, None) => return ExitCode::from(2),
                };
                let options = render::Options {
                    check,
                    raw,
                    example_vars,
                };
                render::run(source, &vars, vars_file, options)
            }
        }
    }
}
