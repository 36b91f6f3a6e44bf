//! One test per defect of the first controller (issue 13): each failed on that controller.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, Event, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::load_str;
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, deliver_checkins, token_in};
use kasm_scale_core::traits::StateStore;
use kasm_scale_core::traits::{
    BackendError, Capabilities, DirectoryService, Vm, VmProvider, VmSpec,
};

use crate::fixture::Fixture;

const EPOCH: &str = "2026-11-30T12:00:00Z";

fn config(text: &str) -> Config {
    load_str(text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn one_pool(provider_extra: &str, config_extra: &str) -> Config {
    Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .provider_toml(provider_extra)
        .active_directory()
        .minimum_standby(2)
        .require_checkin(true)
        .checkin_timeout(600)
        .downscale_backoff(600)
        .autoscale_toml(config_extra)
        .config()
}

fn cloud_of(config: &Config, i: usize, seed: u64) -> Arc<MemoryCloud> {
    let VmProviderConfig::Memory(m) = config.vm_providers[i].clone() else {
        panic!("memory provider expected")
    };
    Arc::new(MemoryCloud::new(m, seed))
}

async fn step(scaler: &Autoscaler, cloud: &MemoryCloud, seconds: u64) {
    scaler.tick().await;
    scaler.settle().await;
    deliver_checkins(scaler, cloud).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

/// Defect 1: a VM stopped from inside (Windows shut down in the session) leaked: reconcile
/// skipped it, forgot the server and never destroyed the VM or its AD record.
#[tokio::test(start_paused = true)]
async fn a_stopped_vm_is_destroyed_with_its_ad_record_and_replaced() {
    let config = one_pool("", "");
    let cloud = cloud_of(&config, 0, 1);
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 1));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .reconcile_every(3)
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    for _ in 0..15 {
        step(&scaler, &cloud, 10).await;
    }
    let running: Vec<_> = scaler
        .servers()
        .into_iter()
        .filter(|s| s.state == ServerState::Running)
        .collect();
    assert_eq!(running.len(), 2, "{:?}", scaler.servers());
    let victim = running[0].clone();
    assert!(cloud.stop(victim.vm_id.as_deref().unwrap()));
    for _ in 0..10 {
        step(&scaler, &cloud, 10).await;
    }
    let vms: BTreeSet<String> = cloud
        .list("kasm-scale")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.vm_id)
        .collect();
    assert!(
        !vms.contains(victim.vm_id.as_deref().unwrap()),
        "the stopped VM is destroyed"
    );
    assert!(scaler.servers().iter().all(|s| s.id != victim.id));
    let records = directory
        .list_computers("kasm-scale", &["OU=Kasm,DC=example,DC=local".to_owned()])
        .await
        .unwrap();
    assert!(
        records.iter().all(|r| r.name != victim.hostname),
        "its AD record is deleted"
    );
    assert_eq!(vms.len(), 2, "a replacement keeps the minimum");
    assert_eq!(records.len(), 2);
}

/// Defect 2: every new controller handed out the same server ids (seed 0 by default), which on
/// EC2 are the ClientTokens of new instances.
#[tokio::test(start_paused = true)]
async fn a_restarted_controller_hands_out_fresh_server_ids() {
    let mut ids = BTreeSet::new();
    for run in 0..2 {
        let config = one_pool("", "");
        let cloud = cloud_of(&config, 0, run);
        let scaler = Autoscaler::builder(config)
            .provider(cloud.clone())
            .directory(Arc::new(MemoryDirectory::new("ad", "example.local", run)))
            .epoch(EPOCH.parse().unwrap())
            .build()
            .unwrap();
        scaler.tick().await;
        scaler.settle().await;
        for s in scaler.servers() {
            assert!(ids.insert(s.id), "server id {} handed out twice", s.id);
        }
    }
    assert_eq!(ids.len(), 4);
}

/// A provider whose calls never answer.
#[derive(Debug)]
struct Hung(String);

