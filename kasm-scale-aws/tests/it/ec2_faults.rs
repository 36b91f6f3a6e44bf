//! EC2 failures through AwsProvider: error codes injected by a loopback proxy in front of the
//! emulator, a lost RunInstances answer, real SigV4 rejection by a second emulator that checks
//! signatures (`KASM_SCALE_EC2_AUTH_ENDPOINT`), and an unreachable endpoint.
//!
//! Every call is one attempt (the controller's `RetryPolicy` is the one retry layer): the tests
//! count the requests the proxy received. The controller's retries themselves are tested in
//! kasm-scale-core.

use crate::support;

use kasm_scale_core::traits::{BackendError, VmProvider};
use support::{
    Fault, Proxy, config, endpoint, malformed_id, provider_at, raw_client, reset_region, spec,
};

/// The class of an error, for comparing without the message.
fn class(e: &BackendError) -> &'static str {
    match e {
        BackendError::NotFound(_) => "not found",
        BackendError::RateLimited { .. } => "rate limited",
        BackendError::Capacity(_) => "capacity",
        BackendError::Quota(_) => "quota",
        BackendError::Auth(_) => "auth",
        BackendError::Permission(_) => "permission",
        BackendError::InvalidRequest(_) => "invalid request",
        BackendError::Conflict(_) => "conflict",
        BackendError::Transient(_) => "transient",
        _ => "a class this test does not know",
    }
}

#[tokio::test]
async fn ec2_error_codes_map_to_the_core_classes() {
    let Some(url) = endpoint() else { return };
    let region = "eu-west-1";
    reset_region(&url, region).await;
    let cases: [(u16, &str, &str); 16] = [
        (503, "RequestLimitExceeded", "rate limited"),
        (400, "Throttling", "rate limited"),
        (400, "EC2ThrottledException", "rate limited"),
        (429, "TooManyRequestsException", "rate limited"),
        (400, "RequestTimeout", "transient"),
        (500, "InsufficientInstanceCapacity", "capacity"),
        (400, "InstanceLimitExceeded", "quota"),
        (400, "VcpuLimitExceeded", "quota"),
        (401, "AuthFailure", "auth"),
        (403, "UnauthorizedOperation", "permission"),
        (400, "InvalidAMIID.NotFound", "invalid request"),
        (400, "InvalidAMIID.Malformed", "invalid request"),
        (400, "InvalidParameterValue", "invalid request"),
        (500, "InternalError", "transient"),
        (503, "Unavailable", "transient"),
        (500, "SomethingNew", "transient"),
    ];
    for (n, (status, code, expected)) in cases.into_iter().enumerate() {
        let proxy = Proxy::start(&url, move |seen| match seen.action.as_str() {
            "RunInstances" => Fault::Error(status, code),
            _ => Fault::Forward,
        })
        .await;
        let p = provider_at(config("aws-errors", region, ""), &proxy.url).await;
        let err = p
            .create(&spec("ec2-errors", n as u128, "#!/bin/sh\n"))
            .await
            .unwrap_err();
        assert_eq!(class(&err), expected, "{status} {code}: {err}");
        assert!(err.to_string().contains(code), "{err}");
        assert!(!err.to_string().contains("test-secret"), "{err}");
        let attempts = proxy.count("RunInstances");
        assert_eq!(attempts, 1, "{code}: RunInstances sent {attempts} times");
    }
    let raw = raw_client(&url, region);
    let left = raw.describe_instances().send().await.unwrap();
    assert!(left.reservations().is_empty(), "no instance came of it");
}

