//! Capacity fallback within one VM provider config: a cloud short of the first offering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::engine::ServerState;
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::traits::{BackendError, Capabilities, StopMode, Vm, VmProvider, VmSpec};
use tokio::time::Instant;

use crate::fixture::Fixture;

/// A cloud whose offerings in `short` answer every create and start with EC2's
/// "insufficient capacity", as a region short of a size does; the rest is the memory cloud.
/// It records every create it is asked for: (offering, when), and every start, stop and move
/// of a stopped VM to another offering (`resize`, which it refuses when `can_resize` is off,
/// as a provider without `resize_stopped` does).
#[derive(Debug)]
pub(crate) struct ShortOf {
    pub inner: Arc<MemoryCloud>,
    pub short: Mutex<Vec<u32>>,
    pub creates: Mutex<Vec<(u32, Instant)>>,
    pub starts: Mutex<Vec<(String, Instant)>>,
    pub stops: Mutex<Vec<(String, Instant)>>,
    /// (VM, to offering, when).
    pub resizes: Mutex<Vec<(String, u32, Instant)>>,
    pub can_resize: std::sync::atomic::AtomicBool,
    /// The offering each VM was made on.
    made_on: Mutex<std::collections::HashMap<String, u32>>,
}

impl ShortOf {
    pub(crate) fn new(inner: Arc<MemoryCloud>, short: &[u32]) -> Self {
        Self {
            inner,
            short: Mutex::new(short.to_vec()),
            creates: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
            stops: Mutex::new(Vec::new()),
            resizes: Mutex::new(Vec::new()),
            can_resize: std::sync::atomic::AtomicBool::new(true),
            made_on: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn is_short(&self, offering: u32) -> bool {
        self.short.lock().unwrap().contains(&offering)
    }

    fn capacity_error() -> BackendError {
        BackendError::Capacity(
            "InsufficientInstanceCapacity: We currently do not have sufficient capacity in the \
             Availability Zone you requested"
                .into(),
        )
    }
}

#[async_trait]
impl VmProvider for ShortOf {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resize_stopped: self.can_resize.load(std::sync::atomic::Ordering::Relaxed),
            ..self.inner.capabilities()
        }
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        self.creates
            .lock()
            .unwrap()
            .push((spec.offering, Instant::now()));
        if self.is_short(spec.offering) {
            return Err(Self::capacity_error());
        }
        let vm = self.inner.create(spec).await?;
        self.made_on
            .lock()
            .unwrap()
            .insert(vm.vm_id.clone(), spec.offering);
        Ok(vm)
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
    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        self.stops
            .lock()
            .unwrap()
            .push((vm_id.to_owned(), Instant::now()));
        VmProvider::stop(&*self.inner, vm_id, mode).await
    }
    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        self.starts
            .lock()
            .unwrap()
            .push((vm_id.to_owned(), Instant::now()));
        let offering = self.made_on.lock().unwrap().get(vm_id).copied();
        if offering.is_some_and(|o| self.is_short(o)) {
            return Err(Self::capacity_error());
        }
        VmProvider::start(&*self.inner, vm_id).await
    }
    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        if !self.can_resize.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BackendError::InvalidRequest(
                "this cloud cannot move a stopped VM".into(),
            ));
        }
        self.resizes
            .lock()
            .unwrap()
            .push((vm_id.to_owned(), offering, Instant::now()));
        self.inner.resize(vm_id, offering).await?;
        self.made_on
            .lock()
            .unwrap()
            .insert(vm_id.to_owned(), offering);
        Ok(())
    }
}

/// The fixture's pool with `minimum` free slots, 60 s boots, 30 s check-ins, and one
/// alternative offering (another zone) beside the config's own.
pub(crate) fn two_offerings(minimum: i64) -> Config {
    Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .minimum_standby(minimum)
        .require_checkin(true)
        .checkin_timeout(600)
        .provider_toml(
            "alternatives = [{ name = \"zone-b\", price_per_hour = 0.3 }]\nprice_per_hour = 0.2",
        )
        .config()
}

pub(crate) fn world(config: &Config) -> (Autoscaler, Arc<ShortOf>) {
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        panic!("the fixture's provider is the memory cloud")
    };
    let cloud = Arc::new(ShortOf::new(Arc::new(MemoryCloud::new(mem, 5)), &[0]));
    let scaler = Autoscaler::builder(config.clone())
        .provider(cloud.clone())
        .seed(5)
        .epoch("2026-12-07T08:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    (scaler, cloud)
}