#[async_trait]
impl VmProvider for Hung {
    fn name(&self) -> &str {
        &self.0
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn create(&self, _: &VmSpec) -> Result<Vm, BackendError> {
        std::future::pending().await
    }
    async fn destroy(&self, _: &str) -> Result<(), BackendError> {
        std::future::pending().await
    }
    async fn get(&self, _: &str) -> Result<Option<Vm>, BackendError> {
        std::future::pending().await
    }
    async fn list(&self, _: &str) -> Result<Vec<Vm>, BackendError> {
        std::future::pending().await
    }
}

fn two_providers() -> Config {
    config(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "good"
max_instances = 5
boot_latency = { fixed = 20 }

[[vm_providers]]
provider = "memory"
name = "bad"
max_instances = 5

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "on-bad"
vm_provider_config_id = "bad"
connection_type = "RDP"
minimum_pool_standby_sessions = 2

[[pools.autoscale]]
autoscale_config_name = "on-good"
vm_provider_config_id = "good"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
"#,
    )
}

/// Defect 3: one unreachable provider stalled every pool (the tick awaited all its work).
#[tokio::test(start_paused = true)]
async fn a_hung_provider_delays_neither_the_tick_nor_the_other_providers() {
    let config = two_providers();
    let good = cloud_of(&config, 0, 1);
    let scaler = Autoscaler::builder(config)
        .provider(good.clone())
        .provider(Arc::new(Hung("bad".into())))
        .call_timeout(Duration::from_secs(30))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    let began = tokio::time::Instant::now();
    // The first tick waits for the first reconcile at most one call timeout.
    scaler.tick().await;
    assert!(
        began.elapsed() <= Duration::from_secs(31),
        "{:?}",
        began.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        good.vm_count(),
        2,
        "the good provider's servers exist at once"
    );
    // Later ticks do not wait at all, while the bad provider's creates hang.
    for _ in 0..4 {
        let began = tokio::time::Instant::now();
        scaler.tick().await;
        assert!(began.elapsed() < Duration::from_millis(1), "a tick waited");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // The good servers are ready and take sessions while the bad provider still hangs.
    let outcome = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Assigned { .. }),
        "{outcome:?}"
    );
    let bad: Vec<_> = scaler
        .servers()
        .into_iter()
        .filter(|s| s.config == "on-bad")
        .collect();
    assert_eq!(bad.len(), 2, "the bad servers stay provisioning");
    assert!(bad.iter().all(|s| s.state == ServerState::Provisioning));
    // Each hung create times out (as transient) and is retried; in the end the config counts
    // one failure for its one batch.
    let mut events = scaler.subscribe();
    scaler.settle().await;
    let failed: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            Event::Failed {
                server: Some(_),
                error,
                ..
            } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        vec!["cannot create the VM: transient failure: no answer within 30 s"; 2]
    );
    assert_eq!(scaler.bookkeeping("on-bad").consecutive_failures, 1);
    assert_eq!(scaler.bookkeeping("on-good").consecutive_failures, 0);
}

/// Defect 5: forty failed creates of one tick jumped a config to the one-hour backoff.
#[tokio::test(start_paused = true)]
async fn a_failed_burst_counts_as_one_failure() {
    let config = Fixture::memory_pool("p")
        .max_instances(50)
        .provider_without("startup_script")
        .provider("create_failure_rate", 1.0)
        .minimum_standby(40)
        .config();
    let cloud = cloud_of(&config, 0, 3);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    scaler.tick().await;
    scaler.settle().await;
    let failed = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| {
            matches!(
                e,
                Event::Failed {
                    server: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 40, "forty creates failed");
    assert_eq!(scaler.bookkeeping("c").consecutive_failures, 1);
    // The next attempt comes after the first backoff step (60 s), not after an hour.
    tokio::time::sleep(Duration::from_secs(61)).await;
    scaler.tick().await;
    scaler.settle().await;
    assert_eq!(scaler.bookkeeping("c").consecutive_failures, 2);
}

/// Defect 6: two auto-scale configs sharing one VM provider config got one cap each.
#[tokio::test(start_paused = true)]
async fn configs_sharing_a_provider_config_share_its_max_instances() {
    let config = config(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 3

[[pools]]
server_pool_name = "a"

[[pools.autoscale]]
autoscale_config_name = "a1"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = 2

[[pools]]
server_pool_name = "b"

[[pools.autoscale]]
autoscale_config_name = "b1"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = 2
"#,
    );
    let cloud = cloud_of(&config, 0, 4);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    for _ in 0..10 {
        step(&scaler, &cloud, 10).await;
    }
    assert_eq!(
        cloud.vm_count(),
        3,
        "max_instances 3 holds for both configs together"
    );
    assert_eq!(scaler.servers().len(), 3);
}

/// Defect 4: a check-in that arrived while the server was still provisioning stranded it.
#[tokio::test(start_paused = true)]
async fn a_check_in_during_provisioning_makes_the_server_ready_when_its_vm_exists() {
    let config = one_pool("", "");
    let cloud = cloud_of(&config, 0, 5);
    let slow = Arc::new(Watched::new(cloud.clone(), Duration::from_secs(20)));
    let scaler = Autoscaler::builder(config)
        .provider(slow.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 5)))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    scaler.tick().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let scripts = slow.scripts.lock().unwrap().clone();
    assert_eq!(scripts.len(), 2, "both creates are under way");
    assert!(
        scaler
            .servers()
            .iter()
            .all(|s| s.state == ServerState::Provisioning)
    );
    // The guest is faster than the cloud's answer (and repeats itself).
    for script in &scripts {
        let token = token_in(script).unwrap();
        for _ in 0..2 {
            scaler
                .check_in_token(token, &CheckinStatus::running())
                .await
                .unwrap();
        }
    }
    scaler.settle().await;
    let states: Vec<_> = scaler.servers().iter().map(|s| s.state).collect();
    assert_eq!(states, vec![ServerState::Running; 2]);
}