#[tokio::test]
async fn every_ec2_call_is_one_attempt_with_its_class() {
    let Some(url) = endpoint() else { return };
    let region = "sa-east-1";
    reset_region(&url, region).await;
    let direct = provider_at(config("aws-once", region, ""), &url).await;
    let vm = direct.create(&spec("ec2-once", 1, "")).await.unwrap();
    let proxy = Proxy::start(&url, |seen| match seen.action.as_str() {
        "DescribeInstances" => Fault::Error(503, "RequestLimitExceeded"),
        "TerminateInstances" => Fault::Error(500, "InternalError"),
        "DescribeImages" => Fault::Error(503, "Unavailable"),
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-once", region, ""), &proxy.url).await;
    let err = p.list("ec2-once").await.unwrap_err();
    assert_eq!(class(&err), "rate limited", "{err}");
    assert_eq!(err.retry_after(), None, "EC2 sends no Retry-After");
    assert_eq!(proxy.count("DescribeInstances"), 1, "list: one attempt");
    let err = p.get(&vm.vm_id).await.unwrap_err();
    assert_eq!(class(&err), "rate limited", "{err}");
    assert_eq!(proxy.count("DescribeInstances"), 2, "get: one attempt");
    let err = p.destroy(&vm.vm_id).await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert_eq!(proxy.count("TerminateInstances"), 1, "destroy: one attempt");
    let sized = config("aws-once", region, "aws_ec2_ebs_volume_size_gb = 20");
    let p = provider_at(sized, &proxy.url).await;
    let err = p.create(&spec("ec2-once", 2, "")).await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert_eq!(
        proxy.count("DescribeImages"),
        1,
        "the AMI lookup: one attempt"
    );
    assert_eq!(proxy.count("RunInstances"), 0);
    let ids = |vms: Vec<kasm_scale_core::traits::Vm>| {
        vms.into_iter().map(|v| v.vm_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(direct.list("ec2-once").await.unwrap()),
        [vm.vm_id],
        "still there"
    );
}

#[tokio::test]
async fn a_lost_run_instances_answer_does_not_make_a_second_instance() {
    let Some(url) = endpoint() else { return };
    let region = "eu-west-2";
    reset_region(&url, region).await;
    // moto ignores ClientToken, so only the server-id lookup before the repeated create (the
    // controller's retry) prevents a duplicate here.
    let proxy = Proxy::start(&url, |seen| match (seen.action.as_str(), seen.nth) {
        ("RunInstances", 0) => Fault::ForwardThenDrop,
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-lost", region, ""), &proxy.url).await;
    let s = spec("ec2-lost", 1, "#!/bin/sh\n");
    let err = p.create(&s).await.unwrap_err();
    assert_eq!(class(&err), "transient", "the lost answer: {err}");
    assert_eq!(proxy.count("RunInstances"), 1, "one attempt per create");
    let vm = p
        .create(&s)
        .await
        .expect("the repeated create finds the instance");
    assert_eq!(
        proxy.count("RunInstances"),
        1,
        "not sent again: found by tag"
    );
    let again = p.create(&s).await.unwrap();
    assert_eq!(
        again.vm_id, vm.vm_id,
        "create is idempotent on the server id"
    );
    let listed = p.list("ec2-lost").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].vm_id, vm.vm_id);
    assert_eq!(proxy.count("RunInstances"), 1);
    // Another process creating the same server: with `always_look_up` it finds the instance
    // even on a cloud that ignores ClientToken.
    let other = kasm_scale_aws::AwsProvider::builder(config("aws-lost", region, ""))
        .endpoint_url(&proxy.url)
        .always_look_up(true)
        .build()
        .await
        .unwrap();
    assert_eq!(other.create(&s).await.unwrap().vm_id, vm.vm_id);
    assert_eq!(proxy.count("RunInstances"), 1);
}

#[tokio::test]
async fn a_failed_run_instances_is_sent_again_by_the_next_create_only() {
    let Some(url) = endpoint() else { return };
    let region = "eu-north-1";
    reset_region(&url, region).await;
    let proxy = Proxy::start(&url, |seen| match (seen.action.as_str(), seen.nth) {
        ("RunInstances", 0) => Fault::Error(500, "InternalError"),
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-again", region, ""), &proxy.url).await;
    let s = spec("ec2-again", 1, "#!/bin/sh\n");
    let err = p.create(&s).await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert_eq!(proxy.count("RunInstances"), 1);
    assert_eq!(
        proxy.count("DescribeInstances"),
        0,
        "a first create looks nothing up"
    );
    let vm = p.create(&s).await.unwrap();
    assert_eq!(
        proxy.count("DescribeInstances"),
        1,
        "the repeat looks the tag up"
    );
    assert_eq!(proxy.count("RunInstances"), 2, "nothing found: sent again");
    let listed = p.list("ec2-again").await.unwrap();
    assert_eq!(listed.len(), 1, "one instance in all: {listed:?}");
    assert_eq!(listed[0].vm_id, vm.vm_id);
}

#[tokio::test]
async fn a_dropped_describe_is_transient_and_destroy_of_unknown_is_ok() {
    let Some(url) = endpoint() else { return };
    let region = "eu-central-1";
    reset_region(&url, region).await;
    let proxy = Proxy::start(&url, |seen| match seen.action.as_str() {
        "DescribeInstances" => Fault::ForwardThenDrop,
        _ => Fault::Forward,
    })
    .await;
    let p = provider_at(config("aws-drop", region, ""), &proxy.url).await;
    let err = p.list("ec2-drop").await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert!(err.to_string().contains("EC2"), "{err}");
    assert_eq!(proxy.count("DescribeInstances"), 1, "one attempt");
    let direct = provider_at(config("aws-drop", region, ""), &url).await;
    direct.destroy("i-0123456789abcdef0").await.unwrap();
    let vm = direct.create(&spec("ec2-drop", 5, "")).await.unwrap();
    direct.destroy(&vm.vm_id).await.unwrap();
    direct.destroy(&vm.vm_id).await.unwrap();
    assert_eq!(direct.get(&vm.vm_id).await.unwrap(), None);
}

#[tokio::test]
async fn unreachable_ec2_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let p = provider_at(config("aws-closed", "us-east-1", ""), &closed).await;
    let err = p.list("x").await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert!(err.to_string().contains("cannot reach EC2"), "{err}");
}

#[tokio::test]
async fn rejected_credentials_are_an_auth_error() {
    let Some(url) = kasm_scale_core::testkit::test_server(
        "KASM_SCALE_EC2_AUTH_ENDPOINT",
        "KASM_SCALE_SKIP_EC2",
        "a real AuthFailure (moto checking signatures)",
    ) else {
        return;
    };
    let p = provider_at(config("aws-auth", "us-east-1", ""), &url).await;
    let err = p.list("x").await.unwrap_err();
    assert_eq!(class(&err), "auth", "{err}");
    assert!(
        err.to_string()
            .starts_with("authentication failed: AuthFailure"),
        "{err}"
    );
    assert!(!err.to_string().contains("test-secret"), "{err}");
    let err = p.create(&spec("x", 1, "")).await.unwrap_err();
    assert_eq!(class(&err), "auth", "{err}");
}

#[tokio::test]
async fn a_hung_endpoint_times_out_as_transient() {
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let p = kasm_scale_aws::AwsProvider::builder(config("aws-hung", "us-east-1", ""))
        .endpoint_url(&url)
        .attempt_timeout(std::time::Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = p.list("x").await.unwrap_err();
    assert_eq!(class(&err), "transient", "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn an_id_that_never_existed_is_absent_whether_ec2_calls_it_malformed_or_unknown() {
    let Some(url) = endpoint() else { return };
    let region = "ca-central-1";
    reset_region(&url, region).await;
    // Real EC2 refuses a badly formed id with InvalidInstanceID.Malformed; moto answers
    // NotFound for every id. The proxy answers as EC2 does.
    let proxy = Proxy::start(&url, |seen| malformed_id(seen).unwrap_or(Fault::Forward)).await;
    let p = provider_at(config("aws-malformed", region, ""), &proxy.url).await;
    for id in ["vm-that-never-existed", "i-123", "i-0123456789ABCDEF0", ""] {
        assert_eq!(p.get(id).await, Ok(None), "get {id:?}");
        assert_eq!(p.destroy(id).await, Ok(()), "destroy {id:?}");
    }
    assert!(
        proxy.count("DescribeInstances") >= 4 && proxy.count("TerminateInstances") >= 4,
        "the calls reached the proxy"
    );
    // Well formed but never made: EC2 (and moto) answer InvalidInstanceID.NotFound.
    for id in ["i-0123456789abcdef0", "i-01234567"] {
        assert_eq!(p.get(id).await, Ok(None), "get {id:?}");
        assert_eq!(p.destroy(id).await, Ok(()), "destroy {id:?}");
    }
    // The whole VmProvider contract behind the strict proxy.
    kasm_scale_core::testkit::vm_provider_contract(&p, "ec2-malformed").await;
}

#[tokio::test]
async fn a_new_instance_ec2_does_not_show_yet_is_absent_not_an_error_and_not_made_twice() {
    let Some(url) = endpoint() else { return };
    let region = "ap-northeast-2";
    reset_region(&url, region).await;
    // EC2 is eventually consistent: for a while after RunInstances, DescribeInstances may
    // answer InvalidInstanceID.NotFound for the new id, and a filter may not find it yet.
    let empty = "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>t</requestId><reservationSet/></DescribeInstancesResponse>".to_owned();
    let proxy = Proxy::start(&url, move |seen| {
        let by_id = !support::instance_ids(&seen.body).is_empty();
        match (seen.action.as_str(), by_id, seen.nth) {
            ("DescribeInstances", true, 0..3) => Fault::Error(400, "InvalidInstanceID.NotFound"),
            ("DescribeInstances", false, _) => Fault::Answer(200, empty.clone()),
            _ => Fault::Forward,
        }
    })
    .await;
    let p = provider_at(config("aws-consistency", region, ""), &proxy.url).await;
    let s = spec("ec2-consistency", 1, "#!/bin/sh\n");
    let vm = p.create(&s).await.unwrap();
    // `None` (the controller waits VANISH_GRACE before calling a server vanished), not an error.
    for n in 0..3 {
        assert_eq!(p.get(&vm.vm_id).await, Ok(None), "describe {n}");
    }
    let seen = p.get(&vm.vm_id).await.unwrap().expect("visible now");
    assert_eq!(seen.vm_id, vm.vm_id);
    // A repeated create whose tag lookup does not see the instance yet sends RunInstances again
    // with the same ClientToken, which EC2 answers with the instance it made (moto ignores it).
    let _ = p.create(&s).await.unwrap();
    let tokens: Vec<String> = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.action == "RunInstances")
        .filter_map(|x| {
            x.body
                .split('&')
                .find_map(|kv| kv.strip_prefix("ClientToken="))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(tokens[0], s.owner.server_id.to_string());
    assert_eq!(
        tokens[1], tokens[0],
        "the same ClientToken: no second instance on EC2"
    );
}
