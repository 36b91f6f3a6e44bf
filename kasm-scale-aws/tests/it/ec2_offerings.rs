//! Capacity fallback on the EC2 emulator: the offering of a create picks the alternative's
//! instance type and subnet; with the first out of capacity the controller creates on the next
//! in the same tick, with one client token per server that EC2's rules (the strict proxy)
//! accept.

use crate::support;

use kasm_scale_core::testkit::SCENARIO_MINIMUM;
use kasm_scale_core::traits::{BackendError, VmProvider};
use support::{
    Fault, Proxy, config, ec2_controller, endpoint, provider_at, raw_client, reset_region, spec,
};

/// The instance type and subnet EC2 holds for an instance.
async fn placed(client: &aws_sdk_ec2::Client, instance: &str) -> (String, String) {
    let answer = client
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("DescribeInstances");
    let i = &answer.reservations()[0].instances()[0];
    (
        i.instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        i.subnet_id().unwrap_or_default().to_owned(),
    )
}

/// Two subnets (availability zones) of the emulator's default VPC in `region`.
async fn two_subnets(client: &aws_sdk_ec2::Client) -> (String, String) {
    let answer = client
        .describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");
    let mut ids: Vec<String> = answer
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .collect();
    ids.sort();
    assert!(
        ids.len() >= 2,
        "the default VPC has a subnet per zone: {ids:?}"
    );
    (ids[0].clone(), ids[1].clone())
}

#[tokio::test]
async fn each_offering_launches_its_instance_type_and_subnet_over_the_override() {
    let Some(url) = endpoint() else { return };
    let region = "sa-east-1";
    reset_region(&url, region).await;
    let raw = raw_client(&url, region);
    let (a, b) = two_subnets(&raw).await;
    let extra = format!(
        r#"
aws_ec2_subnet_id = "{a}"
aws_ec2_config_override = {{ InstanceType = "t3.small" }}
alternatives = [
    {{ aws_ec2_instance_type = "m5.large" }},
    {{ aws_ec2_subnet_id = "{b}" }},
    {{ aws_ec2_instance_type = "c5.large", aws_ec2_subnet_id = "{b}" }},
]
"#
    );
    let proxy = Proxy::start(&url, |_| Fault::Forward).await;
    let p = provider_at(config("aws-offerings", region, &extra), &proxy.url).await;
    let mut got = Vec::new();
    for offering in 0..4u32 {
        let mut s = spec("ec2-offerings", u128::from(offering) + 1, "");
        s.offering = offering;
        let vm = p.create(&s).await.unwrap();
        got.push(placed(&raw, &vm.vm_id).await);
    }
    let want = |t: &str, s: &str| (t.to_owned(), s.to_owned());
    assert_eq!(
        got,
        [
            // Offering 0 is the config's own fields, which the override shapes.
            want("t3.small", &a),
            // An alternative's instance type or subnet wins over the override.
            want("m5.large", &a),
            want("t3.small", &b),
            want("c5.large", &b),
        ]
    );
    let mut beyond = spec("ec2-offerings", 9, "");
    beyond.offering = 4;
    let sent = proxy.count("RunInstances");
    match p.create(&beyond).await {
        Err(BackendError::InvalidRequest(m)) => {
            assert!(m.contains("offering 4 does not exist"), "{m}")
        }
        other => panic!("an offering the config does not have: {other:?}"),
    }
    assert_eq!(proxy.count("RunInstances"), sent, "nothing sent for it");
}

#[tokio::test]
async fn with_the_first_type_short_the_controller_creates_on_the_next_in_the_same_tick() {
    let Some(url) = endpoint() else { return };
    let region = "ca-central-1";
    reset_region(&url, region).await;
    // EC2 is short of m5.large in the region; m5.xlarge is there.
    let proxy = Proxy::strict(&url, |seen| {
        if seen.action == "RunInstances" && seen.body.contains("InstanceType=m5.large&") {
            Fault::Error(500, "InsufficientInstanceCapacity")
        } else {
            Fault::Forward
        }
    })
    .await;
    let (scaler, provider, owner) = ec2_controller(
        &proxy.url,
        region,
        r#"
aws_ec2_instance_type = "m5.large"
alternatives = [{ aws_ec2_instance_type = "m5.xlarge", price_per_hour = 0.192 }]
price_per_hour = 0.096
"#,
        "",
    )
    .await;
    let owner = &owner;
    scaler.tick().await;
    scaler.settle().await;

    let servers = scaler.servers();
    let minimum = SCENARIO_MINIMUM as usize;
    assert_eq!(servers.len(), minimum, "{servers:?}");
    assert!(
        servers.iter().all(|s| s.offering == 1 && s.vm_id.is_some()),
        "every server made on the second offering in the first tick: {servers:?}"
    );
    let raw = raw_client(&url, region);
    for s in &servers {
        let vm = s.vm_id.as_deref().unwrap();
        assert_eq!(placed(&raw, vm).await.0, "m5.xlarge");
    }
    let runs = proxy.bodies("RunInstances");
    let short = runs
        .iter()
        .filter(|b| b.contains("InstanceType=m5.large&"))
        .count();
    assert!(
        (1..=minimum).contains(&short),
        "the short type asked at most once per server: {short} of {runs:?}"
    );
    // One client token per server: a request refused for capacity binds none, so EC2's
    // rules accept the next offering's request with the same token.
    let table = proxy.table.as_ref().unwrap();
    assert_eq!(table.mismatches(), 0);
    let skipped = scaler.skipped_offerings();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].1, "m5.large");
    let spend = &scaler.spend()[0];
    assert!(
        (spend.per_hour - 0.192 * minimum as f64).abs() < 1e-9,
        "priced at the offering that served: {spend:?}"
    );

    // The next tick does not ask the short type again while it is skipped.
    scaler.tick().await;
    scaler.settle().await;
    let after = proxy.count("RunInstances");
    assert_eq!(after, runs.len(), "no create loop: the pool is full");
    let listed = provider.list(owner).await.unwrap();
    assert_eq!(listed.len(), minimum, "{listed:?}");
}