/// A memory cloud whose creates take `delay`, with the scripts they were given and the most
/// creates seen in flight at once.
#[derive(Debug)]
struct Watched {
    inner: Arc<MemoryCloud>,
    delay: Duration,
    scripts: std::sync::Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl Watched {
    fn new(inner: Arc<MemoryCloud>, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            scripts: std::sync::Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl VmProvider for Watched {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        self.scripts
            .lock()
            .unwrap()
            .push(spec.startup_script.expose().to_owned());
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let vm = self.inner.create(spec).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        vm
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.inner.destroy(vm_id).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.inner.get(vm_id).await
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.inner.list(owner_id).await
    }
}

/// Defect 10: the saved state was loaded on the first tick, so a session requested before it
/// was overwritten.
#[tokio::test(start_paused = true)]
async fn the_saved_state_is_loaded_before_the_first_request() {
    let store = MemoryStore::default();
    let config = one_pool("", "");
    let cloud = cloud_of(&config, 0, 6);
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 6));
    let keys = kasm_scale_core::token::TokenKeys::generate().unwrap();
    let build = || {
        Autoscaler::builder(config.clone())
            .provider(cloud.clone())
            .directory(directory.clone())
            .store(Arc::new(store.clone()))
            .tokens(keys.clone())
            .epoch(EPOCH.parse().unwrap())
            .build()
            .unwrap()
    };
    let first = build();
    for _ in 0..15 {
        step(&first, &cloud, 10).await;
    }
    let SessionOutcome::Assigned { session, server } = first
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("a ready server takes the session")
    };
    drop(first);

    let second = build();
    // Before any tick: the saved servers serve, and the old session is known.
    let outcome = second
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    let SessionOutcome::Assigned {
        session: new_session,
        server: other,
    } = outcome
    else {
        panic!("the saved ready server takes it: {outcome:?}")
    };
    assert_ne!(
        other, server,
        "the busy single-use server is not handed out again"
    );
    assert_ne!(new_session, session, "session ids go on");
    second.tick().await;
    second.settle().await;
    let saved = store.load().await.unwrap().unwrap();
    assert_eq!(saved.sessions.get(&session), Some(&server));
    assert_eq!(saved.sessions.get(&new_session), Some(&other));
    second.end_session(session).await.unwrap();
}

/// Defect 11: queued requests never expired, and `end_session` did not seat a waiting request
/// on the slot it freed.
#[tokio::test(start_paused = true)]
async fn end_session_seats_a_waiting_request_at_once_and_old_requests_expire() {
    let config = one_pool(
        "",
        "reusable = true\nmax_simultaneous_sessions_per_server = 1\naggressive_scaling = false",
    );
    let cloud = cloud_of(&config, 0, 7);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 7)))
        .queue_timeout(Duration::from_secs(300))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    for _ in 0..15 {
        step(&scaler, &cloud, 10).await;
    }
    let mut seated = Vec::new();
    for _ in 0..2 {
        match scaler
            .request_session("p", &SessionRequest::default())
            .await
            .unwrap()
        {
            SessionOutcome::Assigned { session, .. } => seated.push(session),
            other => panic!("{other:?}"),
        }
    }
    let SessionOutcome::Queued { session: waiting } = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("no room left")
    };
    let mut events = scaler.subscribe();
    scaler.end_session(seated[0]).await.unwrap();
    let assigned = std::iter::from_fn(|| events.try_recv().ok())
        .any(|e| matches!(e, Event::SessionAssigned { session, .. } if session == waiting));
    assert!(
        assigned,
        "the freed slot goes to the waiting request at once"
    );
}

