//! The warm tier end to end: the controller, the engine's warm rules and the in-memory cloud's
//! stop and start, on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, MAX_POWER_FAILURES, SessionOutcome};
use kasm_scale_core::engine::{ServerId, ServerState, SessionRequest};
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, MemoryStore, deliver_checkins};
use kasm_scale_core::traits::{
    BackendError, Capabilities, DirectoryService, Vm, VmProvider, VmSpec, VmState,
};

use crate::controller_fallback::ShortOf;
use crate::fixture::Fixture;

/// Builds take 600 s, starts 60 s, check-ins 30 s after boot; a warm tier of 2 to 3 stopped
/// servers; no running minimum unless `minimum`; `extra` adds autoscale fields.
fn config(minimum: i64, warm: &str) -> Config {
    Fixture::memory_pool("p")
        .boot_latency(600)
        .checkin_delay(30)
        .minimum_standby(minimum)
        .require_checkin(true)
        .checkin_timeout(1200)
        .downscale_backoff(300)
        .active_directory()
        .provider_toml(
            "start_latency = { fixed = 60 }\nprice_per_hour = 1.0\nstopped_price_per_hour = 0.1\n\
             alternatives = [{ name = \"zone-b\" }]",
        )
        .autoscale_toml(warm)
        .config()
}

const TIER: &str = "warm_pool = { min_stopped = 2, max_stopped = 3 }";

struct World {
    scaler: Autoscaler,
    cloud: Arc<ShortOf>,
    directory: Arc<MemoryDirectory>,
}

fn world_with(
    config: &Config,
    store: Option<Arc<MemoryStore>>,
    cloud: Option<Arc<ShortOf>>,
) -> World {
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        panic!("the fixture's provider is the memory cloud")
    };
    let cloud =
        cloud.unwrap_or_else(|| Arc::new(ShortOf::new(Arc::new(MemoryCloud::new(mem, 9)), &[])));
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 9));
    let mut builder = Autoscaler::builder(config.clone())
        .provider(cloud.clone())
        .directory(directory.clone())
        .seed(9)
        .reconcile_every(3)
        // Longer than a cold build (630 s): a request the warm tier cannot serve waits for it.
        .queue_timeout(Duration::from_secs(1800))
        .epoch("2026-12-07T06:00:00Z".parse().unwrap());
    if let Some(store) = store {
        builder = builder.store(store);
    }
    World {
        scaler: builder.build().unwrap(),
        cloud,
        directory,
    }
}

fn world(config: &Config) -> World {
    world_with(config, None, None)
}

