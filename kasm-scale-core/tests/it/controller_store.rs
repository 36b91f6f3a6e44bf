//! What the controller saves, and when: every change reaches the store, in order, and a tick
//! that changes nothing saves nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, Records, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::traits::{StateStore, StoreError};

use crate::fixture::Fixture;

const EPOCH: &str = "2026-11-30T12:00:00Z";

fn config(minimum: u32) -> Config {
    Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .minimum_standby(minimum)
        .require_checkin(true)
        .config()
}

/// A memory store that counts saves; the save numbered `slow` (from 1) takes ten seconds.
#[derive(Debug, Default)]
struct Watched {
    inner: MemoryStore,
    saves: AtomicUsize,
    slow: usize,
}

#[async_trait]
impl StateStore for Watched {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        let copy = records.clone();
        if n == self.slow {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.inner.save(&copy).await
    }
}

fn scaler(config: Config, store: Arc<dyn StateStore>) -> (Autoscaler, Arc<MemoryCloud>) {
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 3));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .store(store)
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    (scaler, cloud)
}

fn waiting(records: &Records) -> usize {
    records.queued.values().map(|q| q.len()).sum()
}

/// A save that is slow must not land after a later one: the store would keep the older state
/// while the controller believes it saved the newer one.
#[tokio::test(start_paused = true)]
async fn a_slow_save_never_overwrites_a_newer_one() {
    let store = Arc::new(Watched {
        slow: 1,
        ..Watched::default()
    });
    let (scaler, _cloud) = scaler(config(0), store.clone());
    // No server: both requests wait. The first one's save takes ten seconds.
    let first = tokio::spawn({
        let scaler = scaler.clone();
        async move {
            scaler
                .request_session("p", &SessionRequest::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(second, SessionOutcome::Queued { .. }),
        "{second:?}"
    );
    let first = first.await.unwrap().unwrap();
    assert!(matches!(first, SessionOutcome::Queued { .. }), "{first:?}");
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(
        waiting(&saved),
        2,
        "the store holds the newest state (both waiting requests)"
    );
}

/// Every change is saved; once the pool is steady, ticks save nothing; the next broker call
/// saves once.
#[tokio::test(start_paused = true)]
async fn every_change_is_saved_and_a_steady_tick_saves_nothing() {
    let store = Arc::new(Watched::default());
    let (scaler, cloud) = scaler(config(2), store.clone());
    for _ in 0..20 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let running = |records: &Records| {
        records
            .servers
            .values()
            .filter(|s| s.state == ServerState::Running)
            .count()
    };
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(running(&saved), 2, "the ready servers are saved");
    assert_eq!(saved.servers.len(), scaler.servers().len());

    let before = store.saves.load(Ordering::SeqCst);
    for _ in 0..5 {
        scaler.tick().await;
        scaler.settle().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(
        store.saves.load(Ordering::SeqCst),
        before,
        "steady ticks save nothing"
    );

    let SessionOutcome::Assigned { session, server } = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("a ready server takes the session")
    };
    assert_eq!(store.saves.load(Ordering::SeqCst), before + 1);
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(saved.sessions.get(&session), Some(&server));
}

/// A memory cloud whose creates, while `hang` is set, never answer, but make the VM twenty
/// seconds later all the same (a create whose answer was lost).
#[derive(Debug)]
struct LostAnswers {
    inner: Arc<MemoryCloud>,
    hang: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl kasm_scale_core::traits::VmProvider for LostAnswers {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> kasm_scale_core::traits::Capabilities {
        self.inner.capabilities()
    }
    async fn create(
        &self,
        spec: &kasm_scale_core::traits::VmSpec,
    ) -> Result<kasm_scale_core::traits::Vm, kasm_scale_core::traits::BackendError> {
        if self.hang.load(Ordering::SeqCst) {
            let (cloud, spec) = (self.inner.clone(), spec.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ = cloud.create(&spec).await;
            });
            std::future::pending::<()>().await;
        }
        self.inner.create(spec).await
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), kasm_scale_core::traits::BackendError> {
        self.inner.destroy(vm_id).await
    }
    async fn get(
        &self,
        vm_id: &str,
    ) -> Result<Option<kasm_scale_core::traits::Vm>, kasm_scale_core::traits::BackendError> {
        self.inner.get(vm_id).await
    }
    async fn list(
        &self,
        owner_id: &str,
    ) -> Result<Vec<kasm_scale_core::traits::Vm>, kasm_scale_core::traits::BackendError> {
        self.inner.list(owner_id).await
    }
}

/// A server whose create failed (no answer) is remembered as removed across a restart: the VM
/// the cloud made anyway is an orphan and goes, instead of being adopted as a server.
#[tokio::test(start_paused = true)]
async fn a_vm_made_by_a_failed_create_is_not_adopted_after_a_restart() {
    use kasm_scale_core::controller::{Event, RetryPolicy};
    use kasm_scale_core::traits::VmProvider;

    let config = config(1);
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 9));
    let provider = Arc::new(LostAnswers {
        inner: cloud.clone(),
        hang: true.into(),
    });
    let store = Arc::new(MemoryStore::default());
    let build = || {
        Autoscaler::builder(config.clone())
            .provider(provider.clone())
            .store(store.clone())
            .call_timeout(Duration::from_secs(5))
            .retry(RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            })
            .orphan_grace(Duration::from_secs(60))
            .reconcile_every(1)
            .epoch(EPOCH.parse().unwrap())
            .build()
            .unwrap()
    };
    let first = build();
    let mut events = first.subscribe();
    first.tick().await;
    first.settle().await;
    let failed = std::iter::from_fn(|| events.try_recv().ok())
        .find_map(|e| match e {
            Event::Failed {
                server: Some(id), ..
            } => Some(id),
            _ => None,
        })
        .expect("the create failed");
    // The next tick saves what the background work did (and replaces the server).
    provider.hang.store(false, Ordering::SeqCst);
    first.tick().await;
    first.settle().await;
    drop(first);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let late = cloud.list("kasm-scale").await.unwrap();
    assert!(
        late.iter().any(|v| v.owner.server_id == failed),
        "the cloud made the VM anyway"
    );

    let second = build();
    let mut events = second.subscribe();
    for _ in 0..30 {
        second.tick().await;
        second.settle().await;
        deliver_checkins(&second, &cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let adopted: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, Event::Adopted { .. }))
        .collect();
    assert!(adopted.is_empty(), "nothing is adopted: {adopted:?}");
    assert!(
        second.servers().iter().all(|s| s.id != failed),
        "the failed server does not come back"
    );
    let vms = cloud.list("kasm-scale").await.unwrap();
    assert!(
        vms.iter().all(|v| v.owner.server_id != failed),
        "its VM is removed as an orphan: {vms:?}"
    );
    assert_eq!(vms.len(), second.servers().len(), "one VM per server");
}

