//! [`MemoryCloud`]: a `VmProvider` whose VMs live in this process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::usage::{Cost, Usage};
use super::{Bucket, sample};
use crate::config::{MemoryVmConfig, Offering, Outage, VmProviderConfig};
use crate::engine::ServerId;
use crate::secret::Secret;
use crate::traits::{
    BackendError, Capabilities, Leftover, Owner, StopMode, Vm, VmProvider, VmSpec, VmState,
};

/// A server whose guest is due to check in: what its startup script received.
#[derive(Debug, Clone)]
pub struct Checkin {
    /// The server.
    pub server_id: ServerId,
    /// Its VM.
    pub vm_id: String,
    /// Its rendered startup script (which holds the check-in token). Secret.
    pub startup_script: Secret,
}

/// How long a stop takes: the VM is `Stopping` this long, then `Stopped`.
pub const STOP_LATENCY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a VM is on (booting, starting or running) or off (stopping, then stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Power {
    /// Pending until `running_at`, then running.
    On,
    /// Stopping until `at`, then stopped.
    Off {
        /// When it is stopped.
        at: Instant,
    },
}

#[derive(Debug)]
pub(super) struct MemVm {
    pub(super) vm: Vm,
    /// Its offering (index into the config's offerings).
    pub(super) offering: u32,
    pub(super) power: Power,
    /// When its last boot (create or start) is done.
    pub(super) running_at: Instant,
    /// When its guest checks in after its last boot (`None`: it does not).
    pub(super) checkin_at: Option<Instant>,
    pub(super) checked_in: bool,
    /// Its guest never checks in, at any boot (`never_checkin_rate`).
    pub(super) silent: bool,
    pub(super) script: Secret,
    /// Until when its time is in the cloud's usage.
    pub(super) billed_at: Instant,
}

impl MemVm {
    /// Its running and stopped time from `billed_at` to `now`, not yet in the usage.
    pub(super) fn unbilled(&self, now: Instant) -> (std::time::Duration, std::time::Duration) {
        let from = self.billed_at;
        if now <= from {
            return Default::default();
        }
        match self.power {
            Power::On => (now - from, std::time::Duration::ZERO),
            Power::Off { at } => {
                let edge = at.clamp(from, now);
                (edge - from, now - edge)
            }
        }
    }

    /// Whether it holds capacity of its offering at `now` (on, or still stopping).
    pub(super) fn holds_capacity(&self, now: Instant) -> bool {
        match self.power {
            Power::On => true,
            Power::Off { at } => now < at,
        }
    }
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) rng: ChaCha8Rng,
    pub(super) vms: BTreeMap<String, MemVm>,
    /// VM time up to each VM's `billed_at` (destroyed VMs' all of it).
    pub(super) usage: Usage,
    pub(super) bucket: Option<Bucket>,
    next_id: u64,
    creates: u64,
    destroys: u64,
    /// Successful creates per server id (a server created twice shows 2).
    created: BTreeMap<crate::engine::ServerId, u32>,
    /// Parts of VMs that outlived them (see [`MemoryCloud::leave_part`]).
    parts: BTreeMap<String, Leftover>,
}

/// An in-memory cloud for one VM provider config.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::config::VmProviderConfig;
/// use kasm_scale_core::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = load_str(
///     "[[vm_providers]]\nprovider = \"memory\"\nname = \"cloud\"\nmax_instances = 4\nboot_latency = { fixed = 60 }\n",
///     Format::Toml,
/// )?
/// .config;
/// let VmProviderConfig::Memory(memory) = config.vm_providers[0].clone() else { unreachable!() };
/// let cloud = MemoryCloud::new(memory, 42); // the seed drives every random choice
/// let spec = VmSpec {
///     owner: Owner {
///         owner_id: "broker-eu-1".into(), // what a restarted controller adopts
///         pool: "desktops".into(),
///         config: "desktops-cloud".into(),
///         server_id: ServerId(uuid::Uuid::from_u128(1)),
///     },
///     hostname: "KASM-0000000001".into(),
///     startup_script: Secret::new("#!/bin/sh\n"),
///     offering: 0,
/// };
/// let vm = cloud.create(&spec).await?;
/// assert_eq!(vm.state, VmState::Pending);
/// tokio::time::sleep(std::time::Duration::from_secs(61)).await; // tokio's clock
/// assert_eq!(cloud.get(&vm.vm_id).await?.unwrap().state, VmState::Running);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryCloud {
    pub(super) config: MemoryVmConfig,
    /// When the cloud was made: its outages count from here.
    created: Instant,
    /// Shared by the clouds [`MemoryCloud::with_config`] makes of it: one cloud.
    inner: std::sync::Arc<Mutex<Inner>>,
}

