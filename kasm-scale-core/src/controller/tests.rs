//! Error paths the in-memory cloud cannot produce, with mocked backends.

use std::sync::Arc;

use crate::config::{Format, load_str};
use crate::controller::{Autoscaler, Event, RetryPolicy};
use crate::engine::ServerState;
use crate::traits::{BackendError, Capabilities, MockVmProvider, Vm, VmState};

const CONFIG: &str = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mock"
max_instances = 5

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mock"
connection_type = "RDP"
minimum_pool_standby_sessions = 1
"#;

fn mock() -> MockVmProvider {
    let mut m = MockVmProvider::new();
    m.expect_name().return_const("mock".to_owned());
    m.expect_capabilities()
        .return_const(Capabilities::default());
    m.expect_list().returning(|_| Ok(Vec::new()));
    m.expect_list_leftovers().returning(|_| Ok(Vec::new()));
    m
}

fn scaler(m: MockVmProvider) -> Autoscaler {
    Autoscaler::builder(load_str(CONFIG, Format::Toml).unwrap().config)
        .provider(Arc::new(m))
        .retry(RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        })
        .epoch("2026-11-30T12:00:00Z".parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_auth_error_on_create_is_not_retried_and_leaves_nothing_behind() {
    let mut m = mock();
    m.expect_create()
        .times(1)
        .returning(|_| Err(BackendError::Auth("AuthFailure: bad key".into())));
    let s = scaler(m);
    let mut events = s.subscribe();
    s.tick().await;
    s.settle().await;
    assert!(s.servers().is_empty(), "a failed server leaves no record");
    assert_eq!(s.bookkeeping("c").consecutive_failures, 1);
    let failed = std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
        Event::Failed { error, .. } => Some(error),
        _ => None,
    });
    assert_eq!(
        failed.as_deref(),
        Some("cannot create the VM: authentication failed: AuthFailure: bad key")
    );
    // The failure backoff holds the next attempt back (mockall checks `times(1)`).
    s.tick().await;
    s.settle().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_destroy_keeps_the_server_with_its_error_and_is_retried() {
    let mut m = mock();
    let mut n = 0;
    m.expect_create().returning(move |spec| {
        n += 1;
        Ok(Vm {
            vm_id: format!("vm-{n}"),
            owner: spec.owner.clone(),
            state: VmState::Pending,
            private_ip: None,
            created_at: None,
        })
    });
    // The first VM vanishes; the provider then refuses to destroy it once (a permission error
    // is not retried within the tick).
    m.expect_get().returning(|id| {
        let owner = crate::traits::Owner {
            owner_id: String::new(),
            pool: String::new(),
            config: String::new(),
            server_id: crate::engine::ServerId(uuid::Uuid::nil()),
        };
        Ok((id != "vm-1").then(|| Vm {
            vm_id: id.into(),
            owner,
            state: VmState::Pending,
            private_ip: None,
            created_at: None,
        }))
    });
    let mut refused = 0;
    m.expect_destroy().returning(move |id| {
        if id == "vm-1" && refused < 1 {
            refused += 1;
            return Err(BackendError::Permission("not allowed to terminate".into()));
        }
        Ok(())
    });
    let s = scaler(m);
    s.tick().await;
    s.settle().await;
    let first = s.servers()[0].clone();
    assert_eq!(first.state, ServerState::Starting);
    // Past the grace period for clouds that answer "not found" right after a create.
    tokio::time::sleep(std::time::Duration::from_secs(121)).await;
    s.tick().await;
    s.settle().await;
    let stuck = s
        .servers()
        .into_iter()
        .find(|x| x.id == first.id)
        .expect("kept while its destroy fails");
    assert_eq!(stuck.state, ServerState::Destroying);
    assert_eq!(
        stuck.last_error.as_deref(),
        Some("cannot destroy the VM: permission denied: not allowed to terminate")
    );
    // The next tick tries again and succeeds, and a replacement is made.
    s.tick().await;
    s.settle().await;
    assert!(s.servers().iter().all(|x| x.id != first.id));
    assert_eq!(s.servers().len(), 1, "a replacement is made");
}