/// Kasm's scripts repeat their check-in every 30 s: a repeat changes nothing and saves
/// nothing; a new status is kept and saved.
#[tokio::test(start_paused = true)]
async fn a_repeated_check_in_saves_nothing() {
    use kasm_scale_core::controller::CheckinStatus;
    use kasm_scale_core::memory::token_in;

    let store = Arc::new(Watched::default());
    let (scaler, cloud) = scaler(config(1), store.clone());
    scaler.tick().await;
    scaler.settle().await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    let server = scaler.servers()[0].clone();
    let script = cloud
        .startup_script(server.vm_id.as_deref().expect("its VM"))
        .expect("its script");
    let token = token_in(script.expose()).expect("a token").to_owned();
    assert_eq!(scaler.token_server(&token).await.unwrap(), server.id);
    let status = CheckinStatus::running();
    scaler.check_in_token(&token, &status).await.unwrap();
    let saves = store.saves.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(
            scaler.check_in_token(&token, &status).await.unwrap(),
            server.id
        );
    }
    assert_eq!(
        store.saves.load(Ordering::SeqCst),
        saves,
        "repeats save nothing"
    );
    let busy = CheckinStatus {
        status: "running".into(),
        status_message: "updating".into(),
        status_progress: "100".into(),
    };
    scaler.check_in_token(&token, &busy).await.unwrap();
    // A guest flooding new statuses costs no save each: they are coalesced into the next
    // tick's save, which holds the last one.
    for i in 0..100 {
        let progress = CheckinStatus {
            status: "installing".into(),
            status_message: format!("step {i}"),
            status_progress: i.to_string(),
        };
        scaler.check_in_token(&token, &progress).await.unwrap();
    }
    assert_eq!(
        store.saves.load(Ordering::SeqCst),
        saves,
        "status reports are not saved one by one"
    );
    scaler.tick().await;
    assert_eq!(
        store.saves.load(Ordering::SeqCst),
        saves + 1,
        "the new statuses are saved once, with the tick"
    );
    let saved = store.inner.load().await.unwrap().unwrap();
    assert!(
        saved.servers[&server.id]
            .reported_status
            .as_deref()
            .is_some_and(|s| s.contains("step 99")),
        "{:?}",
        saved.servers[&server.id].reported_status
    );
}

