//! Stop, start and hibernation on the EC2 emulator, behind the strict proxy where moto is more
//! lenient than EC2 (moto starts a terminated instance again; EC2 answers
//! `IncorrectInstanceState`).

use crate::support;

use std::time::Duration;

use kasm_scale_core::testkit::{
    vm_provider_resize_contract, vm_provider_stop_start_contract, wait_for_state,
};
use kasm_scale_core::traits::{BackendError, StopMode, VmProvider, VmState};
use support::{Fault, Proxy, config, endpoint, malformed_id, provider_at, reset_region, spec};

/// How long a state change may take on the emulator.
const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn passes_the_stop_start_conformance_suite_with_ec2s_lifecycle_rules() {
    let Some(url) = endpoint() else { return };
    let region = "eu-west-3";
    reset_region(&url, region).await;
    let proxy = Proxy::strict(&url, |seen| malformed_id(seen).unwrap_or(Fault::Forward)).await;
    let p = provider_at(config("aws-power", region, ""), &proxy.url).await;
    assert!(p.capabilities().stop_start);
    assert!(
        !p.capabilities().hibernate,
        "no hibernation without aws_ec2_hibernation"
    );
    vm_provider_stop_start_contract(&p, "ec2-power-conformance", LIMIT).await;
    assert!(
        proxy.count("StartInstances") >= 4 && proxy.count("StopInstances") >= 4,
        "the suite went through StartInstances and StopInstances"
    );
}

#[tokio::test]
async fn hibernation_is_configured_at_launch_and_asked_for_at_stop() {
    let Some(url) = endpoint() else { return };
    let region = "eu-south-1";
    reset_region(&url, region).await;
    let proxy = Proxy::start(&url, |_| Fault::Forward).await;
    let p = provider_at(
        config("aws-hibernate", region, "aws_ec2_hibernation = true"),
        &proxy.url,
    )
    .await;
    assert!(p.capabilities().hibernate);
    let vm = p.create(&spec("ec2-hibernate", 1, "")).await.unwrap();
    let bodies = |action: &str| proxy.bodies(action);
    assert!(
        bodies("RunInstances")[0].contains("HibernationOptions.Configured=true"),
        "launched with hibernation configured: {:?}",
        bodies("RunInstances")
    );
    p.stop(&vm.vm_id, StopMode::Hibernate).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Stopped], LIMIT, "hibernated").await;
    p.start(&vm.vm_id).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Running], LIMIT, "resumed").await;
    p.stop(&vm.vm_id, StopMode::Stop).await.unwrap();
    let stops = bodies("StopInstances");
    assert_eq!(stops.len(), 2, "{stops:?}");
    assert!(stops[0].contains("Hibernate=true"), "{stops:?}");
    assert!(!stops[1].contains("Hibernate=true"), "{stops:?}");

    // Without aws_ec2_hibernation a hibernation is refused before EC2 is asked.
    let plain = provider_at(config("aws-plain", region, ""), &proxy.url).await;
    let other = plain.create(&spec("ec2-hibernate", 2, "")).await.unwrap();
    assert!(!bodies("RunInstances")[1].contains("HibernationOptions"));
    let refused = plain.stop(&other.vm_id, StopMode::Hibernate).await;
    match refused {
        Err(BackendError::InvalidRequest(m)) => {
            assert!(m.contains("aws_ec2_hibernation"), "{m}")
        }
        other => panic!("a hibernation without aws_ec2_hibernation: {other:?}"),
    }
    assert_eq!(bodies("StopInstances").len(), 2, "nothing sent");
}

#[tokio::test]
async fn an_instance_that_cannot_hibernate_is_stopped_plainly() {
    let Some(url) = endpoint() else { return };
    let region = "eu-central-2";
    reset_region(&url, region).await;
    // EC2's answer when the instance is not ready to hibernate (or cannot).
    let proxy = Proxy::start(&url, |seen| match (seen.action.as_str(), seen.nth) {
        ("StopInstances", 0) => Fault::Error(400, "UnsupportedHibernationConfiguration"),
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(
        config("aws-no-hibernate", region, "aws_ec2_hibernation = true"),
        &proxy.url,
    )
    .await;
    let vm = p.create(&spec("ec2-no-hibernate", 1, "")).await.unwrap();
    p.stop(&vm.vm_id, StopMode::Hibernate).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Stopped], LIMIT, "stopped").await;
    let stops = proxy.bodies("StopInstances");
    assert_eq!(stops.len(), 2, "{stops:?}");
    assert!(stops[0].contains("Hibernate=true"));
    assert!(
        !stops[1].contains("Hibernate=true"),
        "the second stop does not hibernate: {stops:?}"
    );
}