impl World {
    /// Ticks every 10 s for `seconds`, delivering the guests' check-ins as they fall due.
    async fn run(&self, seconds: u64) {
        for _ in 0..seconds / 10 {
            self.step().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.step().await;
    }

    async fn step(&self) {
        self.scaler.tick().await;
        self.scaler.settle().await;
        deliver_checkins(&self.scaler, &self.cloud.inner).await;
    }

    fn in_state(&self, state: ServerState) -> Vec<ServerId> {
        self.scaler
            .servers()
            .into_iter()
            .filter(|s| s.state == state)
            .map(|s| s.id)
            .collect()
    }

    async fn vm_state(&self, server: ServerId) -> Option<VmState> {
        let vm = self.scaler.server(server)?.vm_id?;
        self.cloud.inner.get(&vm).await.unwrap().map(|v| v.state)
    }
}

#[tokio::test(start_paused = true)]
async fn the_warm_tier_is_built_checked_in_then_stopped() {
    let w = world(&config(0, TIER));
    w.run(700).await;
    let stopped = w.in_state(ServerState::Stopped);
    assert_eq!(stopped.len(), 2, "{:#?}", w.scaler.servers());
    for id in &stopped {
        assert_eq!(w.vm_state(*id).await, Some(VmState::Stopped));
        let s = w.scaler.server(*id).unwrap();
        assert!(s.ad.is_some(), "a stopped server keeps its AD record");
        assert!(!s.for_warm, "once stopped it is in the tier");
    }
    assert_eq!(w.directory.record_count(), 2);
    let pool = &w.scaler.pools()[0];
    assert_eq!((pool.free_sessions, pool.warm_sessions), (0, 2), "{pool:?}");
    let spend = &w.scaler.spend()[0];
    assert!(
        (spend.per_hour - 0.2).abs() < 1e-9,
        "two stopped VMs at 0.1: {spend:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_warm_server_takes_no_session_before_it_checks_in_again() {
    let w = world(&config(0, TIER));
    w.run(700).await;
    let warm = w.in_state(ServerState::Stopped);
    assert_eq!(warm.len(), 2);
    let outcome = w
        .scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Queued { .. }),
        "{outcome:?}"
    );
    w.step().await;
    let woken: Vec<ServerId> = w
        .scaler
        .servers()
        .into_iter()
        .filter(|s| s.woken_at.is_some())
        .map(|s| s.id)
        .collect();
    assert_eq!(
        woken.len(),
        1,
        "one warm server started: {:#?}",
        w.scaler.servers()
    );
    assert!(warm.contains(&woken[0]));
    // Its VM runs after 60 s; its guest checks in 30 s later. Until then nothing is handed out.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        w.scaler.tick().await;
        w.scaler.settle().await;
        let s = w.scaler.server(woken[0]).unwrap();
        assert_eq!(
            s.state,
            ServerState::Starting,
            "not ready before its check-in"
        );
        assert_eq!(
            s.sessions, 0,
            "no session on a server that has not proved it is up"
        );
    }
    w.run(40).await;
    let s = w.scaler.server(woken[0]).unwrap();
    assert_eq!(s.state, ServerState::Running);
    assert_eq!(
        s.sessions, 1,
        "the waiting request is seated on the started server"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_when_a_tier_build_comes_up_is_seated_on_it_with_no_stop_or_start() {
    let w = world(&config(0, TIER));
    // The tier's two builds take 600 s and their check-ins 30 s more.
    w.step().await;
    let builds: Vec<ServerId> = w.scaler.servers().iter().map(|s| s.id).collect();
    assert_eq!(builds.len(), 2);
    w.run(300).await;
    let outcome = w
        .scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Queued { .. }),
        "{outcome:?}"
    );
    // A cold build starts for it (630 s away), but the tier's builds are ready first.
    w.run(360).await;
    let seated: Vec<_> = w
        .scaler
        .servers()
        .into_iter()
        .filter(|s| s.sessions > 0)
        .collect();
    assert_eq!(seated.len(), 1, "{:#?}", w.scaler.servers());
    assert!(
        builds.contains(&seated[0].id),
        "seated on a build of the tier"
    );
    assert!(
        !seated[0].for_warm,
        "it serves now, it is no build of the tier any more"
    );
    let vm = seated[0].vm_id.clone().unwrap();
    assert!(
        w.cloud.starts.lock().unwrap().is_empty(),
        "no start: it never stopped"
    );
    assert!(
        w.cloud.stops.lock().unwrap().iter().all(|(v, _)| *v != vm),
        "not stopped on its way"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_server_past_its_max_age_is_rebuilt_never_started() {
    let w = world(&config(
        0,
        "warm_pool = { min_stopped = 1, max_stopped = 1, max_age = 3600 }",
    ));
    w.run(700).await;
    let first = w.in_state(ServerState::Stopped);
    assert_eq!(first.len(), 1);
    w.run(3600).await;
    assert!(
        w.scaler.server(first[0]).is_none(),
        "the old stopped server went"
    );
    assert!(
        w.cloud.starts.lock().unwrap().is_empty(),
        "no stopped server was started for its age"
    );
    let now = w.in_state(ServerState::Stopped);
    assert_eq!(
        now.len(),
        1,
        "a fresh one took its place: {:#?}",
        w.scaler.servers()
    );
    assert_ne!(now[0], first[0]);
}

/// Provider calls one controller call makes at most: the default retry policy's attempts.
const ATTEMPTS: usize = 5;

#[tokio::test(start_paused = true)]
async fn a_stop_that_keeps_failing_leaves_the_server_serving_and_is_not_asked_every_tick() {
    let mut config = config(0, "warm_pool = { min_stopped = 1, max_stopped = 1 }");
    if let VmProviderConfig::Memory(m) = &mut config.vm_providers[0] {
        m.stop_failure_rate = 1.0;
    }
    let w = world(&config);
    w.run(700).await;
    let first = w.scaler.servers()[0].clone();
    // 20 ticks: before the fix, a stop each (with its retries).
    w.run(200).await;
    let s = w.scaler.server(first.id).expect("still there");
    assert_eq!(s.state, ServerState::Running, "{s:?}");
    assert!(!s.for_warm, "no longer a build for the tier: {s:?}");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("still runs after 3 stops")),
        "{s:?}"
    );
    assert_eq!(w.vm_state(s.id).await, Some(VmState::Running));
    let vm = s.vm_id.clone().unwrap();
    let stops = w.cloud.stops.lock().unwrap().clone();
    let of_first = stops.iter().filter(|(v, _)| *v == vm).count();
    assert!(
        of_first <= MAX_POWER_FAILURES as usize * ATTEMPTS,
        "{of_first} stop calls to a VM whose stops fail: {stops:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_that_fails_backs_off_and_a_cold_build_serves_the_request() {
    let mut config = config(0, "warm_pool = { min_stopped = 1, max_stopped = 1 }");
    if let VmProviderConfig::Memory(m) = &mut config.vm_providers[0] {
        m.start_failure_rate = 1.0;
    }
    let w = world(&config);
    w.run(700).await;
    let warm = w.in_state(ServerState::Stopped);
    assert_eq!(warm.len(), 1);
    let vm = w.scaler.server(warm[0]).unwrap().vm_id.unwrap();
    let outcome = w
        .scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(matches!(outcome, SessionOutcome::Queued { .. }));
    w.run(1500).await;
    let starts = w.cloud.starts.lock().unwrap().clone();
    let of_warm = starts.iter().filter(|(v, _)| *v == vm).count();
    assert!(
        (1..=MAX_POWER_FAILURES as usize * ATTEMPTS).contains(&of_warm),
        "at most {MAX_POWER_FAILURES} starts (with their retries) in 150 ticks, not one per tick: {starts:?}"
    );
    // Back in the tier with its failures counted, or destroyed once they reached the most.
    match w.scaler.server(warm[0]) {
        Some(s) => {
            assert_eq!(s.state, ServerState::Stopped, "{s:?}");
            assert!((1..MAX_POWER_FAILURES).contains(&s.power_failures), "{s:?}");
            assert!(
                s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("did not stay up")),
                "{s:?}"
            );
        }
        None => assert!(
            of_warm > (MAX_POWER_FAILURES as usize - 1),
            "destroyed only after {MAX_POWER_FAILURES} failed starts: {starts:?}"
        ),
    }
    let seated: Vec<_> = w
        .scaler
        .servers()
        .into_iter()
        .filter(|s| s.sessions > 0)
        .collect();
    assert_eq!(seated.len(), 1, "a cold build serves the request");
    assert_ne!(seated[0].id, warm[0]);
}

