//! Command-line interface.

mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Auto-scale pools of remote-desktop servers the way Kasm Workspaces does.
#[derive(Debug, Parser)]
#[command(name = "kasm-scale", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

impl Cli {
    /// Runs the command and returns the process exit status.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Validate { files } => validate::run(&files),
        }
    }
}
