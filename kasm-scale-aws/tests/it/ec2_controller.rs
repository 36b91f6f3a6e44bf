//! End to end on the EC2 emulator: the shared controller scenario (`testkit::Scenario`) through
//! AwsProvider — the pool fills, the guests check in with the token EC2 holds in their user
//! data, sessions grow the pool, the surplus is terminated on EC2 again.

use crate::support;

use kasm_scale_core::testkit::Scenario;
use support::{Ec2Guests, ec2_controller, endpoint, raw_client, reset_region};

const REGION: &str = "ap-southeast-1";

#[tokio::test]
async fn the_controller_scenario_runs_on_ec2() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, REGION).await;
    let (scaler, provider, owner) =
        ec2_controller(&url, REGION, r#"aws_ec2_instance_type = "t3.medium""#, "").await;
    let owner = &owner;
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
