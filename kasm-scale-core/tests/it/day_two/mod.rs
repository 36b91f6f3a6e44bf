//! Day-two operations on a running controller (tokio's paused clock, the in-memory cloud):
//! reloads, rollouts, drains and user affinity.

mod affinity;
mod drain;
mod hostnames;
mod reload;

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, MemoryVmConfig, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, Event, SessionId, SessionOutcome};
use kasm_scale_core::engine::{ServerId, ServerState, SessionRequest};
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::traits::StateStore;
use tokio::sync::broadcast;

use crate::fixture::Fixture;

/// A pool `p` of config `c` on the in-memory cloud `mem`: servers boot in 60 s and check in 30 s
/// later; one session each, reusable; two free slots kept.
pub(crate) fn fixture() -> Fixture {
    Fixture::memory_pool("p")
        .boot_latency(60)
        .checkin_delay(30)
        .minimum_standby(2)
        .require_checkin(true)
        .checkin_timeout(600)
        .downscale_backoff(600)
        .autoscale("reusable", true)
}

/// A controller and its cloud.
pub(crate) struct World {
    pub scaler: Autoscaler,
    pub cloud: Arc<MemoryCloud>,
    pub events: broadcast::Receiver<Event>,
}

pub(crate) fn memory(config: &Config) -> MemoryVmConfig {
    match config.vm_providers[0].clone() {
        VmProviderConfig::Memory(m) => m,
        other => panic!("not a memory provider: {other:?}"),
    }
}

pub(crate) fn world(config: Config, seed: u64) -> World {
    world_on(config, seed, None)
}

/// A controller on `store` (a fresh memory store without one).
pub(crate) fn world_on(config: Config, seed: u64, store: Option<Arc<dyn StateStore>>) -> World {
    let cloud = Arc::new(MemoryCloud::new(memory(&config), seed));
    let mut builder = Autoscaler::builder(config)
        .provider(cloud.clone())
        .seed(seed)
        .epoch("2026-11-30T12:00:00Z".parse().unwrap());
    if let Some(store) = store {
        builder = builder.store(store);
    }
    let scaler = builder.build().unwrap();
    let events = scaler.subscribe();
    World {
        scaler,
        cloud,
        events,
    }
}

impl World {
    /// Ticks every 10 s for `seconds`, delivering the guests' check-ins as they fall due.
    pub async fn run(&self, seconds: u64) {
        for _ in 0..seconds / 10 {
            self.step().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.step().await;
    }

    /// One tick, its work settled and the check-ins due delivered.
    pub async fn step(&self) {
        self.scaler.tick().await;
        self.scaler.settle().await;
        deliver_checkins(&self.scaler, &self.cloud).await;
    }

    /// Servers not being destroyed, by id.
    pub fn live(&self) -> Vec<ServerId> {
        self.scaler
            .servers()
            .iter()
            .filter(|s| s.state != ServerState::Destroying)
            .map(|s| s.id)
            .collect()
    }

    /// Ready servers with no session.
    pub fn free(&self) -> u32 {
        self.scaler
            .servers()
            .iter()
            .filter(|s| s.state == ServerState::Running && s.checked_in_at.is_some())
            .map(|s| s.capacity.saturating_sub(s.sessions))
            .sum()
    }

    /// A session for `user` in `pool`, which must be seated at once.
    pub async fn seat(&self, pool: &str, user: &str) -> (SessionId, ServerId) {
        let request = SessionRequest {
            user: Some(user.into()),
            ..SessionRequest::default()
        };
        match self.scaler.request_session(pool, &request).await.unwrap() {
            SessionOutcome::Assigned { session, server } => (session, server),
            other => panic!("{user} was not seated at once: {other:?}"),
        }
    }

    /// The events told since the last call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}