#[tokio::test(start_paused = true)]
async fn a_warm_server_that_fails_to_start_max_power_failures_times_is_destroyed() {
    // One server in all, so the waiting requests can only be served by starting it: the
    // controller keeps asking (after its backoff) until the server has failed
    // MAX_POWER_FAILURES starts, then destroys it (and its AD record) and builds anew.
    let mut config = config(0, "warm_pool = { min_stopped = 1, max_stopped = 1 }");
    if let VmProviderConfig::Memory(m) = &mut config.vm_providers[0] {
        m.start_failure_rate = 1.0;
        m.max_instances = 1;
    }
    let w = world(&config);
    w.run(700).await;
    let warm = w.in_state(ServerState::Stopped);
    assert_eq!(warm.len(), 1);
    let vm = w.scaler.server(warm[0]).unwrap().vm_id.unwrap();
    for _ in 0..6 {
        if w.scaler.server(warm[0]).is_none() {
            break;
        }
        w.scaler
            .request_session("p", &SessionRequest::default())
            .await
            .unwrap();
        w.run(900).await;
    }
    assert!(
        w.scaler.server(warm[0]).is_none(),
        "destroyed after {MAX_POWER_FAILURES} failed starts: {:#?}",
        w.scaler.servers()
    );
    let asked = w
        .cloud
        .starts
        .lock()
        .unwrap()
        .iter()
        .filter(|(v, _)| *v == vm)
        .count();
    assert!(
        (MAX_POWER_FAILURES as usize..=MAX_POWER_FAILURES as usize * ATTEMPTS).contains(&asked),
        "{asked} start calls for {MAX_POWER_FAILURES} failed starts (with the guard's retries)"
    );
    assert!(
        w.cloud.inner.get(&vm).await.unwrap().is_none(),
        "its VM is gone"
    );
}

/// A memory cloud that says it cannot stop and start VMs.
#[derive(Debug)]
struct NoPower(MemoryCloud);