/// Ticks every 10 s for `seconds`, delivering check-ins.
pub(crate) async fn run(scaler: &Autoscaler, cloud: &MemoryCloud, seconds: u64) {
    for _ in 0..seconds / 10 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(scaler, cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_capacity_error_moves_the_create_to_the_next_offering_in_the_same_tick() {
    let config = two_offerings(2);
    let (scaler, cloud) = world(&config);
    let began = Instant::now();
    scaler.tick().await;
    scaler.settle().await;
    let creates = cloud.creates.lock().unwrap().clone();
    let on_second: Vec<_> = creates.iter().filter(|(o, _)| *o == 1).collect();
    assert_eq!(
        on_second.len(),
        2,
        "both servers made on the second offering: {creates:?}"
    );
    assert!(
        creates.iter().all(|(_, at)| *at == began),
        "every attempt, the fallback included, is in the first tick: {creates:?}"
    );
    assert!(
        creates.iter().filter(|(o, _)| *o == 0).count() <= 2,
        "the short offering is tried at most once per create: {creates:?}"
    );
    let servers = scaler.servers();
    assert_eq!(servers.len(), 2);
    assert!(
        servers.iter().all(|s| s.offering == 1),
        "each record keeps the offering that served it"
    );
    let skipped = scaler.skipped_offerings();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].1, "primary");

    // Free slots recover within a build (60 s boot + 30 s check-in) plus one tick.
    run(&scaler, &cloud.inner, 100).await;
    let pool = &scaler.pools()[0];
    assert_eq!(pool.free_sessions, 2, "{pool:?}");
    // The spend rate prices each VM at the offering that served it.
    let spend = &scaler.spend()[0];
    assert!((spend.per_hour - 0.6).abs() < 1e-9, "{spend:?}");
}

#[tokio::test(start_paused = true)]
async fn a_config_short_everywhere_backs_off_instead_of_looping() {
    let config = two_offerings(2);
    let (scaler, cloud) = world(&config);
    cloud.short.lock().unwrap().push(1);
    run(&scaler, &cloud.inner, 600).await;
    let creates = cloud.creates.lock().unwrap().len();
    // Without backoff a 10 s tick would ask 2 servers × 2 offerings × 60 ticks = 240 times.
    assert!(
        creates <= 12,
        "{creates} create calls in 10 minutes with every offering short: a create loop"
    );
    assert!(scaler.servers().is_empty());
    assert!(
        scaler
            .servers()
            .iter()
            .all(|s| s.state != ServerState::Running)
    );
}

#[tokio::test(start_paused = true)]
async fn a_config_short_of_every_offering_spills_its_share_to_the_next_config() {
    // Config `a` on a region short of both its offerings; config `b` on another provider. The
    // demand policy's target (at least `a`'s own minimum of 4) moves to `b` once `a` backs off.
    let text = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10
startup_script = "{checkin_jwt}"
boot_latency = { fixed = 60 }
checkin_delay = { fixed = 30 }
alternatives = [{ name = "zone-b" }]

[[vm_providers]]
provider = "memory"
name = "other"
max_instances = 10
startup_script = "{checkin_jwt}"
boot_latency = { fixed = 60 }
checkin_delay = { fixed = 30 }

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "a"
vm_provider_config_id = "mem"
connection_type = "RDP"
max_simultaneous_sessions_per_server = 4
reusable = true
minimum_pool_standby_sessions = 4
standby_policy = "demand"
require_checkin = true

[[pools.autoscale]]
autoscale_config_name = "b"
vm_provider_config_id = "other"
connection_type = "RDP"
max_simultaneous_sessions_per_server = 4
reusable = true
minimum_pool_standby_sessions = 0
standby_policy = "demand"
require_checkin = true
"#;
    let config = kasm_scale_core::load_str(text, kasm_scale_core::Format::Toml)
        .unwrap()
        .config;
    let memory = |i: usize| {
        let VmProviderConfig::Memory(mem) = config.vm_providers[i].clone() else {
            panic!("memory providers")
        };
        Arc::new(MemoryCloud::new(mem, 7))
    };
    let short = Arc::new(ShortOf::new(memory(0), &[0, 1]));
    let other = memory(1);
    let scaler = Autoscaler::builder(config.clone())
        .provider(short.clone())
        .provider(other.clone())
        .seed(7)
        .epoch("2026-12-07T08:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    for _ in 0..60 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &short.inner).await;
        deliver_checkins(&scaler, &other).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let servers = scaler.servers();
    assert!(
        servers.iter().all(|s| s.config == "b"),
        "only `b` holds servers: {servers:#?}"
    );
    let free: u32 = servers
        .iter()
        .filter(|s| s.state == ServerState::Running)
        .map(|s| s.capacity - s.sessions)
        .sum();
    assert!(
        free >= 4,
        "`b` holds `a`'s share of 4 free slots: {servers:#?}"
    );
    let asked = short.creates.lock().unwrap().len();
    assert!(
        asked <= 12,
        "{asked} create calls to the short region in 10 minutes"
    );
}
