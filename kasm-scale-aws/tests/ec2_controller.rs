//! End to end on the EC2 emulator: the controller fills a pool through AwsProvider, the guests
//! check in with the token EC2 holds in their user data, sessions grow the pool, and when they
//! end the surplus is terminated on EC2 again.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::{Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::token_in;
use kasm_scale_core::traits::VmProvider;
use support::{endpoint, raw_client, reset_region, user_data};

const REGION: &str = "ap-southeast-1";

fn config(url: &str) -> kasm_scale_core::config::Config {
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "aws"
name = "ec2"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{REGION}"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.medium"
aws_endpoint_url = "{url}"
max_instances = 20
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "ec2"
connection_type = "RDP"
connection_credential_type = "SSO User Accounts"
minimum_pool_standby_sessions = 4
reusable = true
require_checkin = true
checkin_timeout = 600
downscale_backoff = 1
"##
    );
    kasm_scale_core::load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

/// What a guest does after boot: read its user data and check in with the token in it.
async fn guests_check_in(scaler: &Autoscaler, ec2: &aws_sdk_ec2::Client) -> usize {
    let mut accepted = 0;
    for s in scaler.servers() {
        let (Some(vm), ServerState::Starting) = (&s.vm_id, s.state) else {
            continue;
        };
        let script = user_data(ec2, vm).await;
        let token = token_in(&script).expect("the check-in token in the user data");
        scaler
            .check_in(s.id, token, &CheckinStatus::running())
            .await
            .unwrap();
        accepted += 1;
    }
    accepted
}

async fn live_on_ec2(p: &AwsProvider, owner: &str) -> usize {
    p.list(owner).await.unwrap().len()
}

fn count(scaler: &Autoscaler, state: ServerState) -> usize {
    scaler.servers().iter().filter(|s| s.state == state).count()
}

#[tokio::test]
async fn the_controller_fills_a_pool_on_ec2_and_scales_it_down_again() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, REGION).await;
    let config = config(&url);
    let VmProviderConfig::Aws(aws) = config.vm_providers[0].clone() else {
        panic!("an AWS provider")
    };
    let provider = Arc::new(AwsProvider::builder(aws).build().await.unwrap());
    // Unique per run: moto lists terminated instances of earlier runs for a while.
    let owner = &format!("ec2-end-to-end-{}", uuid::Uuid::new_v4());
    let scaler = Autoscaler::builder(config)
        .owner_id(owner)
        .provider(provider.clone())
        .build()
        .unwrap();
    let ec2 = raw_client(&url, REGION);

    scaler.tick().await;

    scaler.settle().await;
    assert_eq!(
        count(&scaler, ServerState::Starting),
        4,
        "{:?}",
        scaler.servers()
    );
    assert_eq!(live_on_ec2(&provider, owner).await, 4);
    assert_eq!(guests_check_in(&scaler, &ec2).await, 4);
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(count(&scaler, ServerState::Running), 4);

    // Three sessions take three servers; the pool grows to keep four free.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        match scaler
            .request_session("p", &SessionRequest::default())
            .await
            .unwrap()
        {
            SessionOutcome::Assigned { session, .. } => sessions.push(session),
            other => panic!("{other:?}"),
        }
    }
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(live_on_ec2(&provider, owner).await, 7);
    assert_eq!(guests_check_in(&scaler, &ec2).await, 3);
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(count(&scaler, ServerState::Running), 7);

    // The sessions end: three free servers too many, terminated after downscale_backoff.
    for s in sessions {
        scaler.end_session(s).await.unwrap();
    }
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(
        live_on_ec2(&provider, owner).await,
        7,
        "the surplus starts the backoff"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(scaler.servers().len(), 4, "{:?}", scaler.servers());
    assert_eq!(live_on_ec2(&provider, owner).await, 4, "terminated on EC2");
    let gone = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("terminated")
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:kasm-scale:owner")
                .values(owner)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let terminated: usize = gone
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(terminated, 3);
}
