//! `kasm-scale validate FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

use kasm_scale_core::{ConfigError, load_file};

/// Validates each file; prints a summary line per valid file on stdout and every problem on
/// stderr. Exit 0 valid, 1 invalid, 2 unreadable (the worst over all files).
pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut status = 0u8;
    for file in files {
        let name = file.display();
        match load_file(file) {
            Ok(loaded) => {
                println!("{name}: ok: {}", loaded.config.summary());
                for warning in &loaded.warnings {
                    eprintln!("{name}: {warning}");
                }
            }
            Err(ConfigError::Invalid { problems }) => {
                let errors = problems
                    .iter()
                    .filter(|p| p.severity == kasm_scale_core::Severity::Error)
                    .count();
                eprintln!("{name}: invalid: {errors} error(s)");
                for problem in &problems {
                    eprintln!("{name}: {problem}");
                }
                status = status.max(1);
            }
            Err(e) => {
                // Read and syntax errors already name the file.
                eprintln!("{e}");
                status = status.max(2);
            }
        }
    }
    ExitCode::from(status)
}