#[async_trait::async_trait]
impl VmProvider for NoPower {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            stop_start: false,
            hibernate: false,
            ..self.0.capabilities()
        }
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        self.0.create(spec).await
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.0.destroy(vm_id).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.0.get(vm_id).await
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.0.list(owner_id).await
    }
}

#[test]
fn a_warm_tier_on_a_provider_that_cannot_stop_is_refused_at_build() {
    let config = config(0, TIER);
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        unreachable!()
    };
    let provider = Arc::new(NoPower(MemoryCloud::new(mem, 1)));
    let refused = Autoscaler::builder(config.clone())
        .provider(provider.clone())
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 1)))
        .build();
    let Err(error) = refused else {
        panic!("a warm tier on a provider that cannot stop was accepted")
    };
    let error = error.to_string();
    assert!(
        error.contains("warm tier (warm_pool)") && error.contains("cannot stop and start"),
        "{error}"
    );
    // Without the tier the same provider is fine.
    let mut plain = config;
    plain.pools[0].autoscale[0].warm_pool = None;
    Autoscaler::builder(plain)
        .provider(provider)
        .directory(Arc::new(MemoryDirectory::new("ad", "example.local", 1)))
        .build()
        .expect("no tier, no need to stop");
}

#[tokio::test(start_paused = true)]
async fn a_start_refused_for_capacity_moves_the_stopped_vm_to_the_next_offering_at_once() {
    let w = world(&config(0, TIER));
    w.run(700).await;
    let stopped = w.in_state(ServerState::Stopped);
    assert_eq!(stopped.len(), 2);
    // Monday morning: the region is short of the stopped servers' size.
    w.cloud.short.lock().unwrap().push(0);
    let creates_before = w.cloud.creates.lock().unwrap().len();
    let asked = tokio::time::Instant::now();
    w.scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    w.step().await;
    let starts = w.cloud.starts.lock().unwrap().clone();
    let resizes = w.cloud.resizes.lock().unwrap().clone();
    assert_eq!(
        starts.len(),
        2,
        "refused on its size, then started on the next: {starts:?}"
    );
    assert_eq!(starts[0].0, starts[1].0, "the same VM both times");
    assert_eq!(
        starts[0].1, starts[1].1,
        "in the same call, not a tick later"
    );
    assert_eq!(
        resizes
            .iter()
            .map(|(vm, to, _)| (vm.clone(), *to))
            .collect::<Vec<_>>(),
        vec![(starts[0].0.clone(), 0), (starts[0].0.clone(), 1)],
        "set to its own offering before the first start (a move whose answer was lost may \
         have left it elsewhere), then moved to the next one before the second"
    );
    let moved = w
        .scaler
        .servers()
        .into_iter()
        .find(|s| s.vm_id.as_deref() == Some(starts[0].0.as_str()))
        .expect("the started server");
    assert_eq!(
        moved.offering, 1,
        "its record names the offering it runs on"
    );
    // The start takes 60 s and the check-in 30 s more: served by the warm server well before a
    // cold build (630 s) could, with no create at all.
    w.run(120).await;
    let seated = w.scaler.server(moved.id).expect("still there");
    assert_eq!(seated.sessions, 1, "{:#?}", w.scaler.servers());
    assert!(tokio::time::Instant::now() - asked <= Duration::from_secs(140));
    let creates = w.cloud.creates.lock().unwrap()[creates_before..].to_vec();
    // The only create is the tier's refill (one stopped server left, two wanted), made on the
    // offering that is not short.
    assert!(
        creates.len() <= 1 && creates.iter().all(|(o, _)| *o == 1),
        "no create for the request: {creates:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_refused_for_capacity_builds_on_the_next_offering_when_the_vm_cannot_move() {
    let w = world(&config(0, TIER));
    w.cloud
        .can_resize
        .store(false, std::sync::atomic::Ordering::Relaxed);
    w.run(700).await;
    assert_eq!(w.in_state(ServerState::Stopped).len(), 2);
    // Monday morning: the zone of the stopped servers is short of their size.
    w.cloud.short.lock().unwrap().push(0);
    w.scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    w.step().await;
    let started = w.cloud.starts.lock().unwrap().clone();
    assert_eq!(started.len(), 1, "one start tried: {started:?}");
    // The next tick (the controller plans again at once after the refusal) builds instead.
    w.step().await;
    let creates = w.cloud.creates.lock().unwrap().clone();
    let fallback = creates
        .iter()
        .filter(|(o, at)| *o == 1 && *at == started[0].1)
        .count();
    assert!(
        fallback >= 1,
        "a create on the next offering at the same instant: {creates:?}"
    );
    assert_eq!(
        w.in_state(ServerState::Stopped).len(),
        2,
        "the refused server stays stopped (its offering is skipped, not given up)"
    );
    w.run(700).await;
    let seated: u32 = w.scaler.servers().iter().map(|s| s.sessions).sum();
    assert_eq!(
        seated,
        1,
        "the request is served by the cold build: {:#?}",
        w.scaler.servers()
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_vm_deleted_by_a_person_takes_its_record_and_ad_record() {
    let w = world(&config(
        0,
        "warm_pool = { min_stopped = 1, max_stopped = 1 }",
    ));
    w.run(700).await;
    let stopped = w.in_state(ServerState::Stopped);
    assert_eq!(stopped.len(), 1);
    assert_eq!(w.directory.record_count(), 1);
    let gone = w.scaler.server(stopped[0]).unwrap();
    let vm = gone.vm_id.clone().unwrap();
    w.cloud.inner.destroy(&vm).await.unwrap();
    w.run(60).await;
    assert!(w.scaler.server(stopped[0]).is_none(), "its record went");
    // A replacement is being built for the tier; the deleted server's AD record is gone, and
    // the records left are exactly the servers'.
    let mut servers: Vec<String> = w
        .scaler
        .servers()
        .iter()
        .map(|s| s.hostname.to_ascii_uppercase())
        .collect();
    let mut records: Vec<String> = w
        .directory
        .list_computers("kasm-scale", &["OU=Kasm,DC=example,DC=local".to_owned()])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_ascii_uppercase())
        .collect();
    servers.sort();
    records.sort();
    assert!(
        !records.contains(&gone.hostname.to_ascii_uppercase()),
        "{records:?}"
    );
    assert_eq!(records, servers);
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_its_stopped_servers_stopped() {
    let config = config(0, TIER);
    let store = Arc::new(MemoryStore::default());
    let first = world_with(&config, Some(store.clone()), None);
    first.run(700).await;
    first.scaler.save().await;
    let stopped = first.in_state(ServerState::Stopped);
    assert_eq!(stopped.len(), 2);
    let cloud = first.cloud.clone();
    drop(first);
    let again = world_with(&config, Some(store), Some(cloud));
    again.run(120).await;
    let mut now = again.in_state(ServerState::Stopped);
    let mut before = stopped.clone();
    now.sort();
    before.sort();
    assert_eq!(
        now, before,
        "the restarted controller keeps the tier it had"
    );
    for id in &stopped {
        assert_eq!(again.vm_state(*id).await, Some(VmState::Stopped));
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_server_of_an_old_generation_is_rebuilt_never_started() {
    let w = world(&config(0, TIER));
    w.run(700).await;
    let old = w.in_state(ServerState::Stopped);
    assert_eq!(old.len(), 2);
    // A new generation: what the guests see changed (a shaping field of the auto-scale config).
    let mut next = (*w.scaler.config()).clone();
    next.pools[0].autoscale[0].connection_username = Some("kasm-v2".into());
    let changes = w.scaler.reconfigure(next).await.unwrap();
    assert_eq!(changes.new_generations, ["c"]);
    // A request arrives while the tier holds only outdated servers.
    let outcome = w
        .scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Queued { .. }),
        "{outcome:?}"
    );
    w.run(1500).await;
    assert!(
        w.cloud.starts.lock().unwrap().is_empty(),
        "no outdated stopped server was started: {:?}",
        w.cloud.starts.lock().unwrap()
    );
    for id in &old {
        assert!(w.scaler.server(*id).is_none(), "the outdated {id:?} went");
    }
    let servers = w.scaler.servers();
    let generation = w.scaler.generations()[0].generation;
    assert!(
        servers.iter().all(|s| s.generation == generation),
        "only the current generation is left: {servers:#?}"
    );
    let seated: Vec<_> = servers.iter().filter(|s| s.sessions > 0).collect();
    assert_eq!(seated.len(), 1, "a current server serves the request");
    assert_eq!(
        w.in_state(ServerState::Stopped).len(),
        2,
        "the tier is rebuilt in the current generation"
    );
}
