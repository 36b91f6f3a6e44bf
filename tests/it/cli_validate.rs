//! `kasm-scale validate` and `--help`, run as a user would.

use std::path::{Path, PathBuf};

use crate::common;

use common::{kasm_scale, text};

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            format!(
                "examples/config/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn help_lists_the_subcommands() {
    let out = kasm_scale(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("validate"), "{help}");
}

#[test]
fn the_examples_are_valid() {
    let files = examples();
    assert_eq!(files.len(), 5, "{files:?}");
    let args: Vec<&str> = ["validate"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = kasm_scale(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr, "", "no warnings expected");
    assert_eq!(
        stdout,
        "examples/config/aws-windows-ad.toml: ok: 1 pool, 1 auto-scale config, 1 VM provider\n\
         examples/config/azure-linux.yaml: ok: 1 pool, 1 auto-scale config, 1 VM provider\n\
         examples/config/multi-cloud.json: ok: 1 pool, 2 auto-scale configs, 2 VM providers\n\
         examples/config/replicas.toml: ok: 1 pool, 1 auto-scale config, 1 VM provider\n\
         examples/config/service-memory.toml: ok: 1 pool, 1 auto-scale config, 1 VM provider\n"
    );
}

#[test]
fn five_mistakes_are_all_reported_with_their_paths() {
    let out = kasm_scale(&["validate", "tests/data/five-mistakes.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let f = "tests/data/five-mistakes.toml";
    let expected = [
        "invalid: 10 error(s)",
        "vm_providers[0].max_instances: must be between 1 and 10000, got 0",
        "vm_providers[0].aws_secret_access_key: a secret must be a string (the value found is not shown)",
        "pools[0].autoscale[1].conection_port: unknown field, did you mean `connection_port`?",
        "pools[0].autoscale[1].minimum_pool_standby_sessions: must be between 0 and 100000, got -1",
        "pools[0].autoscale[1].schedules[0].active_start_time: `25:00:00` is not a valid time of day (hours 00-23, minutes and seconds 00-59)",
        "pools[0].autoscale[1].schedules[0].timezone: unknown time zone `Europe/Berln` (use an IANA name such as `Europe/Berlin`)",
        "pools[0].autoscale[1].vm_provider_config_id: refers to VM provider config `gcp`, which is not defined",
        "pools[0].autoscale[1].connection_port: required for KasmVNC connections (they have no default port)",
        "pools[0].autoscale[1].max_simultaneous_sessions_per_server: must be 1 for KasmVNC connections",
        "pools[0].autoscale[1].ldap_id: required when ad_create_machine_record is true",
    ];
    let want: String = expected.iter().map(|l| format!("{f}: {l}\n")).collect();
    assert_eq!(text(&out.stderr), want);
    assert!(
        !text(&out.stderr).contains("12345"),
        "the secret's value must not be shown"
    );
}

#[test]
fn unreadable_and_unparseable_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(
        &bad_toml,
        "[[zones]]\nzone_name = \"default\"\nupstream_auth_address = \n",
    )
    .unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_yaml,
        "zones:\n  - zone_name: a\n   upstream_auth_address: b\n",
    )
    .unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(
        &bad_json,
        "{\n  \"zones\": [\n    {\"zone_name\": \"a\",}\n  ]\n}\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.toml");
    let odd = dir.path().join("config.ini");
    std::fs::write(&odd, "x=1").unwrap();

    let run = |p: &PathBuf| kasm_scale(&["validate", p.to_str().unwrap()]);
    let out = run(&bad_toml);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!("{}:3:25: ", bad_toml.display())),
        "{}",
        text(&out.stderr)
    );
    let out = run(&bad_yaml);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!("{}:3:", bad_yaml.display())),
        "{}",
        text(&out.stderr)
    );
    let out = run(&bad_json);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!("{}:3:23: trailing comma", bad_json.display())),
        "{}",
        text(&out.stderr)
    );
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&odd);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown format"),
        "{}",
        text(&out.stderr)
    );

    // The worst status over several files wins; valid files are still summarised.
    let out = kasm_scale(&[
        "validate",
        "examples/config/multi-cloud.json",
        "tests/data/five-mistakes.toml",
        bad_toml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("multi-cloud.json: ok"));
}

/// With the `aws` feature, `validate` checks the RunInstances override as `AwsProvider` would.
#[cfg(feature = "aws")]
#[test]
fn a_bad_aws_override_is_reported_with_its_path() {
    let out = kasm_scale(&["validate", "tests/data/bad-aws-override.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "tests/data/bad-aws-override.toml: invalid: 1 error(s)\n\
         tests/data/bad-aws-override.toml: vm_providers[0].aws_ec2_config_override.MetadataOptions.HttpTokens: `always` is not one of optional, required\n"
    );
}

/// The README shows `validate`'s output for `tests/data/five-mistakes.toml`: it is what the
/// program prints, line for line.
#[test]
fn the_readme_shows_the_real_validate_output() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "$ kasm-scale validate tests/data/five-mistakes.toml\n";
    let shown = readme
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README shows the excerpt");
    let out = std::process::Command::new(common::binary())
        .args(["validate", "tests/data/five-mistakes.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let real = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(shown, real, "README excerpt vs real output");
}
