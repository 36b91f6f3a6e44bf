//! AwsProvider against a local EC2 emulator (moto's server mode). `.ci/run` starts it and sets
//! `KASM_SCALE_EC2_ENDPOINT`; without that variable the tests say so and skip.

use crate::support;

use std::collections::BTreeMap;

use base64::Engine;
use kasm_scale_core::testkit::vm_provider_contract;
use kasm_scale_core::traits::{BackendError, VmProvider, VmState};
use support::{
    Fault, Proxy, config, endpoint, provider_at, raw_client, reset_region, spec, user_data,
};

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, "us-east-1").await;
    let p = provider_at(config("aws-conformance", "us-east-1", ""), &url).await;
    vm_provider_contract(&p, "ec2-conformance").await;
}

#[tokio::test]
async fn lists_more_than_a_page_and_refuses_oversized_user_data() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, "us-east-2").await;
    let p = provider_at(config("aws-pages", "us-east-2", ""), &url).await;
    for n in 0..250u128 {
        p.create(&spec("ec2-pages", 10_000 + n, "#!/bin/sh\n"))
            .await
            .unwrap();
    }
    // Listed through a proxy that counts the pages: DescribeInstances answers at most 100
    // instances a page (moto as EC2's default), so 250 take three calls, the later ones with
    // the NextToken of the one before.
    let proxy = Proxy::start(&url, |_| Fault::Forward).await;
    let counted = provider_at(config("aws-pages", "us-east-2", ""), &proxy.url).await;
    assert_eq!(counted.list("ec2-pages").await.unwrap().len(), 250);
    let pages: Vec<bool> = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.action == "DescribeInstances")
        .map(|s| s.body.contains("NextToken="))
        .collect();
    assert_eq!(
        pages,
        [false, true, true],
        "three pages, the second and third asked for with NextToken"
    );
    let limit = "x".repeat(16 * 1024);
    p.create(&spec("ec2-pages", 99_998, &limit)).await.unwrap();
    let big = "x".repeat(16 * 1024 + 1);
    let err = p
        .create(&spec("ec2-pages", 99_999, &big))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::InvalidRequest(
            "the startup script is 16385 bytes, over the 16384-byte EC2 user-data limit".into()
        )
    );
    for vm in p.list("ec2-pages").await.unwrap() {
        p.destroy(&vm.vm_id).await.unwrap();
    }
    assert!(p.list("ec2-pages").await.unwrap().is_empty());
}

/// Tags of a resource as a map.
fn tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