impl MemoryCloud {
    /// A cloud with the latencies, failure rates and outages of `config`, deterministic for
    /// `seed`. Its outages count from now (tokio's clock).
    pub fn new(config: MemoryVmConfig, seed: u64) -> Self {
        let bucket = config.rate_limit_per_second.map(Bucket::new);
        let inner = Inner {
            rng: ChaCha8Rng::seed_from_u64(seed),
            vms: BTreeMap::new(),
            bucket,
            usage: Usage::default(),
            next_id: 0,
            creates: 0,
            created: BTreeMap::new(),
            destroys: 0,
            parts: BTreeMap::new(),
        };
        Self {
            config,
            created: Instant::now(),
            inner: std::sync::Arc::new(Mutex::new(inner)),
        }
    }

    /// The same cloud (its VMs, randomness, counters and clock) serving `config` from now on:
    /// the provider a reload brings for a changed memory VM provider config. The VMs made
    /// before stay as they were made.
    pub fn with_config(&self, config: MemoryVmConfig) -> Self {
        Self {
            config,
            created: self.created,
            inner: self.inner.clone(),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep going with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The servers whose guests check in now (each reported once), oldest first.
    pub fn due_checkins(&self) -> Vec<Checkin> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut due: Vec<(Instant, Checkin)> = inner
            .vms
            .values_mut()
            .filter(|m| {
                m.power == Power::On && !m.checked_in && m.checkin_at.is_some_and(|t| t <= now)
            })
            .map(|m| {
                m.checked_in = true;
                let c = Checkin {
                    server_id: m.vm.owner.server_id,
                    vm_id: m.vm.vm_id.clone(),
                    startup_script: m.script.clone(),
                };
                (m.checkin_at.unwrap_or(now), c)
            })
            .collect();
        due.sort_by_key(|(t, c)| (*t, c.server_id));
        due.into_iter().map(|(_, c)| c).collect()
    }

    /// When the next guest checks in, VM finishes booting or starting, or VM is stopped, if
    /// any is pending.
    pub fn next_event(&self) -> Option<Instant> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .vms
            .values()
            .flat_map(|m| match m.power {
                Power::On => [Some(m.running_at), m.checkin_at.filter(|_| !m.checked_in)],
                Power::Off { at } => [Some(at), None],
            })
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// Stops a VM as its guest shutting down from inside would (EC2's default shutdown
    /// behaviour): it is stopped at once and stays so until it is destroyed or started.
    /// Returns whether it existed. (The provider's own stop, which a controller calls, is
    /// [`VmProvider::stop`]: `VmProvider::stop(&cloud, vm_id, mode)`.)
    pub fn stop(&self, vm_id: &str) -> bool {
        let now = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(m) = inner.vms.get_mut(vm_id) else {
            return false;
        };
        let (running, stopped) = m.unbilled(now);
        inner.usage.add(m.offering, running, stopped);
        m.billed_at = now;
        if m.power == Power::On {
            m.power = Power::Off { at: now };
        }
        true
    }

    /// VM time per offering since the cloud was made, up to now (tokio's clock): pending,
    /// running and stopping VMs count as running, stopped ones as stopped, destroyed ones until
    /// their destroy. Shared with the clouds [`MemoryCloud::with_config`] makes of it.
    pub fn usage(&self) -> Usage {
        let now = Instant::now();
        let inner = self.lock();
        let mut usage = inner.usage.clone();
        for m in inner.vms.values() {
            let (running, stopped) = m.unbilled(now);
            usage.add(m.offering, running, stopped);
        }
        usage
    }

    /// Its offerings, with their prices (those of the config it serves now).
    pub fn offerings(&self) -> Vec<Offering> {
        VmProviderConfig::Memory(self.config.clone()).offerings()
    }

    /// What [`MemoryCloud::usage`] costs at the prices of [`MemoryCloud::offerings`]; `None`
    /// when time was used whose price is not set (see [`Usage::cost`]).
    pub fn cost(&self) -> Option<Cost> {
        self.usage().cost(&self.offerings())
    }

    /// VMs per offering just before now, `[running, stopped]` (running: pending, running or
    /// stopping): what they were in the stretch of time that ends now. For the simulator's
    /// cost metrics.
    #[cfg(feature = "sim")]
    pub(crate) fn power_counts(&self) -> BTreeMap<u32, [u64; 2]> {
        let now = Instant::now();
        let mut out: BTreeMap<u32, [u64; 2]> = BTreeMap::new();
        for m in self.lock().vms.values() {
            let stopped = matches!(m.power, Power::Off { at } if at < now);
            out.entry(m.offering).or_default()[usize::from(stopped)] += 1;
        }
        out
    }

    /// Stopped VMs now.
    pub fn stopped_count(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .vms
            .values()
            .filter(|m| matches!(m.power, Power::Off { at } if at <= now))
            .count()
    }

    /// The offering a VM was created from, while it exists.
    pub fn offering_of(&self, vm_id: &str) -> Option<u32> {
        self.lock().vms.get(vm_id).map(|m| m.offering)
    }

    /// Offering `i`'s capacity and outages (0: the config's own; `i`: `alternatives[i - 1]`),
    /// `None` for an offering the config does not have.
    pub(super) fn limits(&self, i: u32) -> Option<(Option<u32>, &[Outage], String)> {
        if i == 0 {
            return Some((self.config.capacity, &self.config.outages, "primary".into()));
        }
        let a = self.config.alternatives.get(i as usize - 1)?;
        let label = a.name.clone().unwrap_or_else(|| format!("alternative-{i}"));
        Some((a.capacity, &a.outages, label))
    }

    /// Why offering `i` takes no VM now (`except` left out of the count: the VM being
    /// started), if it does not: at its capacity, or in an outage.
    pub(super) fn short_of(
        &self,
        inner: &Inner,
        i: u32,
        except: Option<&str>,
        now: Instant,
    ) -> Option<BackendError> {
        let (capacity, outages, label) = self.limits(i)?;
        if let Some(cap) = capacity {
            let holding = inner
                .vms
                .iter()
                .filter(|(id, m)| {
                    m.offering == i && Some(id.as_str()) != except && m.holds_capacity(now)
                })
                .count();
            if holding >= cap as usize {
                return Some(BackendError::Capacity(format!(
                    "offering `{label}` of the region holds at most {cap} VMs"
                )));
            }
        }
        let since = now.duration_since(self.created).as_secs_f64();
        outages.iter().find(|o| o.covers(since)).map(|o| {
            BackendError::Capacity(format!(
                "offering `{label}` of the region is out (an outage of {} s from {} s after \
                 the start)",
                o.duration, o.start
            ))
        })
    }

    /// Leaves a part of `owner`'s VM behind without the VM (as an Azure NIC or disk outlives
    /// a create that failed half-way) and returns its id. It is listed by
    /// [`VmProvider::list_leftovers`] while no VM of that server exists.
    pub fn leave_part(&self, owner: Owner, kind: &str) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = format!("mem-part-{:08}", inner.next_id);
        let part = Leftover {
            id: id.clone(),
            kind: kind.into(),
            owner,
        };
        inner.parts.insert(id.clone(), part);
        id
    }