/// The fingerprint of the check-in key is saved with the state: a controller started on it with
/// another key says that the saved servers' check-ins will be refused (and records its own).
#[tokio::test(start_paused = true)]
async fn a_controller_with_another_check_in_key_says_so_at_start() {
    use kasm_scale_core::controller::Event;
    use kasm_scale_core::token::TokenKeys;
    let store = MemoryStore::default();
    let first_key = TokenKeys::generate().unwrap();
    let build = |keys: &TokenKeys| {
        let VmProviderConfig::Memory(m) = config(1).vm_providers[0].clone() else {
            panic!()
        };
        Autoscaler::builder(config(1))
            .provider(Arc::new(MemoryCloud::new(m, 1)))
            .store(Arc::new(store.clone()))
            .tokens(keys.clone())
            .epoch(EPOCH.parse().unwrap())
            .build()
            .unwrap()
    };
    let first = build(&first_key);
    first.tick().await;
    first.settle().await;
    first.save().await;
    let saved = store.load().await.unwrap().expect("saved");
    assert_eq!(saved.token_key_id.as_deref(), Some(first_key.key_id()));

    // The same key: nothing to say.
    let again = build(&first_key);
    let mut events = again.subscribe();
    again.start().await.unwrap();
    assert!(events.try_recv().is_err(), "no event for the same key");

    let other_key = TokenKeys::generate().unwrap();
    assert_ne!(other_key.key_id(), first_key.key_id());
    let second = build(&other_key);
    let mut events = second.subscribe();
    second.start().await.unwrap();
    match events.try_recv() {
        Ok(Event::Failed { config, error, .. }) => {
            assert_eq!(config, "checkin_token");
            assert!(error.contains(first_key.key_id()) && error.contains(other_key.key_id()));
            assert!(error.contains("will be refused"), "{error}");
        }
        other => panic!("no warning about the key: {other:?}"),
    }
    second.save().await;
    assert_eq!(
        store
            .load()
            .await
            .unwrap()
            .and_then(|r| r.token_key_id)
            .as_deref(),
        Some(other_key.key_id()),
        "the new key is recorded"
    );
}

/// A store that cannot be reached while `down` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl StateStore for Flaky {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.save(records).await
    }
}