#[tokio::test]
async fn user_data_tags_volumes_and_the_override_reach_ec2() {
    let Some(url) = endpoint() else { return };
    let region = "us-west-1";
    reset_region(&url, region).await;
    let raw = raw_client(&url, region);
    let images = raw
        .describe_images()
        .image_ids("ami-12c6146b")
        .send()
        .await
        .unwrap();
    let root = images.images()[0].root_device_name().unwrap().to_owned();
    let extra = format!(
        r#"
aws_ec2_ebs_volume_size_gb = 40
aws_ec2_ebs_volume_type = "gp3"
aws_ec2_custom_tags = {{ team = "vdi" }}
aws_ec2_key_name = "kasm-key"
aws_ec2_config_override = '''
{{"MetadataOptions": {{"HttpTokens": "required", "HttpPutResponseHopLimit": 2}},
  "BlockDeviceMappings": [{{"DeviceName": "{root}", "Ebs": {{"Encrypted": true}}}},
                          {{"DeviceName": "/dev/sdf", "Ebs": {{"VolumeSize": 10}}}}],
  "TagSpecifications": [{{"ResourceType": "instance", "Tags": [{{"Key": "cost-center", "Value": "42"}}]}}],
  "KeyName": null}}
'''
"#
    );
    let p = provider_at(config("aws-attributes", region, &extra), &url).await;
    let script = "#!/bin/bash\necho 'ünïcode ✓' > /tmp/kasm\n";
    let vm = p.create(&spec("ec2-attributes", 7, script)).await.unwrap();

    assert_eq!(user_data(&raw, &vm.vm_id).await, script);

    let described = raw
        .describe_instances()
        .instance_ids(&vm.vm_id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    let tags = tag_map(instance.tags());
    assert_eq!(tags["kasm-scale:owner"], "ec2-attributes");
    assert_eq!(
        tags["kasm-scale:server-id"],
        spec("x", 7, "").owner.server_id.to_string()
    );
    assert_eq!(tags["Name"], "KASM-0000000007");
    assert_eq!(tags["team"], "vdi");
    assert_eq!(tags["cost-center"], "42", "override tags merge with ours");
    assert_eq!(
        instance.key_name(),
        None,
        "a null in the override removes the key"
    );
    let metadata = instance.metadata_options().unwrap();
    assert_eq!(metadata.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(metadata.http_put_response_hop_limit(), Some(2));

    let volumes = raw
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(&vm.vm_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut by_size: Vec<_> = volumes
        .volumes()
        .iter()
        .map(|v| (v.size().unwrap(), v.encrypted(), tag_map(v.tags())))
        .collect();
    by_size.sort_by_key(|v| v.0);
    assert_eq!(
        by_size.len(),
        2,
        "the root volume and the override's extra one"
    );
    let (size, encrypted, tags) = &by_size[1];
    assert_eq!(
        (*size, *encrypted),
        (40, Some(true)),
        "root merged with the override"
    );
    assert_eq!(by_size[0].0, 10);
    for (_, _, tags_of) in &by_size {
        assert_eq!(tags_of["kasm-scale:owner"], "ec2-attributes");
        assert_eq!(tags_of["team"], "vdi");
    }
    assert!(!tags.contains_key("cost-center"), "only on the instance");
    p.destroy(&vm.vm_id).await.unwrap();
}

#[tokio::test]
async fn a_bad_override_is_refused_when_the_provider_is_built() {
    let extra = r#"aws_ec2_config_override = { MetadataOptions = { HttpTokens = "always" } }"#;
    let err = kasm_scale_aws::AwsProvider::builder(config("aws-bad", "us-east-1", extra))
        .endpoint_url("http://127.0.0.1:9")
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::InvalidRequest(
            "aws-bad: aws_ec2_config_override.MetadataOptions.HttpTokens: `always` is not one of optional, required".into()
        )
    );
}

const KEY: &str = include_str!("../fixtures/test-key-pair.pem");

#[tokio::test]
async fn retrieves_and_decrypts_the_windows_password() {
    let Some(url) = endpoint() else { return };
    let region = "us-west-2";
    reset_region(&url, region).await;
    // EC2 answers empty password data until Windows has set the password, then the password
    // encrypted with the key pair's public key. moto answers random text for a Windows AMI, so
    // the proxy plays EC2 for the first and the third call.
    let password_data = encrypt_like_ec2("Kasm-Adm1n!pw");
    let answer = |data: &str| {
        format!(
            "<GetPasswordDataResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>t</requestId><instanceId>i-1</instanceId><timestamp>2026-11-29T00:00:00Z</timestamp><passwordData>{data}</passwordData></GetPasswordDataResponse>"
        )
    };
    let (not_ready, ready) = (answer(""), answer(&password_data));
    let proxy = Proxy::start(&url, move |seen| match (seen.action.as_str(), seen.nth) {
        ("GetPasswordData", 0) => Fault::Answer(200, not_ready.clone()),
        ("GetPasswordData", 2) => Fault::Answer(200, ready.clone()),
        _ => Fault::Forward,
    })
    .await;
    let extra = format!(
        "aws_ec2_key_name = \"kasm-key\"\nretrieve_password = true\naws_ec2_private_key = '''\n{KEY}'''\n"
    );
    let p = provider_at(config("aws-password", region, &extra), &proxy.url).await;
    assert!(p.capabilities().retrieve_password);
    let vm = p
        .create(&spec("ec2-password", 1, "<powershell></powershell>"))
        .await
        .unwrap();
    assert_eq!(
        p.retrieve_password(&vm.vm_id).await.unwrap(),
        None,
        "not ready yet"
    );
    let garbage = p.retrieve_password(&vm.vm_id).await.unwrap_err();
    assert_eq!(
        garbage,
        BackendError::InvalidRequest(format!(
            "aws-password: {}: cannot decrypt the password data with aws_ec2_private_key (another key pair?)",
            vm.vm_id
        )),
        "moto's random text does not decrypt"
    );
    let password = p.retrieve_password(&vm.vm_id).await.unwrap().unwrap();
    assert_eq!(password.expose(), "Kasm-Adm1n!pw");
    assert!(!format!("{password:?}").contains("Kasm-Adm1n"));
    p.destroy(&vm.vm_id).await.unwrap();

    let plain = provider_at(config("aws-no-password", region, ""), &url).await;
    assert!(!plain.capabilities().retrieve_password);
    assert!(matches!(
        plain.retrieve_password(&vm.vm_id).await,
        Err(BackendError::InvalidRequest(m)) if m.contains("retrieve_password is off")
    ));
}

/// What EC2 does with the password: RSA PKCS#1 v1.5 with the key pair's public key, base64.
fn encrypt_like_ec2(password: &str) -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, Pkcs1PublicEncryptingKey, PrivateDecryptingKey};
    let block = pem::parse(KEY).unwrap();
    let pkcs8 = KeyPair::from_der(block.contents())
        .unwrap()
        .as_der()
        .unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = Pkcs1PublicEncryptingKey::new(private.public_key()).unwrap();
    let mut out = vec![0u8; public.ciphertext_size()];
    let ciphertext = public.encrypt(password.as_bytes(), &mut out).unwrap();
    base64::engine::general_purpose::STANDARD.encode(ciphertext)
}