    /// Ids of the parts left behind that still exist.
    pub fn parts(&self) -> Vec<String> {
        self.lock().parts.keys().cloned().collect()
    }

    /// The startup script VM `vm_id` received (what its guest reads after boot). Secret.
    pub fn startup_script(&self, vm_id: &str) -> Option<Secret> {
        self.lock().vms.get(vm_id).map(|m| m.script.clone())
    }

    /// Live VMs now.
    pub fn vm_count(&self) -> usize {
        self.lock().vms.len()
    }

    /// Server ids for which more than one VM was ever created (each with its count): a create
    /// is idempotent while the server's VM lives, so any entry means a server was created twice.
    pub fn created_twice(&self) -> Vec<(crate::engine::ServerId, u32)> {
        self.lock()
            .created
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (*id, *n))
            .collect()
    }

    /// Successful creates and destroys so far.
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.creates, inner.destroys)
    }

    pub(super) fn throttle(inner: &mut Inner) -> Result<(), BackendError> {
        match inner.bucket.as_mut().map(Bucket::take) {
            Some(Err(wait)) => Err(BackendError::RateLimited {
                message: "request limit exceeded".into(),
                retry_after: Some(wait),
            }),
            _ => Ok(()),
        }
    }

    fn state(m: &MemVm, now: Instant) -> VmState {
        match m.power {
            Power::Off { at } if now >= at => VmState::Stopped,
            Power::Off { .. } => VmState::Stopping,
            Power::On if now >= m.running_at => VmState::Running,
            Power::On => VmState::Pending,
        }
    }

    pub(super) fn snapshot(m: &MemVm, now: Instant) -> Vm {
        Vm {
            state: Self::state(m, now),
            ..m.vm.clone()
        }
    }
}

