//! `aws_ec2_config_override` against EC2's published input shape: every member path of
//! `RunInstancesRequest` in botocore's EC2 service model (the names boto3, the AWS CLI and
//! Kasm's override use) is accepted, except the ones kasm-scale sets itself, and reaches the
//! RunInstances request on the wire under its EC2 query name.
//!
//! The model comes with moto's virtualenv (`.ci/run` installs it):
//! `/tmp/kasm-scale-moto-venv/lib/python3*/site-packages/botocore/data/ec2/2016-11-15/
//! service-2.json.gz`, or the file `KASM_SCALE_EC2_SERVICE_MODEL` names. Missing, the test
//! fails with that reason (unless `KASM_SCALE_SKIP_EC2=1` opts out outside CI).

use crate::support;

use std::path::{Path, PathBuf};

use kasm_scale_core::traits::VmProvider;
use serde_json::{Map, Value, json};
use support::{Fault, Proxy, config, provider_at, spec};

/// Members kasm-scale sets itself: refused in the override.
const OURS: [&str; 5] = ["UserData", "ClientToken", "MinCount", "MaxCount", "DryRun"];

/// Members EC2 added after aws-sdk-ec2 1.145 (the newest SDK for the workspace's Rust 1.85):
/// the SDK cannot send them, so the override refuses them by name. Checked against the SDK's
/// source when this list was written; a newer SDK makes them accepted and this list shorter.
const NEWER_THAN_THE_SDK: [&str; 5] = [
    "BlockDeviceMappings[].Ebs.EbsCardIndex",
    "Monitoring.MetricCategoryIds",
    "Placement.AvailabilityZoneId",
    "CpuOptions.NestedVirtualization",
    "SecondaryInterfaces",
];

/// Where the service model is.
fn model_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KASM_SCALE_EC2_SERVICE_MODEL") {
        return Some(PathBuf::from(path));
    }
    let lib = Path::new("/tmp/kasm-scale-moto-venv/lib");
    let found = std::fs::read_dir(lib).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages/botocore/data/ec2/2016-11-15"))
            .flat_map(|d| [d.join("service-2.json.gz"), d.join("service-2.json")])
            .find(|f| f.is_file())
    });
    if found.is_none() {
        let skip = std::env::var("KASM_SCALE_SKIP_EC2").is_ok_and(|v| v == "1");
        if skip && std::env::var_os("CI").is_none() {
            eprintln!("SKIPPED (KASM_SCALE_SKIP_EC2=1): botocore's EC2 service model is missing");
            return None;
        }
        panic!(
            "botocore's EC2 service model (the published RunInstances input shape) is not under \
             {}/python3*/site-packages/botocore/data/ec2/2016-11-15/: install moto in that \
             virtualenv as .ci/run does, or set KASM_SCALE_EC2_SERVICE_MODEL to a service-2.json",
            lib.display()
        );
    }
    found
}

/// The service model's JSON.
fn read_model(path: &Path) -> Value {
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .expect("gzip -dc runs");
        assert!(out.status.success(), "gzip -dc {}", path.display());
        out.stdout
    } else {
        std::fs::read(path).expect("the service model")
    };
    serde_json::from_slice(&bytes).expect("the service model is JSON")
}

/// One scalar member of the input shape, with a sample value.
#[derive(Debug)]
struct Leaf {
    /// `NetworkInterfaces[].Ipv6Addresses[].Ipv6Address`.
    path: String,
    /// The override holding only this member.
    json: Value,
    /// The query parameter EC2 reads it from, lists as `.N`: `NetworkInterface.N.Ipv6Addresses.N.Ipv6Address`.
    query: String,
    /// The value sent.
    value: String,
}

/// Every scalar member under `shape`.
fn leaves(shapes: &Map<String, Value>, shape: &str, path: &str, query: &str, out: &mut Vec<Leaf>) {
    let s = &shapes[shape];
    match s["type"].as_str().unwrap() {
        "structure" => {
            for (name, member) in s["members"].as_object().unwrap() {
                // EC2's query protocol: queryName, else locationName capitalized, else the name.
                let wire = member["queryName"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| {
                        member["locationName"].as_str().map(|l| {
                            let mut c = l.chars();
                            c.next().unwrap().to_uppercase().chain(c).collect()
                        })
                    })
                    .unwrap_or_else(|| name.clone());
                let sep = |p: &str| {
                    if p.is_empty() {
                        String::new()
                    } else {
                        format!("{p}.")
                    }
                };
                let before = out.len();
                leaves(
                    shapes,
                    member["shape"].as_str().unwrap(),
                    &format!("{}{name}", sep(path)),
                    &format!("{}{wire}", sep(query)),
                    out,
                );
                for leaf in &mut out[before..] {
                    leaf.json = json!({ name: leaf.json.take() });
                }
            }
        }
        "list" => {
            let before = out.len();
            let element = s["member"]["shape"].as_str().unwrap();
            leaves(
                shapes,
                element,
                &format!("{path}[]"),
                &format!("{query}.N"),
                out,
            );
            for leaf in &mut out[before..] {
                leaf.json = json!([leaf.json.take()]);
            }
        }
        kind => {
            let n = out.len() + 1;
            let (json, value) = match kind {
                "string" => match s["enum"].as_array() {
                    Some(values) => (values[0].clone(), values[0].as_str().unwrap().to_owned()),
                    None => (json!(format!("s{n}")), format!("s{n}")),
                },
                "integer" | "long" => (json!(n), n.to_string()),
                "boolean" => (json!(true), "true".into()),
                "timestamp" => (json!("2030-01-02T03:04:05Z"), "2030-01-02T03:04:05Z".into()),
                other => panic!("{path}: a member of type {other} this test does not know"),
            };
            out.push(Leaf {
                path: path.to_owned(),
                json,
                query: query.to_owned(),
                value,
            });
        }
    }
}