/// The leader of replicas never tells a broker of a change its store does not hold: while the
/// store cannot be reached the call waits (the save is tried again); if the leader steps down
/// meanwhile, the call fails with `NotLeader` and the change is not in the store. Alone on a
/// durable store, a controller waits for its save too; alone in memory, it answers at once.
#[tokio::test(start_paused = true)]
async fn a_leader_answers_a_broker_only_once_the_change_is_saved() {
    use kasm_scale_core::controller::{ControllerError, Role};
    let store = Arc::new(Flaky::default());
    let VmProviderConfig::Memory(m) = config(1).vm_providers[0].clone() else {
        panic!()
    };
    let scaler = Autoscaler::builder(config(1))
        .provider(Arc::new(MemoryCloud::new(m, 3)))
        .store(store.clone())
        .role(Role::Follower { leader: None })
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    scaler.lead(1);
    scaler.tick().await;
    assert_eq!(scaler.role(), Role::Leader { epoch: 1 });
    store.down.store(true, Ordering::SeqCst);
    let call = tokio::spawn({
        let scaler = scaler.clone();
        async move {
            scaler
                .request_session("p", &SessionRequest::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !call.is_finished(),
        "answered while the store was unreachable"
    );
    // The lease keeper gives up: the call fails, and the store does not know the session.
    scaler.step_down(None);
    let outcome = call.await.unwrap();
    assert!(
        matches!(outcome, Err(ControllerError::NotLeader { .. })),
        "{outcome:?}"
    );
    let saved = store.inner.load().await.unwrap().unwrap_or_default();
    assert!(saved.sessions.is_empty() && waiting(&saved) == 0);

    // Back up: a leader's call waits for the store, then succeeds.
    store.down.store(false, Ordering::SeqCst);
    scaler.lead(2);
    scaler.tick().await;
    store.down.store(true, Ordering::SeqCst);
    let call = tokio::spawn({
        let scaler = scaler.clone();
        async move {
            scaler
                .request_session("p", &SessionRequest::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    store.down.store(false, Ordering::SeqCst);
    let outcome = call.await.unwrap().expect("answered once saved");
    let saved = store.inner.load().await.unwrap().unwrap_or_default();
    let kept = saved.sessions.len() + waiting(&saved);
    assert_eq!(kept, 1, "the answered session is in the store: {outcome:?}");

    // Alone on a durable store: a broker is not told of a change the store may not hold
    // either; the call waits until the save lands.
    let (alone, _) = self::scaler(config(1), store.clone());
    alone.start().await.unwrap();
    let before = store
        .inner
        .load()
        .await
        .unwrap()
        .unwrap_or_default()
        .next_session;
    store.down.store(true, Ordering::SeqCst);
    let call = tokio::spawn({
        let alone = alone.clone();
        async move { alone.request_session("p", &SessionRequest::default()).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !call.is_finished(),
        "answered while the store was unreachable"
    );
    store.down.store(false, Ordering::SeqCst);
    call.await.unwrap().expect("answered once saved");
    let saved = store.inner.load().await.unwrap().unwrap_or_default();
    assert_eq!(
        saved.next_session,
        before + 1,
        "the answered session is in the store"
    );

    // On a store that is not durable (this process's memory), a sole controller answers at
    // once whatever its saves do.
    let (memory, _) = self::scaler(config(1), Arc::new(MemoryStore::default()));
    tokio::time::timeout(
        Duration::from_millis(1),
        memory.request_session("p", &SessionRequest::default()),
    )
    .await
    .expect("answered at once")
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_save_dropped_half_way_is_written_by_the_next_one() {
    // Save 2 (the request's) hangs: its caller gives up after a second and drops it.
    let store = Arc::new(Watched {
        slow: 2,
        ..Default::default()
    });
    let (scaler, _cloud) = scaler(config(1), store.clone());
    scaler.start().await.unwrap();
    scaler.save().await;
    assert_eq!(store.saves.load(Ordering::SeqCst), 1);
    let given_up = tokio::time::timeout(
        Duration::from_secs(1),
        scaler.request_session("p", &SessionRequest::default()),
    )
    .await;
    assert!(given_up.is_err(), "the request's save was still running");
    assert_eq!(store.inner.load().await.unwrap().unwrap().next_session, 0);
    // The change is still unsaved: the next save writes it.
    scaler.save().await;
    assert_eq!(
        store.inner.load().await.unwrap().unwrap().next_session,
        1,
        "the session of the dropped save is saved"
    );
}