#[tokio::test]
async fn windows_user_data_is_wrapped_in_powershell_once() {
    let Some(url) = endpoint() else { return };
    let region = "ap-northeast-1";
    reset_region(&url, region).await;
    let raw = raw_client(&url, region);
    let p = provider_at(config("aws-windows", region, "aws_is_windows = true"), &url).await;
    for (n, script, expected) in [
        (
            1,
            "Write-Output hi",
            "<powershell>\nWrite-Output hi\n</powershell>\n",
        ),
        (
            2,
            "<powershell>Write-Output hi</powershell>",
            "<powershell>Write-Output hi</powershell>",
        ),
    ] {
        let vm = p.create(&spec("ec2-windows", n, script)).await.unwrap();
        assert_eq!(user_data(&raw, &vm.vm_id).await, expected);
    }
}

/// The instance's `InstanceInitiatedShutdownBehavior` as EC2 holds it.
async fn shutdown_behavior(client: &aws_sdk_ec2::Client, instance: &str) -> String {
    let attribute = client
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .expect("DescribeInstanceAttribute");
    attribute
        .instance_initiated_shutdown_behavior()
        .and_then(|v| v.value())
        .expect("the shutdown behaviour")
        .to_owned()
}

#[tokio::test]
async fn a_shutdown_from_inside_terminates_unless_the_override_says_stop() {
    let Some(url) = endpoint() else { return };
    let region = "ap-south-1";
    reset_region(&url, region).await;
    let raw = raw_client(&url, region);
    let p = provider_at(config("aws-shutdown", region, ""), &url).await;
    let vm = p.create(&spec("ec2-shutdown", 1, "")).await.unwrap();
    assert_eq!(
        shutdown_behavior(&raw, &vm.vm_id).await,
        "terminate",
        "a VM shut down from inside (or stopped) would otherwise leak"
    );
    let stop = r#"aws_ec2_config_override = { InstanceInitiatedShutdownBehavior = "stop" }"#;
    let p = provider_at(config("aws-shutdown", region, stop), &url).await;
    let vm = p.create(&spec("ec2-shutdown", 2, "")).await.unwrap();
    assert_eq!(
        shutdown_behavior(&raw, &vm.vm_id).await,
        "stop",
        "the override wins"
    );
}

#[tokio::test]
async fn a_stopped_instance_is_reported_stopping_and_a_terminated_one_is_gone() {
    let Some(url) = endpoint() else { return };
    let region = "ap-southeast-2";
    reset_region(&url, region).await;
    let raw = raw_client(&url, region);
    let p = provider_at(config("aws-stopped", region, ""), &url).await;
    let stopped = p.create(&spec("ec2-stopped", 1, "")).await.unwrap();
    let running = p.create(&spec("ec2-stopped", 2, "")).await.unwrap();
    raw.stop_instances()
        .instance_ids(&stopped.vm_id)
        .send()
        .await
        .unwrap();
    let described = raw
        .describe_instances()
        .instance_ids(&stopped.vm_id)
        .send()
        .await
        .unwrap();
    let state = described.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .cloned();
    assert!(
        matches!(
            state,
            Some(
                aws_sdk_ec2::types::InstanceStateName::Stopping
                    | aws_sdk_ec2::types::InstanceStateName::Stopped
            )
        ),
        "{state:?}"
    );
    let got = p.get(&stopped.vm_id).await.unwrap().expect("still there");
    assert!(
        matches!(got.state, VmState::Stopping | VmState::Stopped),
        "{:?}",
        got.state
    );
    let mut listed: Vec<_> = p
        .list("ec2-stopped")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.vm_id, v.state))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (stopped.vm_id.clone(), got.state),
        (running.vm_id.clone(), VmState::Running),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);
    p.destroy(&stopped.vm_id).await.unwrap();
    assert_eq!(p.get(&stopped.vm_id).await.unwrap(), None, "terminated");
    let listed = p.list("ec2-stopped").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].vm_id, running.vm_id);
}