/// Deep-merges `b` into `a` (lists element by element).
fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(x) => merge(x, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.into_iter().enumerate() {
                match a.get_mut(i) {
                    Some(x) => merge(x, v),
                    None => a.push(v),
                }
            }
        }
        (a, b) => *a = b,
    }
}

/// A provider config with `over` as its override.
fn with_override(over: &Value) -> kasm_scale_core::config::AwsVmConfig {
    let text = serde_json::to_string(over).unwrap();
    config(
        "aws-shape",
        "us-east-1",
        &format!("aws_ec2_config_override = '''{text}'''"),
    )
}

/// Percent-decoding of a form value.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn the_override_accepts_every_member_of_ec2s_run_instances_shape_and_sends_it() {
    let Some(file) = model_file() else { return };
    let model = read_model(&file);
    let shapes = model["shapes"].as_object().expect("shapes");
    let mut all = Vec::new();
    leaves(shapes, "RunInstancesRequest", "", "", &mut all);
    assert!(
        all.len() > 100,
        "{} members: not the RunInstances shape?",
        all.len()
    );
    let total = all.len();

    let mut wrong = Vec::new();
    let mut sent = Vec::new();
    for leaf in all {
        let result = kasm_scale_aws::check_override(&with_override(&leaf.json));
        let newer = NEWER_THAN_THE_SDK.iter().any(|n| {
            leaf.path == *n
                || leaf.path.starts_with(&format!("{n}."))
                || leaf.path.starts_with(&format!("{n}[]"))
        });
        if OURS.contains(&leaf.path.as_str()) {
            match result {
                Err((_, reason)) if reason.contains("set by kasm-scale") => {}
                other => wrong.push(format!("{}: ours, yet {other:?}", leaf.path)),
            }
        } else if newer {
            match result {
                Err((_, reason)) if reason.contains("after the AWS SDK of this build") => {}
                other => wrong.push(format!("{}: newer than the SDK, yet {other:?}", leaf.path)),
            }
        } else if let Err((path, reason)) = result {
            wrong.push(format!("{}: refused: {path}: {reason}", leaf.path));
        } else {
            sent.push(leaf);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of EC2's RunInstances members are not handled as they should be:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    assert!(sent.len() >= 100, "{} of {total} members sent", sent.len());
    // All of them in one override, sent: each reaches the request under its query name.
    let mut over = json!({});
    for leaf in &sent {
        merge(&mut over, leaf.json.clone());
    }
    let proxy = Proxy::start("http://127.0.0.1:9", |seen| match seen.action.as_str() {
        "RunInstances" => Fault::Error(400, "InvalidParameterValue"),
        _ => Fault::Error(400, "UnsupportedOperation"),
    })
    .await;
    let p = provider_at(with_override(&over), &proxy.url).await;
    let err = p
        .create(&spec("ec2-shape", 1, "#!/bin/sh\n"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("InvalidParameterValue"), "{err}");
    let body = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.action == "RunInstances")
        .expect("RunInstances sent")
        .body
        .clone();
    let params: Vec<(String, String)> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let key: Vec<&str> = k
                .split('.')
                .map(|part| {
                    if part.bytes().all(|b| b.is_ascii_digit()) {
                        "N"
                    } else {
                        part
                    }
                })
                .collect();
            (key.join("."), decode(v))
        })
        .collect();
    let missing: Vec<String> = sent
        .iter()
        .filter(|leaf| !params.contains(&(leaf.query.clone(), leaf.value.clone())))
        .map(|leaf| format!("{} (as {}={})", leaf.path, leaf.query, leaf.value))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted but not in the RunInstances request:\n{}\nsent: {body}",
        missing.join("\n")
    );
}
