//! Provisioning 200 servers on the EC2 emulator (moto), measured in the same run:
//! - `raw_sequential_run_instances`: the emulator's raw rate, 200 RunInstances one after the
//!   other with the SDK (the same image, type, tags and user data size as ours);
//! - `controller_aws_provider`: one controller tick that creates 200 servers through
//!   `AwsProvider` (each create is a server-id lookup, then RunInstances; a rendered script
//!   with a signed check-in token), with the controller's default concurrency of 8.
//!
//! Then both again through a loopback proxy that adds a 50 ms round trip to every request.
//! The emulator is reset before every iteration, so both start from an empty region.
//! Needs `KASM_SCALE_EC2_ENDPOINT` (see `.ci/run` for starting moto); without it, it says so and
//! measures nothing. Run: `KASM_SCALE_EC2_ENDPOINT=http://127.0.0.1:5099 cargo bench -p
//! kasm-scale-aws --bench provisioning`.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::engine::ServerState;

#[path = "../tests/support/mod.rs"]
mod support;

const SERVERS: usize = 200;
const REGION: &str = "us-east-1";

fn config(url: &str) -> Config {
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
max_instances = {SERVERS}
startup_script = "#!/bin/sh\ncurl -d token={{checkin_jwt}} https://{{upstream_auth_address}}/checkin\n"

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "ec2"
connection_type = "RDP"
minimum_pool_standby_sessions = {SERVERS}
"##
    );
    kasm_scale_core::load_str(&text, Format::Toml)
        .expect("bench config")
        .config
}

fn reset(url: &str) {
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{url}/moto-api/reset")])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("curl");
    assert!(status.success(), "cannot reset the emulator");
}

fn raw_client(url: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "AKIATESTTESTTESTTEST",
            "test-secret",
            None,
            None,
            "bench",
        ))
        .endpoint_url(url)
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

async fn raw_sequential(client: &aws_sdk_ec2::Client) {
    let user_data = base64::engine::general_purpose::STANDARD.encode("x".repeat(400));
    for n in 0..SERVERS {
        let tags: Vec<Tag> = [
            ("kasm-scale:owner", "bench".to_owned()),
            ("kasm-scale:pool", "p".into()),
            ("kasm-scale:config", "c".into()),
            ("kasm-scale:server-id", format!("{n:032}")),
            ("Name", format!("KASM-{n:010}")),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
        let on = |kind| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.clone()))
                .build()
        };
        client
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(InstanceType::T3Medium)
            .min_count(1)
            .max_count(1)
            .client_token(format!("{n:032}"))
            .user_data(&user_data)
            .tag_specifications(on(ResourceType::Instance))
            .tag_specifications(on(ResourceType::Volume))
            .send()
            .await
            .expect("RunInstances");
    }
}

async fn controller_tick(scaler: &Autoscaler) {
    scaler.tick().await;
    scaler.settle().await;
    let starting = scaler
        .servers()
        .iter()
        .filter(|s| s.state == ServerState::Starting)
        .count();
    assert_eq!(starting, SERVERS, "every create succeeded");
}

/// Both ways of provisioning, their clients talking to `endpoint`; `url` is the emulator.
fn group(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    url: &str,
    endpoint: &str,
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let client = raw_client(endpoint);
    group.bench_function("raw_sequential_run_instances", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset(url);
                let start = Instant::now();
                runtime.block_on(raw_sequential(&client));
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("controller_aws_provider", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset(url);
                let config = config(endpoint);
                let VmProviderConfig::Aws(aws) = config.vm_providers[0].clone() else {
                    unreachable!()
                };
                let scaler = runtime.block_on(async {
                    let provider = AwsProvider::builder(aws).build().await.expect("provider");
                    Autoscaler::builder(config)
                        .provider(Arc::new(provider))
                        .build()
                        .expect("controller")
                });
                let start = Instant::now();
                runtime.block_on(controller_tick(&scaler));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let Some(url) = kasm_scale_core::testkit::test_server(
        "KASM_SCALE_EC2_ENDPOINT",
        "KASM_SCALE_SKIP_EC2",
        "provisioning on EC2 (moto)",
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    group(c, &runtime, "provision_200_servers_on_moto", &url, &url);
    // The same through a loopback proxy that holds every request 50 ms, as a network round trip
    // to EC2 would (EC2's own RunInstances takes longer still).
    let proxy = runtime.block_on(support::Proxy::start(&url, |_| {
        support::Fault::ForwardAfter(Duration::from_millis(50))
    }));
    group(
        c,
        &runtime,
        "provision_200_servers_on_moto_50ms_round_trip",
        &url,
        &proxy.url,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
