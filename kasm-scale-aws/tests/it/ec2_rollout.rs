//! A rolling image replacement on the EC2 emulator: the pool runs on one AMI, a reload brings
//! another (a provider built from the new configuration), and the controller replaces every
//! instance of the old AMI with one of the new, keeping the pool's free slots, ending no session,
//! and terminating the old instances on EC2 (whose `ImageId`s show which image each one runs).

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::load_str;
use kasm_scale_core::testkit::check_in_starting;
use support::{Ec2Guests, endpoint, raw_client, reset_region};

const REGION: &str = "eu-north-1";
const OLD_AMI: &str = "ami-12c6146b";
const NEW_AMI: &str = "ami-0d2f4ea3c9b1e5a77";

fn config(url: &str, ami: &str) -> Config {
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "aws"
name = "vm"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{REGION}"
aws_ec2_ami_id = "{ami}"
aws_ec2_instance_type = "t3.medium"
aws_endpoint_url = "{url}"
max_instances = 10
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-ec2"
vm_provider_config_id = "vm"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
reusable = true
require_checkin = true
downscale_backoff = 60
rollout = {{ canary = 1, max_surge = 2 }}
"##
    );
    load_str(&text, Format::Toml).unwrap().config
}

async fn provider(config: &Config) -> Arc<AwsProvider> {
    let VmProviderConfig::Aws(aws) = config.vm_providers[0].clone() else {
        panic!("an AWS provider")
    };
    Arc::new(AwsProvider::builder(aws).build().await.unwrap())
}

/// The image of each of the owner's live instances, by instance id.
async fn images(client: &aws_sdk_ec2::Client, scaler: &Autoscaler) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in scaler.servers() {
        let Some(vm) = s.vm_id.filter(|_| s.state != ServerState::Destroying) else {
            continue;
        };
        let answer = client
            .describe_instances()
            .instance_ids(&vm)
            .send()
            .await
            .unwrap();
        for r in answer.reservations() {
            for i in r.instances() {
                out.insert(vm.clone(), i.image_id().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

/// One tick; the guests of starting servers check in with the token in their user data.
async fn step(scaler: &Autoscaler, client: &aws_sdk_ec2::Client) {
    scaler.tick().await;
    scaler.settle().await;
    check_in_starting(scaler, &Ec2Guests(client.clone())).await;
}

fn free(scaler: &Autoscaler) -> u32 {
    scaler.pools()[0].free_sessions
}

#[tokio::test]
async fn a_new_ami_replaces_every_instance_of_the_old_one() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, REGION).await;
    let client = raw_client(&url, REGION);
    let old = config(&url, OLD_AMI);
    let owner = format!("ec2-rollout-{}", uuid::Uuid::new_v4());
    let scaler = Autoscaler::builder(old.clone())
        .owner_id(&owner)
        .provider(provider(&old).await)
        .build()
        .unwrap();
    for _ in 0..20 {
        step(&scaler, &client).await;
        if free(&scaler) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(free(&scaler), 2);
    // A user on an old instance: it stays until the session ends.
    let SessionOutcome::Assigned {
        session,
        server: busy,
    } = scaler
        .request_session("desktops", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("seated at once")
    };
    for _ in 0..20 {
        step(&scaler, &client).await;
        if free(&scaler) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = images(&client, &scaler).await;
    assert_eq!(before.len(), 3);
    assert!(before.values().all(|ami| ami == OLD_AMI), "{before:?}");

    let new = config(&url, NEW_AMI);
    let changes = scaler
        .reconfiguration(new.clone())
        .provider(provider(&new).await)
        .apply()
        .await
        .unwrap();
    assert_eq!(changes.new_generations, ["desktops-ec2"]);
    let mut lowest = u32::MAX;
    for _ in 0..60 {
        step(&scaler, &client).await;
        lowest = lowest.min(free(&scaler));
        let g = &scaler.generations()[0];
        if g.outdated == 1 && g.current >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        lowest >= 2,
        "free slots fell to {lowest} during the rollout"
    );
    // The idle old instances are gone; the busy one still serves its session.
    let during = images(&client, &scaler).await;
    let old_left: Vec<_> = during.iter().filter(|(_, ami)| *ami == OLD_AMI).collect();
    assert_eq!(old_left.len(), 1, "{during:?}");
    let busy_vm = scaler.server(busy).unwrap().vm_id.unwrap();
    assert_eq!(old_left[0].0, &busy_vm);
    assert_eq!(
        scaler.server(busy).unwrap().sessions,
        1,
        "no session ended by us"
    );
    scaler.end_session(session).await.unwrap();
    for _ in 0..20 {
        step(&scaler, &client).await;
        if scaler.generations()[0].outdated == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = images(&client, &scaler).await;
    assert!(after.values().all(|ami| ami == NEW_AMI), "{after:?}");
    assert!(free(&scaler) >= 2);
    let rollout = scaler.generations()[0].rollout.clone().expect("a rollout");
    assert!(rollout.finished_at.is_some(), "{rollout:?}");
    // The old instances are terminated on EC2.
    for vm in before.keys() {
        let answer = client
            .describe_instances()
            .instance_ids(vm)
            .send()
            .await
            .unwrap();
        let state = answer.reservations()[0].instances()[0]
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned());
        assert!(
            matches!(state.as_deref(), Some("terminated" | "shutting-down")),
            "{vm}: {state:?}"
        );
    }
}
