//! The configuration reference (docs/configuration.md) names every field the loader accepts
//! and no other, and the operations guide's systemd unit works as written.

use kasm_scale::config::{
    AutoScaleConfig, AwsAlternative, AwsVmConfig, AzureAlternative, AzureVmConfig, BrokerApiConfig,
    CheckinTokenConfig, Config, FileStoreConfig, LdapConfig, MemoryAlternative, MemoryVmConfig,
    Outage, Pool, PostgresStoreConfig, RolloutPolicy, Schedule, WarmPool, Workspace, Zone,
};
use serde::de::DeserializeOwned;

/// The field names of `T`, read from serde's "unknown field" message.
fn fields<T: DeserializeOwned>() -> Vec<String> {
    let err = serde_json::from_str::<T>(r#"{"zz-not-a-field": 0}"#)
        .err()
        .expect("an unknown field is refused")
        .to_string();
    let list = err
        .split_once("expected")
        .expect("serde lists the fields")
        .1;
    let names: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "{err}");
    names
}

/// The configuration reference.
fn reference() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap()
}

/// Every field the loader accepts, per section.
fn all_fields() -> Vec<Vec<String>> {
    vec![
        fields::<Config>(),
        fields::<Zone>(),
        fields::<LdapConfig>(),
        fields::<AwsVmConfig>(),
        fields::<AzureVmConfig>(),
        fields::<MemoryVmConfig>(),
        fields::<Outage>(),
        fields::<Pool>(),
        fields::<AutoScaleConfig>(),
        fields::<Schedule>(),
        fields::<RolloutPolicy>(),
        fields::<WarmPool>(),
        fields::<AwsAlternative>(),
        fields::<AzureAlternative>(),
        fields::<MemoryAlternative>(),
        fields::<Workspace>(),
        fields::<CheckinTokenConfig>(),
        fields::<BrokerApiConfig>(),
        fields::<FileStoreConfig>(),
        fields::<PostgresStoreConfig>(),
    ]
}

#[test]
fn every_field_is_documented() {
    let reference = reference();
    let all = all_fields();
    let missing: Vec<&String> = all
        .iter()
        .flatten()
        .filter(|f| !reference.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields missing from docs/configuration.md: {missing:?}"
    );
    assert!(all.iter().map(Vec::len).sum::<usize>() > 80);
}

/// The names in the first column of the reference's field tables (`| field | default | … |`).
fn documented_fields(reference: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_table = false;
    for line in reference.lines() {
        if line.starts_with("| field |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if in_table && !line.starts_with("|---") {
            let first = line.split('|').nth(1).unwrap_or_default();
            names.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    names
}

#[test]
fn every_documented_field_exists() {
    let mut known: std::collections::BTreeSet<String> =
        all_fields().into_iter().flatten().collect();
    // The tags of the internally tagged sections (serde lists their variants, not the tag).
    known.extend(["kind".to_owned(), "provider".to_owned()]);
    let documented = documented_fields(&reference());
    assert!(documented.len() > 80, "{documented:?}");
    let unknown: Vec<&String> = documented.iter().filter(|f| !known.contains(*f)).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents fields the loader does not accept: {unknown:?}"
    );
}

use crate::common;

/// The operations guide's systemd unit, as written.
fn systemd_unit() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/service.md")).unwrap();
    let from = readme
        .find("```ini\n[Unit]")
        .expect("docs/service.md shows a systemd unit");
    let unit = &readme[from + "```ini\n".len()..];
    unit[..unit.find("```").unwrap()].to_owned()
}

/// The unit passes `systemd-analyze verify` without a warning, and its `ExecStart` line, run
/// as written with its credentials in `$CREDENTIALS_DIRECTORY`, starts the service (on
/// loopback here instead of 0.0.0.0:443).
#[test]
fn the_systemd_unit_verifies_and_its_command_starts_the_service() {
    let unit = systemd_unit();
    let dir = tempfile::tempdir().unwrap();
    let binary = std::fs::canonicalize(common::binary()).unwrap();
    let binary = binary.to_str().unwrap();
    let local = unit.replace("/usr/local/bin/kasm-scale", binary);
    let path = dir.path().join("kasm-scale.service");
    std::fs::write(&path, &local).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed (bash .ci/run installs systemd)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    let warnings: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("kasm-scale.service"))
        .collect();
    assert!(warnings.is_empty(), "the unit has problems: {warnings:?}");

    // The credentials the unit loads, in a directory of their own.
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/config/service-memory.toml"
        ),
        credentials.join("service.toml"),
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(credentials.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(credentials.join("key.pem"), key.serialize_pem()).unwrap();
    for line in unit.lines().filter(|l| l.starts_with("LoadCredential=")) {
        let name = line["LoadCredential=".len()..].split(':').next().unwrap();
        assert!(credentials.join(name).exists(), "the test provides {name}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<String> = exec
        .replace("${CREDENTIALS_DIRECTORY}", credentials.to_str().unwrap())
        .replace("0.0.0.0:443", "127.0.0.1:0")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(words[0], "/usr/local/bin/kasm-scale");
    let mut child = std::process::Command::new(binary)
        .args(&words[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        line.starts_with("kasm-scale serve: listening on https://127.0.0.1:"),
        "{line}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
