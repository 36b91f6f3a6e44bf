//! AwsProvider against a local EC2 emulator (moto's server mode). `.ci/run` starts it and sets
//! `KASM_SCALE_EC2_ENDPOINT`; without that variable the tests say so and skip.

use kasm_scale_aws::AwsProvider;
use kasm_scale_core::Secret;
use kasm_scale_core::config::AwsVmConfig;
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::testkit::vm_provider_contract;
use kasm_scale_core::traits::{BackendError, Owner, VmProvider, VmSpec};

fn endpoint() -> Option<String> {
    let e = std::env::var("KASM_SCALE_EC2_ENDPOINT").ok();
    if e.is_none() {
        eprintln!(
            "SKIPPED: KASM_SCALE_EC2_ENDPOINT is not set (bash .ci/run starts the EC2 emulator and sets it)"
        );
    }
    e
}

fn config(name: &str) -> AwsVmConfig {
    let toml = format!(
        r#"
name = "{name}"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "us-east-1"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
max_instances = 300
aws_ec2_ebs_volume_size_gb = 40
aws_ec2_ebs_volume_type = "gp3"
aws_ec2_custom_tags = {{ team = "vdi" }}
"#
    );
    toml::from_str(&toml).expect("test config")
}

async fn provider(name: &str) -> Option<AwsProvider> {
    Some(
        AwsProvider::builder(config(name))
            .endpoint_url(endpoint()?)
            .build()
            .await
            .expect("provider"),
    )
}

fn spec(owner: &str, n: u128, script: &str) -> VmSpec {
    VmSpec {
        owner: Owner {
            owner_id: owner.into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
        hostname: format!("KASM-{n:010}"),
        startup_script: Secret::new(script),
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(p) = provider("aws-conformance").await else {
        return;
    };
    vm_provider_contract(&p, "ec2-conformance").await;
}

#[tokio::test]
async fn lists_more_than_a_page_and_refuses_oversized_user_data() {
    let Some(p) = provider("aws-pages").await else {
        return;
    };
    for n in 0..250u128 {
        p.create(&spec("ec2-pages", 10_000 + n, "#!/bin/sh\n"))
            .await
            .unwrap();
    }
    assert_eq!(
        p.list("ec2-pages").await.unwrap().len(),
        250,
        "DescribeInstances pages at 100"
    );
    let big = "x".repeat(16 * 1024 + 1);
    let err = p
        .create(&spec("ec2-pages", 99_999, &big))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidRequest(ref m) if m.contains("16384-byte")),
        "{err}"
    );
    for vm in p.list("ec2-pages").await.unwrap() {
        p.destroy(&vm.vm_id).await.unwrap();
    }
    assert!(p.list("ec2-pages").await.unwrap().is_empty());
}
