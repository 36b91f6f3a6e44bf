//! `kasm-scale validate FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

use kasm_scale_core::{ConfigError, load_file};

use super::output::Stdout;

/// Validates each file; prints a summary line per valid file on stdout and every problem on
/// stderr. Exit 0 valid, 1 invalid, 2 unreadable (the worst over all files).
pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut out = Stdout::new();
    let mut status = 0u8;
    for file in files {
        let name = file.display();
        match load_file(file) {
            Ok(loaded) => {
                let (backend, unchecked): (Vec<_>, Vec<_>) = backend_problems(&loaded.config)
                    .into_iter()
                    .partition(|p| p.severity == kasm_scale_core::Severity::Error);
                if !backend.is_empty() {
                    eprintln!("{name}: invalid: {} error(s)", backend.len());
                    for problem in &backend {
                        eprintln!("{name}: {problem}");
                    }
                    status = status.max(1);
                    continue;
                }
                out.line(format_args!("{name}: ok: {}", loaded.config.summary()));
                for warning in loaded.warnings.iter().chain(&unchecked) {
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
    out.finish(ExitCode::from(status))
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

/// Without the `aws` feature the override is not checked: a warning says so, rather than a
/// silent "ok".
#[cfg(not(feature = "aws"))]
fn backend_problems(config: &kasm_scale_core::config::Config) -> Vec<kasm_scale_core::Problem> {
    unchecked_overrides(config)
}

/// A warning for each AWS provider whose override this build cannot check.
#[cfg_attr(feature = "aws", allow(dead_code))]
fn unchecked_overrides(config: &kasm_scale_core::config::Config) -> Vec<kasm_scale_core::Problem> {
    use kasm_scale_core::config::VmProviderConfig;
    config
        .vm_providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            VmProviderConfig::Aws(c) if c.aws_ec2_config_override.is_some() => {
                Some(kasm_scale_core::Problem::warning(
                    format!("vm_providers[{i}].aws_ec2_config_override"),
                    "NOT checked: this kasm-scale is built without the `aws` feature; \
                     `cargo install kasm-scale --features aws` (or `cargo run --features aws -- \
                     validate …`) checks its keys against RunInstances",
                ))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in every build: the warning a build without `aws` prints instead of a silent "ok".
    #[test]
    fn an_override_a_build_cannot_check_is_named_as_not_checked() {
        let text = r#"
[[vm_providers]]
provider = "aws"
name = "ec2"
aws_access_key_id = "AKIAEXAMPLEEXAMPLE00"
aws_secret_access_key = "example-secret"
aws_region = "us-east-1"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 2
aws_ec2_config_override = { NoSuchKey = 1 }

[[vm_providers]]
provider = "aws"
name = "plain"
aws_access_key_id = "AKIAEXAMPLEEXAMPLE00"
aws_secret_access_key = "example-secret"
aws_region = "us-east-1"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 2
"#;
        let config = kasm_scale_core::load_str(text, kasm_scale_core::Format::Toml)
            .expect("valid")
            .config;
        let warnings = unchecked_overrides(&config);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let shown = warnings[0].to_string();
        assert!(
            shown.starts_with("warning: vm_providers[0].aws_ec2_config_override: NOT checked"),
            "{shown}"
        );
        assert_eq!(warnings[0].severity, kasm_scale_core::Severity::Warning);
    }
}