#[async_trait]
impl VmProvider for MemoryCloud {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_startup_script_bytes: None,
            retrieve_password: false,
            operation_timeout: None,
            stop_start: true,
            hibernate: false,
            resize_stopped: true,
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let now = Instant::now();
        let offerings = 1 + self.config.alternatives.len();
        if spec.offering as usize >= offerings {
            return Err(BackendError::InvalidRequest(format!(
                "{}: offering {} does not exist (the config has {offerings}: 0 to {})",
                self.config.name,
                spec.offering,
                offerings - 1
            )));
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(m) = inner
            .vms
            .values()
            .find(|m| m.vm.owner.server_id == spec.owner.server_id)
        {
            return Ok(Self::snapshot(m, now));
        }
        Self::throttle(inner)?;
        if let Some(e) = self.short_of(inner, spec.offering, None, now) {
            return Err(e);
        }
        if inner.rng.random::<f64>() < self.config.create_failure_rate {
            return Err(BackendError::Transient("injected create failure".into()));
        }
        inner.next_id += 1;
        inner.creates += 1;
        *inner.created.entry(spec.owner.server_id).or_default() += 1;
        let vm_id = format!("mem-{}-{:06}", self.config.name, inner.next_id);
        let running_at = now + sample(&self.config.boot_latency, &mut inner.rng);
        let silent = inner.rng.random::<f64>() < self.config.never_checkin_rate;
        let checkin_at =
            (!silent).then(|| running_at + sample(&self.config.checkin_delay, &mut inner.rng));
        let vm = Vm {
            vm_id: vm_id.clone(),
            owner: spec.owner.clone(),
            state: VmState::Pending,
            private_ip: Some(format!(
                "10.{}.{}.{}",
                inner.next_id >> 16 & 255,
                inner.next_id >> 8 & 255,
                inner.next_id & 255
            )),
            created_at: None,
        };
        let m = MemVm {
            vm,
            offering: spec.offering,
            power: Power::On,
            running_at,
            checkin_at,
            checked_in: false,
            silent,
            script: spec.startup_script.clone(),
            billed_at: now,
        };
        let out = Self::snapshot(&m, now);
        inner.vms.insert(vm_id, m);
        Ok(out)
    }

    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.vms.contains_key(vm_id) {
            return Ok(());
        }
        Self::throttle(inner)?;
        if inner.rng.random::<f64>() < self.config.destroy_failure_rate {
            return Err(BackendError::Transient("injected destroy failure".into()));
        }
        if let Some(m) = inner.vms.remove(vm_id) {
            let (running, stopped) = m.unbilled(Instant::now());
            inner.usage.add(m.offering, running, stopped);
        }
        inner.destroys += 1;
        Ok(())
    }

    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        self.power_off(vm_id, mode)
    }

    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        self.power_on(vm_id)
    }

    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        self.move_stopped(vm_id, offering)
    }

    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        let now = Instant::now();
        Ok(self.lock().vms.get(vm_id).map(|m| Self::snapshot(m, now)))
    }

    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        let mut guard = self.lock();
        Self::throttle(&mut guard)?;
        let inner = &*guard;
        Ok(inner
            .parts
            .values()
            .filter(|p| p.owner.owner_id == owner_id)
            .filter(|p| {
                !inner
                    .vms
                    .values()
                    .any(|m| m.vm.owner.server_id == p.owner.server_id)
            })
            .cloned()
            .collect())
    }

    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        let mut guard = self.lock();
        Self::throttle(&mut guard)?;
        guard.parts.remove(id);
        Ok(())
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        let now = Instant::now();
        let mut guard = self.lock();
        Self::throttle(&mut guard)?;
        Ok(guard
            .vms
            .values()
            .filter(|m| m.vm.owner.owner_id == owner_id)
            .map(|m| Self::snapshot(m, now))
            .collect())
    }
}
