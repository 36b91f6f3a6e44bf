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
                let backend = backend_problems(&loaded.config);
                if !backend.is_empty() {
                    eprintln!("{name}: invalid: {} error(s)", backend.len());
                    for problem in &backend {
                        eprintln!("{name}: {problem}");
                    }
                    status = status.max(1);
                    continue;
                }
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

/// What only a backend crate can check: with the `aws` feature, each AWS provider's
/// `aws_ec2_config_override` against the RunInstances keys `AwsProvider` accepts.
#[cfg(feature = "aws")]
fn backend_problems(config: &kasm_scale_core::config::Config) -> Vec<kasm_scale_core::Problem> {
    use kasm_scale_core::config::VmProviderConfig;
    config
        .vm_providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            VmProviderConfig::Aws(c) => {
                kasm_scale_aws::check_override(c).err().map(|(path, why)| {
                    kasm_scale_core::Problem::error(format!("vm_providers[{i}].{path}"), why)
                })
            }
            _ => None,
        })
        .collect()
}

/// Without backend crates there is nothing more to check.
#[cfg(not(feature = "aws"))]
fn backend_problems(_config: &kasm_scale_core::config::Config) -> Vec<kasm_scale_core::Problem> {
    Vec::new()
}
