//! The warm tier end to end on the EC2 emulator: a server built and checked in for the tier is
//! stopped with StopInstances, started with StartInstances when free slots are short, and takes
//! sessions only once its guest checked in again.

use crate::support;

use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::testkit::{SCENARIO_MINIMUM, check_in_starting};
use kasm_scale_core::traits::{VmProvider, VmState};
use support::{Ec2Guests, Fault, Proxy, ec2_controller, endpoint, raw_client, reset_region};

const REGION: &str = "ap-northeast-2";

async fn step(scaler: &Autoscaler) {
    scaler.tick().await;
    scaler.settle().await;
}

#[tokio::test]
async fn a_warm_server_is_stopped_then_started_on_ec2_and_serves_after_it_checks_in_again() {
    let Some(url) = endpoint() else { return };
    reset_region(&url, REGION).await;
    let proxy = Proxy::strict(&url, |_| Fault::Forward).await;
    let (scaler, provider, _owner) = ec2_controller(
        &proxy.url,
        REGION,
        r#"aws_ec2_instance_type = "t3.medium""#,
        "warm_pool = { min_stopped = 1, max_stopped = 1 }",
    )
    .await;
    let guests = Ec2Guests(raw_client(&url, REGION));
    let min = SCENARIO_MINIMUM as usize;

    // The minimum, and one server built for the tier.
    step(&scaler).await;
    let servers = scaler.servers();
    assert_eq!(servers.len(), min + 1, "{servers:?}");
    assert_eq!(servers.iter().filter(|s| s.for_warm).count(), 1);
    assert_eq!(check_in_starting(&scaler, &guests).await, min + 1);
    // Checked in, the tier's build is stopped (and observed stopped on the next ticks).
    for _ in 0..3 {
        step(&scaler).await;
    }
    let warm: Vec<_> = scaler
        .servers()
        .into_iter()
        .filter(|s| s.state == ServerState::Stopped)
        .collect();
    assert_eq!(warm.len(), 1, "{:?}", scaler.servers());
    let warm_id = warm[0].id;
    let warm_vm = warm[0].vm_id.clone().expect("its VM");
    assert_eq!(proxy.count("StopInstances"), 1);
    let on_ec2 = provider.get(&warm_vm).await.unwrap().expect("kept");
    assert_eq!(on_ec2.state, VmState::Stopped, "stopped on EC2, not gone");
    let pool = &scaler.pools()[0];
    assert_eq!(
        (pool.free_sessions, pool.warm_sessions),
        (min as u32, 1),
        "{pool:?}"
    );

    // A session takes a free slot: the free slots are short of the minimum by one, and the
    // stopped server is started for it instead of a build.
    let runs_before = proxy.count("RunInstances");
    match scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    {
        SessionOutcome::Assigned { server, .. } => assert_ne!(server, warm_id),
        other => panic!("a running server takes it: {other:?}"),
    }
    step(&scaler).await;
    assert_eq!(
        proxy.count("StartInstances"),
        1,
        "the warm server is started"
    );
    let woken = scaler
        .servers()
        .into_iter()
        .find(|s| s.id == warm_id)
        .expect("the woken server");
    assert_eq!(woken.state, ServerState::Starting);
    assert!(woken.woken_at.is_some());
    // Not handed out before it proved it is up: the free slots are the running servers'.
    assert_eq!(scaler.pools()[0].free_sessions, (min - 1) as u32);
    // The tier is refilled by a build of its own; the woken server needed none.
    let builds = proxy.count("RunInstances") - runs_before;
    assert!(builds <= 1, "{builds} builds: only the tier's refill");

    // Its guest checks in at boot with the token it kept over the stop.
    assert!(check_in_starting(&scaler, &guests).await >= 1);
    step(&scaler).await;
    let woken = scaler
        .servers()
        .into_iter()
        .find(|s| s.id == warm_id)
        .expect("the woken server");
    assert_eq!(woken.state, ServerState::Running, "{woken:?}");
    assert_eq!(
        provider.get(&warm_vm).await.unwrap().map(|v| v.state),
        Some(VmState::Running)
    );
    assert!(scaler.pools()[0].free_sessions >= min as u32);
}

#[tokio::test]
async fn a_warm_start_ec2_cannot_place_moves_the_instance_to_the_next_type_in_the_same_tick() {
    let Some(url) = endpoint() else { return };
    let region = "ap-east-1";
    reset_region(&url, region).await;
    // EC2 is short of t3.medium: a start of an instance of that type is refused for capacity,
    // one whose type was changed (to t3.large) through the proxy is placed.
    let moved: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::Arc::default();
    let seen_moves = moved.clone();
    let proxy = Proxy::strict(&url, move |seen| match seen.action.as_str() {
        "ModifyInstanceAttribute" if seen.body.contains("InstanceType.Value=t3.large") => {
            seen_moves
                .lock()
                .unwrap()
                .extend(support::instance_ids(&seen.body));
            Fault::Forward
        }
        "StartInstances"
            if support::instance_ids(&seen.body)
                .iter()
                .any(|id| !seen_moves.lock().unwrap().contains(id)) =>
        {
            Fault::Error(500, "InsufficientInstanceCapacity")
        }
        _ => Fault::Forward,
    })
    .await;
    let (scaler, provider, _owner) = ec2_controller(
        &proxy.url,
        region,
        "aws_ec2_instance_type = \"t3.medium\"\nalternatives = [{ aws_ec2_instance_type = \"t3.large\" }]",
        "warm_pool = { min_stopped = 1, max_stopped = 1 }",
    )
    .await;
    let guests = Ec2Guests(raw_client(&url, region));
    step(&scaler).await;
    check_in_starting(&scaler, &guests).await;
    for _ in 0..3 {
        step(&scaler).await;
    }
    let warm = scaler
        .servers()
        .into_iter()
        .find(|s| s.state == ServerState::Stopped)
        .expect("a stopped server");
    let vm = warm.vm_id.clone().expect("its VM");
    assert_eq!(warm.offering, 0);

    scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    step(&scaler).await;
    assert_eq!(
        (
            proxy.count("StartInstances"),
            proxy.count("ModifyInstanceAttribute")
        ),
        (2, 1),
        "refused on t3.medium, moved, started on t3.large, all in one tick"
    );
    assert_eq!(
        moved.lock().unwrap().iter().collect::<Vec<_>>(),
        vec![&vm],
        "the stopped server's instance was the one moved"
    );
    let described = raw_client(&url, region)
        .describe_instances()
        .instance_ids(&vm)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("t3.large")
    );
    let woken = scaler.server(warm.id).expect("the woken server");
    assert_eq!(
        (woken.state, woken.offering),
        (ServerState::Starting, 1),
        "{woken:?}"
    );
    // Its guest checks in at boot: it serves, on the larger type.
    assert!(check_in_starting(&scaler, &guests).await >= 1);
    step(&scaler).await;
    assert_eq!(
        scaler.server(warm.id).map(|s| s.state),
        Some(ServerState::Running)
    );
    assert_eq!(
        provider.get(&vm).await.unwrap().map(|v| v.state),
        Some(VmState::Running)
    );
}
