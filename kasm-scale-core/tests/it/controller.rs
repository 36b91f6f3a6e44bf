//! The controller on tokio's paused clock against the in-memory cloud and directory.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, Distribution, Format, MemoryVmConfig, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::deliver_checkins;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory};

use crate::fixture::Fixture;

fn config(extra: &str) -> Config {
    Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .active_directory()
        .minimum_standby(3)
        .require_checkin(true)
        .checkin_timeout(600)
        .downscale_backoff(600)
        .autoscale_toml(extra)
        .config()
}

struct World {
    scaler: Autoscaler,
    cloud: Arc<MemoryCloud>,
    directory: Arc<MemoryDirectory>,
}

fn world(config: Config, tweak: impl FnOnce(&mut MemoryVmConfig), seed: u64) -> World {
    let VmProviderConfig::Memory(mut mem) = config.vm_providers[0].clone() else {
        panic!()
    };
    tweak(&mut mem);
    let cloud = Arc::new(MemoryCloud::new(mem, seed));
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", seed));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .seed(seed)
        .epoch("2026-11-30T12:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    World {
        scaler,
        cloud,
        directory,
    }
}

impl World {
    /// Ticks every 10 s for `seconds`, delivering the guests' check-ins as they fall due.
    async fn run(&self, seconds: u64) {
        for _ in 0..seconds / 10 {
            self.scaler.tick().await;
            self.scaler.settle().await;
            deliver_checkins(&self.scaler, &self.cloud).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.scaler.tick().await;
        self.scaler.settle().await;
    }

    fn count(&self, state: ServerState) -> usize {
        self.scaler
            .servers()
            .iter()
            .filter(|s| s.state == state)
            .count()
    }
}

#[tokio::test(start_paused = true)]
async fn reaches_the_minimum_from_empty_with_ad_records() {
    let w = world(config(""), |_| {}, 1);
    w.scaler.tick().await;
    w.scaler.settle().await;
    assert_eq!(
        w.count(ServerState::Starting),
        3,
        "{:?}",
        w.scaler.servers()
    );
    assert_eq!(w.directory.record_count(), 3, "one AD record per server");
    w.run(120).await;
    assert_eq!(w.count(ServerState::Running), 3);
    assert_eq!(w.cloud.vm_count(), 3);
    let s = &w.scaler.servers()[0];
    assert!(
        s.hostname.starts_with("KASM-") && s.hostname.len() == 15,
        "{}",
        s.hostname
    );
    assert!(s.checked_in_at.is_some() && s.last_error.is_none());
    w.run(600).await;
    assert_eq!(
        w.cloud.counts(),
        (3, 0),
        "a steady pool creates and destroys nothing more"
    );
}

#[tokio::test(start_paused = true)]
async fn sessions_single_use_servers_and_queued_requests() {
    let w = world(config(""), |_| {}, 2);
    let req = SessionRequest::default();
    // Nothing is ready yet: the request waits, and is seated when a server checks in.
    let SessionOutcome::Queued { session: queued } =
        w.scaler.request_session("p", &req).await.unwrap()
    else {
        panic!()
    };
    let mut events = w.scaler.subscribe();
    w.run(120).await;
    let mut seated = None;
    while let Ok(e) = events.try_recv() {
        if let kasm_scale_core::controller::Event::SessionAssigned { session, server } = e {
            assert_eq!(session, queued);
            seated = Some(server);
        }
    }
    let server = seated.expect("the queued request got a server");
    // The minimum of 3 free holds next to the busy server.
    assert_eq!(w.count(ServerState::Running), 4, "{:?}", w.scaler.servers());
    // The session ends: a single-use server goes.
    w.scaler.end_session(queued).await.unwrap();
    w.run(10).await;
    assert!(
        w.scaler.servers().iter().all(|s| s.id != server),
        "the used server is destroyed"
    );
    assert_eq!(
        w.directory.record_count(),
        w.cloud.vm_count(),
        "its AD record went with it"
    );
    assert!(w.scaler.end_session(queued).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn scale_down_waits_for_the_backoff_and_spares_busy_servers() {
    let w = world(
        config(
            "reusable = true\nmax_simultaneous_sessions_per_server = 2\nconnection_credential_type = \"SSO User Accounts\"",
        ),
        |_| {},
        3,
    );
    w.run(120).await;
    assert_eq!(
        w.count(ServerState::Running),
        2,
        "3 free need two 2-session servers"
    );
    let req = SessionRequest::default();
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(w.scaler.request_session("p", &req).await.unwrap());
    }
    w.run(200).await;
    assert_eq!(w.count(ServerState::Running), 4);
    for s in sessions.iter().skip(1) {
        let (SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session }) = *s;
        w.scaler.end_session(session).await.unwrap();
    }
    // A surplus now: nothing goes before downscale_backoff (600 s).
    w.run(500).await;
    assert_eq!(w.count(ServerState::Running), 4);
    w.run(200).await;
    let servers = w.scaler.servers();
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(
        servers.iter().any(|s| s.sessions == 1),
        "the busy server stays"
    );
}

#[tokio::test(start_paused = true)]
async fn servers_that_never_check_in_are_replaced_at_a_bounded_rate() {
    let w = world(config(""), |m| m.never_checkin_rate = 1.0, 4);
    w.run(3 * 3600).await;
    let (creates, destroys) = w.cloud.counts();
    eprintln!("never checking in: {creates} created, {destroys} destroyed in 3 h");
    // 3 at first, then after each timeout one at a time with backoff up to an hour.
    assert!(
        creates <= 12,
        "{creates} VMs created in 3 hours: a create/delete loop"
    );
    assert_eq!(creates - destroys, w.cloud.vm_count() as u64);
    assert_eq!(
        w.directory.record_count(),
        w.cloud.vm_count(),
        "timed-out servers lose their AD record"
    );
    assert!(w.scaler.bookkeeping("c").consecutive_failures >= 3);
}

#[tokio::test(start_paused = true)]
async fn converges_with_provider_errors_and_throttling() {
    let w = world(
        config(""),
        |m| {
            m.create_failure_rate = 0.2;
            m.destroy_failure_rate = 0.2;
            m.rate_limit_per_second = Some(1.0);
            m.boot_latency = Distribution::Uniform([30.0, 120.0]);
        },
        5,
    );
    w.run(1800).await;
    eprintln!(
        "with 20% errors and 1 call/s: {:?} created/destroyed",
        w.cloud.counts()
    );
    assert_eq!(w.count(ServerState::Running), 3, "{:?}", w.scaler.servers());
    assert_eq!(w.cloud.vm_count(), w.scaler.servers().len(), "no leaked VM");
    assert_eq!(
        w.directory.record_count(),
        w.cloud.vm_count(),
        "no leaked AD record"
    );
}

#[tokio::test(start_paused = true)]
async fn check_in_refuses_tokens_of_other_servers() {
    let w = world(
        config(""),
        |m| m.checkin_delay = Distribution::Fixed(100_000.0),
        6,
    );
    w.run(100).await;
    let servers = w.scaler.servers();
    assert_eq!(servers.len(), 3);
    assert!(
        w.scaler
            .check_in(servers[0].id, "not-a-token", &CheckinStatus::running())
            .await
            .is_err()
    );
    assert_eq!(w.count(ServerState::Starting), 3, "nothing checked in");
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_does_not_delay_the_others() {
    let text = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "good"
max_instances = 5
boot_latency = { fixed = 1 }

[[vm_providers]]
provider = "memory"
name = "bad"
max_instances = 5
create_failure_rate = 1.0

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
"#;
    let config = kasm_scale_core::load_str(text, Format::Toml)
        .unwrap()
        .config;
    let memory = |i: usize| {
        let VmProviderConfig::Memory(m) = config.vm_providers[i].clone() else {
            panic!()
        };
        Arc::new(MemoryCloud::new(m, i as u64))
    };
    let (good, bad) = (memory(0), memory(1));
    let scaler = Autoscaler::builder(config)
        .provider(good.clone())
        .provider(bad.clone())
        .build()
        .unwrap();
    // The bad provider's creates fail and are retried with backoff for many seconds in the
    // background; the tick returns at once and the good provider's servers exist at once.
    let began = tokio::time::Instant::now();
    scaler.tick().await;
    assert_eq!(
        began.elapsed(),
        Duration::ZERO,
        "the tick waits for no provider"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(good.vm_count(), 2, "the good provider is not held up");
    let retrying = scaler
        .servers()
        .iter()
        .filter(|s| s.config == "on-bad" && s.state == ServerState::Provisioning)
        .count();
    assert_eq!(retrying, 2, "the bad provider is still retrying");
    // The good servers boot, are found running and take sessions while the bad provider's
    // retries go on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    scaler.tick().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        scaler
            .servers()
            .iter()
            .any(|s| s.config == "on-bad" && s.state == ServerState::Provisioning),
        "the bad provider is still retrying"
    );
    let outcome = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Assigned { .. }),
        "{outcome:?}"
    );
    scaler.settle().await;
    assert_eq!(bad.vm_count(), 0);
    assert_eq!(
        scaler.bookkeeping("on-bad").consecutive_failures,
        1,
        "two failed creates of one tick are one failure"
    );
    assert_eq!(scaler.bookkeeping("on-good").consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn run_ticks_until_shutdown() {
    let w = world(config(""), |_| {}, 9);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let scaler = w.scaler.clone();
        async move { scaler.run(async { stopped.await.unwrap_or(()) }).await }
    });
    tokio::time::sleep(Duration::from_secs(95)).await;
    assert_eq!(w.cloud.vm_count(), 3, "run ticked and provisioned");
    stop.send(()).unwrap();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn only_a_running_status_makes_a_server_ready() {
    let w = world(config(""), |_| {}, 10);
    w.scaler.tick().await;
    w.scaler.settle().await;
    tokio::time::sleep(Duration::from_secs(95)).await;
    let due = w.cloud.due_checkins();
    assert_eq!(due.len(), 3);
    let (id, token) = (due[0].server_id, due[0].startup_script.expose());
    let starting = CheckinStatus {
        status: "starting".into(),
        status_message: "joining example.local".into(),
        status_progress: "40".into(),
    };
    w.scaler.check_in(id, token, &starting).await.unwrap();
    let s = w.scaler.servers().into_iter().find(|s| s.id == id).unwrap();
    assert_eq!(s.state, ServerState::Starting);
    assert_eq!(
        s.reported_status.as_deref(),
        Some("starting (40%): joining example.local")
    );
    w.scaler
        .check_in(id, token, &CheckinStatus::running())
        .await
        .unwrap();
    w.scaler
        .check_in(id, token, &CheckinStatus::running())
        .await
        .unwrap();
    let s = w.scaler.servers().into_iter().find(|s| s.id == id).unwrap();
    assert_eq!(
        s.state,
        ServerState::Running,
        "repeating the check-in is harmless"
    );
    // Another server's token does not check this one in.
    let other = due[1].startup_script.expose();
    assert!(
        w.scaler
            .check_in(due[2].server_id, other, &CheckinStatus::running())
            .await
            .is_err()
    );
}
