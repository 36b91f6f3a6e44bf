//! The `kasm-scale` command.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `RUST_LOG=kasm_scale_core=debug kasm-scale simulate` prints the controller's spans and
    // events on stderr; nothing is printed without RUST_LOG.
    if std::env::var_os("RUST_LOG").is_some() {
        let logs = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr);
        match cli.log_format {
            cli::LogFormat::Text => logs.init(),
            cli::LogFormat::Json => logs.json().init(),
        }
    }
    cli.run()
}
