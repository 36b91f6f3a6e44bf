//! Replicas in one process: each with its own connections to one database, its own controller
//! and lease keeper, all on one in-memory cloud and directory (the "real" world they share).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kasm_scale_core::config::{Config, PostgresStoreConfig, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, ControllerError, Event, Role, SessionOutcome};
use kasm_scale_core::engine::SessionRequest;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory};
use kasm_scale_core::token::TokenKeys;
use kasm_scale_postgres::{LeaseKeeper, LeaseOptions, PostgresStore};
use tokio::task::JoinHandle;

use kasm_scale_core::testkit::Fixture;

/// At most this many VMs (the provider's `max_instances`).
pub const MAX_INSTANCES: usize = 8;

/// The configuration the replicas share.
pub fn config() -> Config {
    Fixture::memory_pool("p")
        .max_instances(MAX_INSTANCES as i64)
        .active_directory()
        .autoscale("max_simultaneous_sessions_per_server", 2)
        .autoscale("reusable", true)
        .minimum_standby(2)
        .require_checkin(false)
        .downscale_backoff(1)
        .config()
}

/// The world the replicas share: one cloud, one directory, one token key.
pub struct World {
    pub cloud: Arc<MemoryCloud>,
    pub directory: Arc<MemoryDirectory>,
    pub keys: TokenKeys,
    /// Every event of every replica: when, which replica, what.
    pub log: Arc<Mutex<Vec<(Instant, usize, Event)>>>,
}

impl World {
    /// A cloud whose VMs boot in `boot` (real time), deterministic for `seed`.
    pub fn new(seed: u64, boot: Duration) -> Self {
        let VmProviderConfig::Memory(mut mem) = config().vm_providers[0].clone() else {
            panic!("the test config has a memory provider")
        };
        mem.boot_latency = kasm_scale_core::config::Distribution::Fixed(boot.as_secs_f64());
        Self {
            cloud: Arc::new(MemoryCloud::new(mem, seed)),
            directory: Arc::new(MemoryDirectory::new("ad", "example.local", seed)),
            keys: TokenKeys::generate().expect("a token key"),
            log: Arc::default(),
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<(Instant, usize, Event)> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One replica.
pub struct Replica {
    pub index: usize,
    pub scaler: Autoscaler,
    pub store: Arc<PostgresStore>,
    keeper: Option<LeaseKeeper>,
    run: JoinHandle<()>,
    listen: JoinHandle<()>,
}

impl Replica {
    /// Starts replica `index` on `database`: a follower until its keeper takes the lease.
    pub async fn start(
        index: usize,
        world: &World,
        database: &PostgresStoreConfig,
        ttl: Duration,
        tick: Duration,
    ) -> Self {
        let store = Arc::new(
            PostgresStore::connect(database)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let scaler = Autoscaler::builder(config())
            .provider(world.cloud.clone())
            .directory(world.directory.clone())
            .store(store.clone())
            .tokens(world.keys.clone())
            .role(Role::Follower { leader: None })
            .tick_interval(tick)
            .reconcile_every(5)
            .orphan_grace(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut events = scaler.subscribe();
        let log = world.log.clone();
        let listen = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => log.lock().unwrap_or_else(|e| e.into_inner()).push((
                        Instant::now(),
                        index,
                        e,
                    )),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
        let run = tokio::spawn({
            let scaler = scaler.clone();
            async move { scaler.run(std::future::pending()).await }
        });
        let keeper = LeaseKeeper::start(
            scaler.clone(),
            store.clone(),
            LeaseOptions::new(ttl, format!("http://replica-{index}")),
        );
        Self {
            index,
            scaler,
            store,
            keeper: Some(keeper),
            run,
            listen,
        }
    }

    /// Whether it acts now.
    pub fn leads(&self) -> bool {
        self.scaler.role().acts()
    }

    /// Dies as a SIGKILL would end it: nothing more runs, nothing is released or saved; its
    /// connections close (so the database rolls back what it had begun).
    pub fn kill(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        self.run.abort();
        self.listen.abort();
    }

    /// Stops as `serve` does at SIGTERM: last save, then the lease is released.
    pub async fn stop(mut self) {
        self.run.abort();
        self.scaler.settle().await;
        self.scaler.save().await;
        if let Some(keeper) = self.keeper.take() {
            keeper.shutdown().await;
        }
        self.listen.abort();
    }
}

/// Asks the replicas for a session until one that leads answers (a broker behind a load
/// balancer that retries on 503), for at most `patience`.
pub async fn request(replicas: &[Replica], patience: Duration) -> Option<(usize, SessionOutcome)> {
    let until = Instant::now() + patience;
    while Instant::now() < until {
        for r in replicas {
            match r
                .scaler
                .request_session("p", &SessionRequest::default())
                .await
            {
                Ok(outcome) => return Some((r.index, outcome)),
                Err(ControllerError::NotLeader { .. }) => {}
                Err(e) => panic!("replica {}: {e}", r.index),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Waits until one of `replicas` leads, for at most `patience`: its index in the slice.
pub async fn leader(replicas: &[Replica], patience: Duration) -> Option<usize> {
    let until = Instant::now() + patience;
    while Instant::now() < until {
        if let Some(i) = replicas.iter().position(Replica::leads) {
            return Some(i);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