#[tokio::test]
async fn a_start_ec2_cannot_place_is_a_capacity_error_and_the_instance_stays_stopped() {
    let Some(url) = endpoint() else { return };
    let region = "eu-north-1";
    reset_region(&url, region).await;
    let proxy = Proxy::start(&url, |seen| match seen.action.as_str() {
        "StartInstances" => Fault::Error(500, "InsufficientInstanceCapacity"),
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-start-short", region, ""), &proxy.url).await;
    let vm = p.create(&spec("ec2-start-short", 1, "")).await.unwrap();
    p.stop(&vm.vm_id, StopMode::Stop).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Stopped], LIMIT, "stopped").await;
    let started = p.start(&vm.vm_id).await;
    assert!(
        matches!(started, Err(BackendError::Capacity(_))),
        "{started:?}"
    );
    let got = p.get(&vm.vm_id).await.unwrap().expect("still there");
    assert_eq!(got.state, VmState::Stopped);
}

#[tokio::test]
async fn a_start_refused_for_the_instance_state_is_retried_while_the_instance_exists() {
    let Some(url) = endpoint() else { return };
    let region = "me-south-1";
    reset_region(&url, region).await;
    // EC2 refuses a start while a stop is still under way (`IncorrectInstanceState`); the
    // instance exists, so the refusal is transient and the controller's retry starts it.
    let proxy = Proxy::start(&url, |seen| match (seen.action.as_str(), seen.nth) {
        ("StartInstances", 0) => Fault::Error(400, "IncorrectInstanceState"),
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-stopping", region, ""), &proxy.url).await;
    let vm = p.create(&spec("ec2-stopping", 1, "")).await.unwrap();
    p.stop(&vm.vm_id, StopMode::Stop).await.unwrap();
    wait_for_state(&p, &vm.vm_id, &[VmState::Stopped], LIMIT, "stopped").await;
    let started = p.start(&vm.vm_id).await;
    assert!(
        matches!(started, Err(BackendError::Transient(ref m)) if m.contains("IncorrectInstanceState")),
        "{started:?}"
    );
    p.start(&vm.vm_id).await.expect("the retry starts it");
    wait_for_state(&p, &vm.vm_id, &[VmState::Running], LIMIT, "running").await;
}

/// The instance type EC2 reports for `vm`.
async fn instance_type(client: &aws_sdk_ec2::Client, vm: &str) -> String {
    let answer = client
        .describe_instances()
        .instance_ids(vm)
        .send()
        .await
        .unwrap();
    answer.reservations()[0].instances()[0]
        .instance_type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_stopped_instance_moves_to_another_type_with_ec2s_lifecycle_rules() {
    let Some(url) = endpoint() else { return };
    let region = "ap-southeast-3";
    reset_region(&url, region).await;
    let proxy = Proxy::strict(&url, |seen| malformed_id(seen).unwrap_or(Fault::Forward)).await;
    let p = provider_at(
        config(
            "aws-resize",
            region,
            r#"alternatives = [{ aws_ec2_instance_type = "t3.large" }, { aws_ec2_subnet_id = "subnet-0bbbbbbbbbbbbbbbb" }]"#,
        ),
        &proxy.url,
    )
    .await;
    assert!(p.capabilities().resize_stopped);
    let vm = vm_provider_resize_contract(&p, "ec2-resize-conformance", 1, LIMIT).await;
    let client = support::raw_client(&url, region);
    assert_eq!(instance_type(&client, &vm).await, "t3.large");
    let modified = proxy.bodies("ModifyInstanceAttribute");
    assert_eq!(
        modified.len(),
        1,
        "one change of type; the repeat found the type already set, the running VM was refused before any call: {modified:?}"
    );
    assert!(
        modified[0].contains("InstanceType.Value=t3.large"),
        "{modified:?}"
    );

    // Back to offering 0 at the next stop; an offering in another subnet is refused unsent.
    p.stop(&vm, StopMode::Stop).await.unwrap();
    wait_for_state(&p, &vm, &[VmState::Stopped], LIMIT, "stopped").await;
    p.resize(&vm, 0).await.unwrap();
    assert_eq!(instance_type(&client, &vm).await, "t3.micro");
    let elsewhere = p.resize(&vm, 2).await;
    assert!(
        matches!(&elsewhere, Err(BackendError::InvalidRequest(m)) if m.contains("keeps its subnet")),
        "{elsewhere:?}"
    );
    assert_eq!(proxy.count("ModifyInstanceAttribute"), 2);
}

#[tokio::test]
async fn the_strict_proxy_refuses_a_type_change_of_a_running_instance_as_ec2_does() {
    // The proxy's own rule, so that the test above can fail: moto changes a running one.
    let Some(url) = endpoint() else { return };
    let region = "me-central-1";
    let proxy = Proxy::strict(&url, |_| Fault::Forward).await;
    let p = provider_at(config("aws-resize-raw", region, ""), &proxy.url).await;
    let vm = p.create(&spec("ec2-resize-raw", 1, "")).await.unwrap();
    let through = support::raw_client(&proxy.url, region);
    let refused = through
        .modify_instance_attribute()
        .instance_id(&vm.vm_id)
        .instance_type(
            aws_sdk_ec2::types::AttributeValue::builder()
                .value("t3.large")
                .build(),
        )
        .send()
        .await;
    let code = refused
        .as_ref()
        .err()
        .and_then(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(e).map(str::to_owned));
    assert_eq!(
        code.as_deref(),
        Some("IncorrectInstanceState"),
        "{refused:?}"
    );
    p.destroy(&vm.vm_id).await.unwrap();
}