#[tokio::test(start_paused = true)]
async fn a_failing_listing_forgets_nothing() {
    let mut m = MockVmProvider::new();
    m.expect_name().return_const("mock".to_owned());
    m.expect_capabilities()
        .return_const(Capabilities::default());
    m.expect_list()
        .returning(|_| Err(BackendError::Transient("503 Service Unavailable".into())));
    m.expect_list_leftovers().returning(|_| Ok(Vec::new()));
    m.expect_create().returning(|spec| {
        Ok(Vm {
            vm_id: "vm-1".into(),
            owner: spec.owner.clone(),
            state: VmState::Pending,
            private_ip: None,
            created_at: None,
        })
    });
    m.expect_get().returning(|_| {
        Ok(Some(Vm {
            vm_id: "vm-1".into(),
            owner: crate::traits::Owner {
                owner_id: String::new(),
                pool: String::new(),
                config: String::new(),
                server_id: crate::engine::ServerId(uuid::Uuid::nil()),
            },
            state: VmState::Pending,
            private_ip: None,
            created_at: None,
        }))
    });
    let s = scaler(m);
    let mut events = s.subscribe();
    s.tick().await;
    s.settle().await;
    s.tick().await;
    s.settle().await;
    assert_eq!(
        s.servers().len(),
        1,
        "a listing that failed does not make servers vanish"
    );
    let errors: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| {
            if let Event::Failed { error, .. } = e {
                Some(error)
            } else {
                None
            }
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e == "cannot list VMs: transient failure: 503 Service Unavailable"),
        "{errors:?}"
    );
}

/// The controller is the one retry layer: it waits the `retry_after` a provider asks for, and
/// retries transient faults, within one tick's work.
#[tokio::test(start_paused = true)]
async fn the_controller_waits_out_retry_after_and_retries_transient_faults() {
    let mut m = mock();
    let mut calls = 0;
    m.expect_create().times(3).returning(move |spec| {
        calls += 1;
        match calls {
            1 => Err(BackendError::RateLimited {
                message: "Too Many Requests".into(),
                retry_after: Some(std::time::Duration::from_secs(7)),
            }),
            2 => Err(BackendError::Transient("503 Service Unavailable".into())),
            _ => Ok(Vm {
                vm_id: "vm-1".into(),
                owner: spec.owner.clone(),
                state: VmState::Pending,
                private_ip: None,
                created_at: None,
            }),
        }
    });
    m.expect_get().returning(|_| Ok(None));
    let s = Autoscaler::builder(load_str(CONFIG, Format::Toml).unwrap().config)
        .provider(Arc::new(m))
        .seed(1)
        .epoch("2026-11-30T12:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    let began = tokio::time::Instant::now();
    s.tick().await;
    s.settle().await;
    let waited = began.elapsed();
    // 7 s asked for, then the second backoff step (2 s ± 50%).
    assert!(
        waited >= std::time::Duration::from_secs(8) && waited <= std::time::Duration::from_secs(10),
        "{waited:?}"
    );
    let servers = s.servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].vm_id.as_deref(), Some("vm-1"));
    assert_eq!(s.bookkeeping("c").consecutive_failures, 0);
}

/// A store that never answers.
#[derive(Debug)]
struct HungStore;

#[async_trait::async_trait]
impl crate::traits::StateStore for HungStore {
    async fn load(&self) -> Result<Option<crate::controller::Records>, crate::traits::StoreError> {
        std::future::pending().await
    }
    async fn save(&self, _: &crate::controller::Records) -> Result<(), crate::traits::StoreError> {
        std::future::pending().await
    }
}

/// A hung state store fails the start after the store timeout instead of hanging every call.
#[tokio::test(start_paused = true)]
async fn a_hung_store_fails_after_the_store_timeout() {
    let s = Autoscaler::builder(load_str(CONFIG, Format::Toml).unwrap().config)
        .provider(Arc::new(mock()))
        .store(Arc::new(HungStore))
        .build()
        .unwrap();
    let began = tokio::time::Instant::now();
    let error = s.start().await.unwrap_err();
    assert_eq!(began.elapsed(), crate::controller::STORE_TIMEOUT);
    assert_eq!(
        error.to_string(),
        "cannot start: state store unavailable: load: no answer within 30 s"
    );
}

/// The broker calls are `Send` futures (a broker serves them from a multi-threaded runtime).
#[test]
fn broker_calls_are_send() {
    fn send<T: Send>(_: T) {}
    let s = Autoscaler::builder(load_str(CONFIG, Format::Toml).unwrap().config)
        .provider(Arc::new(mock()))
        .build()
        .unwrap();
    let status = crate::controller::CheckinStatus::running();
    send(s.check_in_token("t", &status));
    send(s.request_session("p", &crate::engine::SessionRequest::default()));
    send(s.end_session(crate::controller::SessionId(1)));
    send(s.tick());
}
