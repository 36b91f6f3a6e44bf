//! The conformance suite for [`VmProvider`] and [`DirectoryService`] implementations: public
//! async functions that exercise the `# Contract` of each trait against a real (or emulated)
//! backend and panic, with the broken rule, when it does not hold. The in-memory backends run it
//! in this crate's tests; every provider crate runs the same functions against its backend, and
//! the same controller [`Scenario`] (fill a pool, check in, grow, scale down) against its real
//! test server. [`Fixture`] builds the configuration most tests run on.

mod fixture;
mod power;
mod scenario;
mod store;

pub use fixture::{AD_CONTAINER, Fixture};
pub use power::{vm_provider_resize_contract, vm_provider_stop_start_contract, wait_for_state};
pub use scenario::{Guests, SCENARIO_MINIMUM, Scenario, check_in_starting, scenario_config};
pub use store::{sample_records, state_store_contract};

use std::future::Future;
use std::time::Duration;

use crate::engine::ServerId;
use crate::secret::Secret;
use crate::traits::{
    BackendError, ComputerSpec, DirectoryService, Owner, VmProvider, VmSpec, VmState,
};

/// The value of `var`, which names a test server that `bash .ci/run` starts (an EC2 emulator,
/// a Samba AD DC …). A missing server FAILS the test with the reason, unless the run opts out
/// explicitly with `opt_out=1` outside CI: then this prints a `SKIPPED` line and returns `None`.
pub fn test_server(var: &str, opt_out: &str, what: &str) -> Option<String> {
    if let Ok(value) = std::env::var(var) {
        return Some(value);
    }
    let skip = std::env::var(opt_out).is_ok_and(|v| v == "1");
    let ci = std::env::var_os("CI").is_some();
    if skip && !ci {
        eprintln!("SKIPPED ({opt_out}=1): {var} is not set, so {what} is not tested");
        return None;
    }
    panic!(
        "{var} is not set: {what} needs its test server (bash .ci/run starts it and sets {var}; \
         outside CI, {opt_out}=1 skips these tests)"
    );
}

/// Calls `f` until it succeeds or fails with an error that is not retryable, waiting as the
/// backend asks (at most 20 attempts).
pub async fn retrying<T, F, Fut>(mut f: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(200))).await;
            }
            other => return other,
        }
    }
}

