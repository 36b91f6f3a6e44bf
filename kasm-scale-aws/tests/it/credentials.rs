//! Credentials: the access key id is a secret (never in `Debug` output), and without keys in
//! the config the provider uses the standard AWS credential chain, `credential_process`
//! profiles included.
//!
//! The chain reads the process environment (`AWS_CONFIG_FILE`, `AWS_PROFILE`, …), which a test
//! cannot change safely in a running process: the chain test runs this test binary again as a
//! child with its own environment, and the child runs the `#[ignore]`d half.

use crate::support;

use std::process::Command;

use kasm_scale_core::traits::VmProvider;
use support::{Fault, Proxy, config, endpoint, provider_at};

const KEY_ID: &str = "AKIATESTTESTTESTTEST";
/// What the `credential_process` script prints.
const PROCESS_KEY_ID: &str = "AKIAPROCESSCREDENTL1";

#[test]
fn the_access_key_id_is_not_in_debug_output() {
    let c = config("aws-debug", "us-east-1", "");
    assert_eq!(
        c.aws_access_key_id.as_ref().map(|k| k.expose()),
        Some(KEY_ID)
    );
    let shown = format!("{c:?}");
    assert!(!shown.contains(KEY_ID), "{shown}");
    assert!(!shown.contains("test-secret"), "{shown}");
    assert!(shown.contains("aws_access_key_id"), "{shown}");
}

#[test]
fn a_credential_process_profile_signs_the_requests_when_the_config_has_no_keys() {
    let Some(url) = endpoint() else { return };
    let dir = std::env::temp_dir().join(format!("kasm-scale-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("credentials.sh");
    // The format `credential_process` programs print (AWS CLI user guide, "Sourcing
    // credentials with an external process").
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"{PROCESS_KEY_ID}\", \"SecretAccessKey\": \"process-secret\"}}'\n"
        ),
    )
    .unwrap();
    let profile = dir.join("config");
    std::fs::write(
        &profile,
        format!(
            "[profile kasm-test]\nregion = us-east-1\ncredential_process = /bin/sh {}\n",
            script.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "credentials::credential_process_child",
            "--ignored",
            "--nocapture",
        ])
        .env("KASM_SCALE_EC2_ENDPOINT", &url)
        .env("AWS_CONFIG_FILE", &profile)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_PROFILE", "kasm-test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        child.env_remove(var);
    }
    let out = child.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child test failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The half run by [`a_credential_process_profile_signs_the_requests_when_the_config_has_no_keys`]
/// in the environment it sets.
#[tokio::test]
#[ignore = "run by a_credential_process_profile_signs_the_requests_when_the_config_has_no_keys"]
async fn credential_process_child() {
    let url = std::env::var("KASM_SCALE_EC2_ENDPOINT").expect("set by the parent test");
    let proxy = Proxy::start(&url, |_| Fault::Forward).await;
    let mut c = config("aws-chain", "us-east-1", "");
    c.aws_access_key_id = None;
    c.aws_secret_access_key = None;
    let p = provider_at(c, &proxy.url).await;
    p.list("ec2-chain")
        .await
        .expect("list with the profile's keys");
    let seen = proxy.seen.lock().unwrap();
    assert!(!seen.is_empty());
    for s in seen.iter() {
        assert!(
            s.authorization
                .contains(&format!("Credential={PROCESS_KEY_ID}/")),
            "signed with the credential_process keys: {}",
            s.authorization
        );
    }
}
