//! The stop/start part of the [`VmProvider`] contract (optional: [`Capabilities::stop_start`]).
//!
//! [`Capabilities::stop_start`]: crate::traits::Capabilities::stop_start

use std::time::Duration;

use super::{owner, retrying, spec};
use crate::traits::{BackendError, StopMode, VmProvider, VmState};

/// Polls `get` until the VM is in one of `states` (a VM that is gone counts as `Terminated`), at most
/// `limit` (tokio's clock: a paused test clock advances by itself). Panics with `what` and the
/// last state seen when it is not.
pub async fn wait_for_state(
    provider: &dyn VmProvider,
    vm_id: &str,
    states: &[VmState],
    limit: Duration,
    what: &str,
) {
    let began = tokio::time::Instant::now();
    loop {
        let vm = retrying(|| provider.get(vm_id)).await.expect("get");
        let state = vm.as_ref().map(|v| v.state);
        let done = match state {
            Some(s) => states.contains(&s),
            None => states.contains(&VmState::Terminated),
        };
        if done {
            return;
        }
        if began.elapsed() >= limit {
            panic!("{what}: the VM is {state:?} after {limit:?}, expected one of {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the stop/start contract. `owner_id` must be unused on the backend; `limit` bounds each
/// wait for a state (a real cloud's stop takes a minute; a test server's a moment).
///
/// It checks: a provider that declares `stop_start` stops a running VM (reported `Stopped`,
/// with its owner tags, still listed), a second stop is `Ok`, a start brings it back to
/// `Pending`/`Running` and a second start is `Ok`, a start of a running VM is `Ok`, and stop
/// and start of a VM that does not exist (never did, or was destroyed meanwhile) are
/// `NotFound`.
pub async fn vm_provider_stop_start_contract(
    provider: &dyn VmProvider,
    owner_id: &str,
    limit: Duration,
) {
    assert!(
        provider.capabilities().stop_start,
        "the provider declares stop_start"
    );
    let one = spec(owner_id, 11);
    let vm = retrying(|| provider.create(&one)).await.expect("create");
    let running = [VmState::Running];
    wait_for_state(provider, &vm.vm_id, &running, limit, "a new VM runs").await;
    retrying(|| provider.start(&vm.vm_id))
        .await
        .expect("a start of a running VM is Ok");

    retrying(|| provider.stop(&vm.vm_id, StopMode::Stop))
        .await
        .expect("stop");
    let stopped = [VmState::Stopped];
    wait_for_state(provider, &vm.vm_id, &stopped, limit, "a stopped VM").await;
    retrying(|| provider.stop(&vm.vm_id, StopMode::Stop))
        .await
        .expect("a stop of a stopped VM is Ok");
    let got = retrying(|| provider.get(&vm.vm_id))
        .await
        .expect("get")
        .expect("a stopped VM still exists");
    assert_eq!(
        got.owner,
        owner(owner_id, 11),
        "a stopped VM keeps its tags"
    );
    let listed = retrying(|| provider.list(owner_id)).await.expect("list");
    assert!(
        listed
            .iter()
            .any(|v| v.vm_id == vm.vm_id && v.state == VmState::Stopped),
        "list reports a stopped VM as stopped: {listed:?}"
    );

    retrying(|| provider.start(&vm.vm_id)).await.expect("start");
    wait_for_state(provider, &vm.vm_id, &running, limit, "a started VM runs").await;
    retrying(|| provider.start(&vm.vm_id))
        .await
        .expect("a second start is Ok");

    // Deleted meanwhile: a person (or a destroy) removed it while it was stopped.
    retrying(|| provider.stop(&vm.vm_id, StopMode::Stop))
        .await
        .expect("stop again");
    wait_for_state(provider, &vm.vm_id, &stopped, limit, "stopped again").await;
    retrying(|| provider.destroy(&vm.vm_id))
        .await
        .expect("destroy a stopped VM");
    wait_for_state(
        provider,
        &vm.vm_id,
        &[VmState::Terminated],
        limit,
        "a destroyed VM",
    )
    .await;
    for (what, result) in [
        ("start", provider.start(&vm.vm_id).await),
        ("stop", provider.stop(&vm.vm_id, StopMode::Stop).await),
        ("start", provider.start("vm-that-never-existed").await),
    ] {
        assert!(
            matches!(result, Err(BackendError::NotFound(_))),
            "a {what} of a VM that does not exist is NotFound, got {result:?}"
        );
    }
}

/// Runs the part of the stop/start contract that moves a stopped VM to another offering
/// ([`VmProvider::resize`], optional: [`Capabilities::resize_stopped`]). `to` is an offering of
/// the provider's config in the same placement as offering 0 (another instance type or size in
/// the same subnet or zone); `owner_id` must be unused on the backend.
///
/// It checks: a VM that runs is not moved (`InvalidRequest`), a stopped one is, a second move to
/// the same offering and a move to the one it has are `Ok`, the moved VM starts and runs with
/// its tags, and a move of a VM that does not exist is `NotFound`. What the cloud then runs
/// (the instance type, the size) is the backend's own test to read back.
///
/// [`Capabilities::resize_stopped`]: crate::traits::Capabilities::resize_stopped
pub async fn vm_provider_resize_contract(
    provider: &dyn VmProvider,
    owner_id: &str,
    to: u32,
    limit: Duration,
) -> String {
    assert!(
        provider.capabilities().resize_stopped,
        "the provider declares resize_stopped"
    );
    let one = spec(owner_id, 12);
    let vm = retrying(|| provider.create(&one)).await.expect("create");
    let running = [VmState::Running];
    wait_for_state(provider, &vm.vm_id, &running, limit, "a new VM runs").await;
    let moved = provider.resize(&vm.vm_id, to).await;
    assert!(
        matches!(moved, Err(BackendError::InvalidRequest(_))),
        "a running VM is not moved: {moved:?}"
    );
    retrying(|| provider.stop(&vm.vm_id, StopMode::Stop))
        .await
        .expect("stop");
    wait_for_state(provider, &vm.vm_id, &[VmState::Stopped], limit, "stopped").await;
    retrying(|| provider.resize(&vm.vm_id, to))
        .await
        .expect("a stopped VM moves to another offering of its placement");
    retrying(|| provider.resize(&vm.vm_id, to))
        .await
        .expect("a second move to the same offering is Ok");
    retrying(|| provider.start(&vm.vm_id))
        .await
        .expect("the moved VM starts");
    wait_for_state(provider, &vm.vm_id, &running, limit, "the moved VM runs").await;
    let got = retrying(|| provider.get(&vm.vm_id))
        .await
        .expect("get")
        .expect("the moved VM exists");
    assert_eq!(got.owner, owner(owner_id, 12), "a moved VM keeps its tags");
    let gone = provider.resize("vm-that-never-existed", to).await;
    assert!(
        matches!(gone, Err(BackendError::NotFound(_))),
        "a move of a VM that does not exist is NotFound, got {gone:?}"
    );
    vm.vm_id
}
