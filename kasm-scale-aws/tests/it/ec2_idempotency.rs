//! EC2's client-token rules, which moto ignores, through the strict front of the test proxy
//! (`support::idempotency`): first the front itself against moto with a raw SDK client, then
//! AwsProvider behind it: a create repeated by another process with another user data (a
//! resumed create whose script changed) is answered `IdempotentParameterMismatch` by EC2, and
//! the provider takes the first attempt's instance as the server's instead of failing.

use crate::support;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::InstanceType;
use kasm_scale_core::traits::VmProvider;
use support::idempotency::{MISMATCH_CODE, MISMATCH_MESSAGE};
use support::{Fault, Proxy, config, endpoint, provider_at, raw_client, spec};

fn owner() -> String {
    format!("ec2-idem-{}", uuid::Uuid::new_v4())
}

/// Live instances carrying `key=value`.
async fn tagged(client: &aws_sdk_ec2::Client, key: &str, value: &str) -> Vec<String> {
    let page = client
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .build(),
        )
        .send()
        .await
        .expect("describe");
    page.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_strict_front_answers_client_tokens_as_ec2_documents() {
    let Some(url) = endpoint() else { return };
    let proxy = Proxy::strict(&url, |seen| match (seen.action.as_str(), seen.nth) {
        // The first call fails: a failed request binds no token.
        ("RunInstances", 0) => Fault::Error(500, "InternalError"),
        _ => Fault::Forward,
    })
    .await;
    let table = proxy.table.clone().expect("strict");
    let mark = owner();
    let run = |region: &str, user_data: &str, token: &str| {
        let client = raw_client(&proxy.url, region);
        let (user_data, token, mark) = (user_data.to_owned(), token.to_owned(), mark.clone());
        async move {
            client
                .run_instances()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .client_token(token)
                .user_data(user_data)
                .tag_specifications(
                    aws_sdk_ec2::types::TagSpecification::builder()
                        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                        .tags(
                            aws_sdk_ec2::types::Tag::builder()
                                .key("idem-test")
                                .value(mark)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
        }
    };
    let token = uuid::Uuid::new_v4().to_string();
    let failed = run("eu-west-3", "YQ==", &token).await.unwrap_err();
    assert_eq!(failed.code(), Some("InternalError"));
    // Other parameters after a failure: allowed, the token was not bound.
    let first = run("eu-west-3", "Yg==", &token).await.expect("first");
    let first_id = first.instances()[0].instance_id().unwrap().to_owned();
    let again = run("eu-west-3", "Yg==", &token).await.expect("repeat");
    assert_eq!(again.reservation_id(), first.reservation_id());
    assert_eq!(again.instances()[0].instance_id(), Some(first_id.as_str()));
    assert_eq!(table.repeats(), 1, "answered from the front's memory");
    let other = run("eu-west-3", "Yw==", &token).await.unwrap_err();
    assert_eq!(other.code(), Some(MISMATCH_CODE));
    assert_eq!(other.message(), Some(MISMATCH_MESSAGE));
    assert_eq!(table.mismatches(), 1);
    let raw = raw_client(&url, "eu-west-3");
    assert_eq!(
        tagged(&raw, "idem-test", &mark).await,
        std::slice::from_ref(&first_id),
        "one instance in the Region"
    );
    // The same call in another Region launches an instance there.
    let elsewhere = run("eu-south-1", "Yg==", &token)
        .await
        .expect("other Region");
    assert_ne!(
        elsewhere.instances()[0].instance_id(),
        Some(first_id.as_str())
    );
    // A token over 64 characters is refused.
    let long = run("eu-west-3", "Yg==", &"t".repeat(65)).await.unwrap_err();
    assert_eq!(long.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn a_create_repeated_with_another_script_takes_the_first_instance() {
    let Some(url) = endpoint() else { return };
    let region = "eu-south-2";
    let proxy = Proxy::strict(&url, |_| Fault::Forward).await;
    let owner = owner();
    // A fresh server id: the provider looks servers up by their id's tag, region-wide.
    let n = uuid::Uuid::new_v4().as_u128();
    let first = provider_at(config("aws-idem", region, ""), &proxy.url).await;
    let vm = first
        .create(&spec(&owner, n, "#!/bin/sh\necho first\n"))
        .await
        .expect("first create");
    // Another process (a restart, the next leader) repeats the create of the same server with
    // another script: EC2 refuses the token's reuse, and the first instance is the server's.
    let second = provider_at(config("aws-idem", region, ""), &proxy.url).await;
    let again = second
        .create(&spec(&owner, n, "#!/bin/sh\necho second\n"))
        .await
        .expect("the repeated create with another script");
    assert_eq!(again.vm_id, vm.vm_id);
    assert_eq!(
        proxy.table.as_ref().unwrap().mismatches(),
        1,
        "EC2 refused it"
    );
    let listed = second.list(&owner).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let script = support::user_data(&raw_client(&url, region), &vm.vm_id).await;
    assert!(script.contains("echo first"), "{script}");
}