/// Defect 11: a request that no server will take (here every create fails) is dropped after
/// the queue timeout, with an event.
#[tokio::test(start_paused = true)]
async fn a_request_waiting_past_the_queue_timeout_expires() {
    let config = one_pool("create_failure_rate = 1.0", "");
    let cloud = cloud_of(&config, 0, 12);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 12)))
        .queue_timeout(Duration::from_secs(300))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    let SessionOutcome::Queued { session } = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("no server exists")
    };
    let began = tokio::time::Instant::now();
    let tick_for = |until: u64| {
        let scaler = scaler.clone();
        async move {
            while began.elapsed() < Duration::from_secs(until) {
                scaler.tick().await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    tick_for(290).await;
    let expired = |events: &mut tokio::sync::broadcast::Receiver<Event>| {
        std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
            Event::RequestExpired {
                session: s,
                pool,
                waited_seconds,
            } if s == session => Some((pool, waited_seconds)),
            _ => None,
        })
    };
    assert_eq!(expired(&mut events), None, "290 s < 300 s");
    tick_for(311).await;
    let (pool, waited) = expired(&mut events).expect("expired after 300 s");
    assert_eq!(pool, "p");
    assert!((300..=310).contains(&waited), "{waited}");
    assert!(matches!(
        scaler.end_session(session).await,
        Err(kasm_scale_core::controller::ControllerError::UnknownSession(_))
    ));
}

/// Defect 12: two ticks could run at once (`run` and a manual `tick`) and plan the same deficit
/// twice.
#[tokio::test(start_paused = true)]
async fn concurrent_ticks_provision_once() {
    let config = one_pool("", "");
    let cloud = cloud_of(&config, 0, 8);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 8)))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    let (a, b) = (scaler.clone(), scaler.clone());
    tokio::join!(a.tick(), b.tick(), scaler.tick());
    scaler.settle().await;
    assert_eq!(cloud.vm_count(), 2, "{:?}", scaler.servers());
    assert_eq!(cloud.counts().0, 2);
}

/// A store whose `load` reads at once and answers a second later (a database round trip).
#[derive(Debug, Clone, Default)]
struct SlowStore(MemoryStore);

#[async_trait]
impl StateStore for SlowStore {
    async fn load(
        &self,
    ) -> Result<Option<kasm_scale_core::controller::Records>, kasm_scale_core::traits::StoreError>
    {
        let saved = self.0.load().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        saved
    }
    async fn save(
        &self,
        records: &kasm_scale_core::controller::Records,
    ) -> Result<(), kasm_scale_core::traits::StoreError> {
        self.0.save(records).await
    }
}

/// Requests that arrive while a tick runs (also while it loads the saved state) are seated or
/// queued, never lost, and never seated on a server that the tick destroys.
#[tokio::test(start_paused = true)]
async fn requests_arriving_mid_tick_are_kept() {
    let config = one_pool(
        "",
        "reusable = true\nmax_simultaneous_sessions_per_server = 2",
    );
    let cloud = cloud_of(&config, 0, 9);
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 9));
    let store = SlowStore::default();
    let keys = kasm_scale_core::token::TokenKeys::generate().unwrap();
    let build = || {
        Autoscaler::builder(config.clone())
            .provider(cloud.clone())
            .directory(directory.clone())
            .store(Arc::new(store.clone()))
            .tokens(keys.clone())
            .epoch(EPOCH.parse().unwrap())
            .build()
            .unwrap()
    };
    // A previous run leaves ready servers in the saved state.
    let first = build();
    for _ in 0..15 {
        step(&first, &cloud, 10).await;
    }
    drop(first);
    let scaler = build();
    let mut sessions = Vec::new();
    for round in 0..30 {
        let ticking = tokio::spawn({
            let s = scaler.clone();
            async move { s.tick().await }
        });
        if round % 3 == 0 {
            // The tick is under way when the request comes.
            tokio::task::yield_now().await;
            let outcome = scaler
                .request_session("p", &SessionRequest::default())
                .await
                .unwrap();
            sessions.push(outcome);
        }
        ticking.await.unwrap();
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let servers = scaler.servers();
    let seated: u32 = servers.iter().map(|s| s.sessions).sum();
    assert_eq!(
        seated as usize,
        sessions.len(),
        "every request has its seat"
    );
    assert!(
        servers
            .iter()
            .all(|s| s.sessions == 0 || s.state == ServerState::Running)
    );
}