/// A spec for server `n` of `owner_id` for backend tests: pool `p`, config `c`, server id `n`,
/// host name `KASM-<n, 10 digits>`, `script` as the startup script.
pub fn vm_spec(owner_id: &str, n: u128, script: &str) -> VmSpec {
    VmSpec {
        owner: Owner {
            owner_id: owner_id.into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
        hostname: format!("KASM-{n:010}"),
        startup_script: Secret::new(script),
        offering: 0,
    }
}

fn owner(owner_id: &str, n: u128) -> Owner {
    Owner {
        owner_id: owner_id.into(),
        pool: "conformance-pool".into(),
        config: "conformance-config".into(),
        server_id: ServerId(uuid::Uuid::from_u128(
            0x6b61_736d_0000_0000_0000_0000_0000_0000 | n,
        )),
    }
}

fn spec(owner_id: &str, n: u128) -> VmSpec {
    VmSpec {
        owner: owner(owner_id, n),
        hostname: format!("KSCONF{n:04}"),
        startup_script: Secret::new(format!("#!/bin/sh\necho conformance {n}\n")),
        offering: 0,
    }
}

/// Runs the [`VmProvider`] contract. `owner_id` must be unused on the backend (the suite
/// creates and destroys a few VMs under it and expects to see only those).
pub async fn vm_provider_contract(provider: &dyn VmProvider, owner_id: &str) {
    let other_owner = format!("{owner_id}-other");
    let (one, two, three) = (spec(owner_id, 1), spec(owner_id, 2), spec(&other_owner, 3));
    let first = retrying(|| provider.create(&one)).await.expect("create");
    assert_eq!(
        first.owner,
        owner(owner_id, 1),
        "a created VM carries its owner tags"
    );
    assert!(
        matches!(first.state, VmState::Pending | VmState::Running),
        "a new VM is pending or running"
    );

    let again = retrying(|| provider.create(&one))
        .await
        .expect("create again");
    assert_eq!(
        again.vm_id, first.vm_id,
        "create is idempotent on the server id"
    );

    let second = retrying(|| provider.create(&two))
        .await
        .expect("create a second");
    assert_ne!(second.vm_id, first.vm_id, "another server gets another VM");
    let stranger = retrying(|| provider.create(&three))
        .await
        .expect("create for another owner");

    let got = retrying(|| provider.get(&first.vm_id)).await.expect("get");
    assert_eq!(
        got.map(|v| v.owner),
        Some(owner(owner_id, 1)),
        "get finds a VM with its owner"
    );
    let mut listed: Vec<(String, ServerId)> = retrying(|| provider.list(owner_id))
        .await
        .expect("list")
        .into_iter()
        .map(|v| (v.vm_id, v.owner.server_id))
        .collect();
    listed.sort();
    let mut want = vec![
        (first.vm_id.clone(), owner(owner_id, 1).server_id),
        (second.vm_id.clone(), owner(owner_id, 2).server_id),
    ];
    want.sort();
    assert_eq!(
        listed, want,
        "list returns exactly the owner's VMs, once each"
    );

    retrying(|| provider.destroy(&first.vm_id))
        .await
        .expect("destroy");
    let gone = retrying(|| provider.get(&first.vm_id))
        .await
        .expect("get after destroy");
    assert!(
        gone.is_none_or(|v| matches!(v.state, VmState::Stopping | VmState::Terminated)),
        "a destroyed VM is gone"
    );
    let listed = retrying(|| provider.list(owner_id))
        .await
        .expect("list after destroy");
    assert!(
        listed.iter().all(|v| v.vm_id != first.vm_id),
        "list leaves destroyed VMs out"
    );
    retrying(|| provider.destroy(&first.vm_id))
        .await
        .expect("destroying a destroyed VM is Ok");
    assert!(
        retrying(|| provider.get("vm-that-never-existed"))
            .await
            .expect("get of an unknown id")
            .is_none()
    );

    for vm in [&second, &stranger] {
        retrying(|| provider.destroy(&vm.vm_id))
            .await
            .expect("clean up");
    }
    assert!(
        retrying(|| provider.list(owner_id))
            .await
            .expect("list")
            .is_empty(),
        "everything is cleaned up"
    );
}

/// Runs the [`DirectoryService`] contract in `container_dn`. `owner_id` must be unused in the
/// directory.
pub async fn directory_contract(
    directory: &dyn DirectoryService,
    owner_id: &str,
    container_dn: &str,
) {
    let spec = |n: u128, name: &str| ComputerSpec {
        name: name.into(),
        container_dn: container_dn.into(),
        owner: owner(owner_id, n),
    };
    let a = spec(1, "KSCONF-A");
    let password = retrying(|| directory.create_computer(&a))
        .await
        .expect("create a computer");
    assert!(
        password.expose().len() >= 16,
        "a join password has at least 16 characters"
    );
    let again = retrying(|| directory.create_computer(&a))
        .await
        .expect("create is idempotent on the server id");
    assert_ne!(
        again.expose(),
        password.expose(),
        "creating again resets the one-time password"
    );

    let mut taken = spec(2, "KSCONF-A");
    taken.owner.server_id = owner(owner_id, 2).server_id;
    let conflict = retrying(|| directory.create_computer(&taken)).await;
    assert!(
        matches!(conflict, Err(BackendError::Conflict(_))),
        "a name owned by another server is a conflict: {conflict:?}"
    );

    for bad in ["KSCONF-TOO-LONG-NAME", "KS_CONF", "12345", ""] {
        let result = directory.create_computer(&spec(3, bad)).await;
        assert!(
            matches!(result, Err(BackendError::InvalidRequest(_))),
            "`{bad}` is refused: {result:?}"
        );
    }

    let here = [container_dn.to_owned()];
    let records = retrying(|| directory.list_computers(owner_id, &here))
        .await
        .expect("list");
    assert_eq!(records.len(), 1, "list returns the owner's records");
    assert_eq!(records[0].owner, owner(owner_id, 1));
    assert!(records[0].name.eq_ignore_ascii_case("KSCONF-A"));
    assert!(
        retrying(|| directory.list_computers(owner_id, &[]))
            .await
            .expect("list")
            .is_empty(),
        "no containers, no records"
    );
    if let Some(parent) = parent_dn(container_dn) {
        let parent = [parent.to_owned()];
        assert!(
            retrying(|| directory.list_computers(owner_id, &parent))
                .await
                .expect("list")
                .is_empty(),
            "only records directly in the containers given are listed, not those below them"
        );
    }

    retrying(|| directory.delete_computer(container_dn, "KSCONF-A", false))
        .await
        .expect("delete");
    assert!(
        retrying(|| directory.list_computers(owner_id, &here))
            .await
            .expect("list")
            .is_empty(),
        "deleted records are gone"
    );
    retrying(|| directory.delete_computer(container_dn, "KSCONF-A", false))
        .await
        .expect("deleting a missing record is Ok");
}

/// `dn` without its first RDN (`OU=a,DC=x` → `DC=x`), or `None` for a single RDN.
fn parent_dn(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return Some(dn[i + 1..].trim_start()),
            _ => escaped = false,
        }
    }
    None
}
