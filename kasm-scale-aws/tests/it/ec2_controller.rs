//! End to end on the EC2 emulator: the shared controller scenario (`testkit::Scenario`) through
//! AwsProvider — the pool fills, the guests check in with the token EC2 holds in their user
//! data, sessions grow the pool, the surplus is terminated on EC2 again.

use crate::support;

use std::sync::Arc;

use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::testkit::{Scenario, scenario_config};
use support::{Ec2Guests, endpoint, raw_client, reset_region};

const REGION: &str = "ap-southeast-1";

#[tokio::test]
async fn the_controller_scenario_runs_on_ec2() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, REGION).await;
    let config = scenario_config(
        &format!(
            r##"
[[vm_providers]]
provider = "aws"
name = "vm"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{REGION}"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.medium"
aws_endpoint_url = "{url}"
max_instances = 20
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"
"##
        ),
        "",
    );
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
    Scenario {
        scaler: &scaler,
        owner_id: owner,
        provider: provider.as_ref(),
        directory: None,
        guests: &Ec2Guests(raw_client(&url, REGION)),
    }
    .run()
    .await;
}