/// Defect 13: Kasm's check-in carries the token alone; a token names its server.
#[tokio::test(start_paused = true)]
async fn the_token_alone_checks_a_server_in_and_the_id_form_checks_it() {
    let config = one_pool("", "");
    let cloud = cloud_of(&config, 0, 10);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 10)))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    scaler.tick().await;
    scaler.settle().await;
    tokio::time::sleep(Duration::from_secs(95)).await;
    let due = cloud.due_checkins();
    assert_eq!(due.len(), 2);
    let token = token_in(due[0].startup_script.expose()).unwrap();
    assert!(
        scaler
            .check_in(due[1].server_id, token, &CheckinStatus::running())
            .await
            .is_err(),
        "the id form checks that the token names that server"
    );
    let id = scaler
        .check_in_token(token, &CheckinStatus::running())
        .await
        .unwrap();
    assert_eq!(id, due[0].server_id);
    assert!(
        scaler
            .check_in_token("eyJhbGciOiJFZERTQSJ9.e30.AAAA", &CheckinStatus::running())
            .await
            .is_err()
    );
}

/// Defect 15: the concurrency, rate limit and call timeout of a provider come from its
/// `api_*` fields in the configuration (the builder's settings win).
#[tokio::test(start_paused = true)]
async fn calls_in_flight_stay_within_the_configured_concurrency() {
    for (builder_says, expected) in [(None, 2), (Some(3), 3)] {
        let config = one_pool(
            "api_concurrency = 2\napi_call_timeout = 5",
            "minimum_pool_standby_sessions = 6",
        );
        let watched = Arc::new(Watched::new(
            cloud_of(&config, 0, 11),
            Duration::from_secs(1),
        ));
        let mut builder = Autoscaler::builder(config)
            .provider(watched.clone())
            .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 11)))
            .epoch(EPOCH.parse().unwrap());
        if let Some(n) = builder_says {
            builder = builder.concurrency(n);
        }
        let scaler = builder.build().unwrap();
        scaler.tick().await;
        scaler.settle().await;
        assert_eq!(watched.inner.vm_count(), 6);
        assert_eq!(watched.most.load(Ordering::SeqCst), expected);
    }
    // The configured call timeout (5 s) bounds a hung call.
    let config = one_pool("api_call_timeout = 5", "");
    let scaler = Autoscaler::builder(config)
        .provider(Arc::new(Hung("mem".into())))
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 11)))
        .retry(kasm_scale_core::controller::RetryPolicy {
            attempts: 1,
            ..Default::default()
        })
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    scaler.tick().await;
    let began = tokio::time::Instant::now();
    scaler.settle().await;
    assert_eq!(began.elapsed(), Duration::from_secs(5));
    let failed = std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
        Event::Failed {
            server: Some(_),
            error,
            ..
        } => Some(error),
        _ => None,
    });
    assert_eq!(
        failed.as_deref(),
        Some("cannot create the VM: transient failure: no answer within 5 s")
    );
}

/// Found by the PostgreSQL failover test: a server the plan made was also taken for unfinished
/// work of an earlier run in the same tick (it was `provisioning` and its create had not
/// started yet), so a create that ended at once (on another worker thread) was started a second
/// time: a second `create` call and a second `provisioning` event for one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_is_created_once_even_when_its_create_ends_at_once() {
    let config = Fixture::memory_pool("p")
        .max_instances(200)
        .startup_script("x")
        .boot_latency(0)
        .minimum_standby(150)
        .require_checkin(false)
        .config();
    let cloud = cloud_of(&config, 0, 1);
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    scaler.tick().await;
    scaler.settle().await;
    let mut provisioning: std::collections::BTreeMap<_, u32> = Default::default();
    while let Ok(event) = events.try_recv() {
        if let Event::Provisioning { server, .. } = event {
            *provisioning.entry(server).or_default() += 1;
        }
    }
    assert_eq!(provisioning.len(), 150, "one server per standby session");
    let twice: Vec<_> = provisioning.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "servers started twice: {twice:?}");
}
