//! Read-only views for a broker's API and dashboards: each pool's capacity, where a waiting
//! request stands, where a session runs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Autoscaler;
use super::records::{ServerInfo, SessionId};
use crate::engine::{ServerId, ServerState};

/// One pool as it stands: servers by state and session slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    /// `server_pool_name`.
    pub pool: String,
    /// Servers by state (`provisioning`, `starting`, `running`, `destroying`, `stopping`,
    /// `stopped`).
    pub servers: BTreeMap<String, u32>,
    /// Sessions seated on its servers.
    pub used_sessions: u32,
    /// Free slots on ready servers (a request is seated at once while this is above 0).
    pub free_sessions: u32,
    /// Slots on servers being created or booting (free once they are ready); servers built for
    /// the warm tier are not counted (they are stopped once ready).
    pub starting_sessions: u32,
    /// (ours) Slots on the warm tier's stopped servers (free a start later).
    pub warm_sessions: u32,
    /// (ours) Room on servers that take no new session: drained ones, and those of configs
    /// the configuration no longer has (not in `free_sessions`).
    pub drained_sessions: u32,
    /// Requests waiting for a slot.
    pub waiting: u32,
}

/// (ours) What one pool's servers cost per hour now ([`Autoscaler::spend`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolSpend {
    /// `server_pool_name`.
    pub pool: String,
    /// The sum of its VMs' prices per hour (running or stopped).
    pub per_hour: f64,
    /// Its VMs whose price is not configured (not in `per_hour`).
    pub unpriced: u32,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionStatus {
    /// Seated on a server.
    Assigned {
        /// The server.
        server: ServerId,
    },
    /// Waiting for a slot.
    Queued {
        /// Its place in its pool's queue (1: next).
        position: usize,
    },
}

impl Autoscaler {
    /// Every configured pool (and any pool that still has servers), by name.
    pub fn pools(&self) -> Vec<PoolStatus> {
        let mut out: BTreeMap<String, PoolStatus> = self
            .shared
            .setup()
            .config
            .pools
            .iter()
            .map(|p| {
                let status = PoolStatus {
                    pool: p.server_pool_name.clone(),
                    ..PoolStatus::default()
                };
                (p.server_pool_name.clone(), status)
            })
            .collect();
        let setup = self.shared.setup();
        let records = self.shared.state.records();
        for s in records.servers.values() {
            let p = out.entry(s.pool.clone()).or_insert_with(|| PoolStatus {
                pool: s.pool.clone(),
                ..PoolStatus::default()
            });
            *p.servers.entry(s.state.as_str().to_owned()).or_default() += 1;
            p.used_sessions += s.sessions;
            let room = if s.sessions_unknown {
                0
            } else {
                s.capacity.saturating_sub(s.sessions)
            };
            let retired = !setup.generations.contains_key(&s.config)
                && !setup
                    .config
                    .autoscale_configs()
                    .any(|(_, c)| c.autoscale_config_name == s.config);
            if retired || super::drain::drained(&records.drains, s).is_some() {
                if s.state != ServerState::Destroying {
                    p.drained_sessions += room;
                }
                continue;
            }
            match s.state {
                _ if s.for_warm => {}
                ServerState::Running if s.reusable || !s.used => p.free_sessions += room,
                ServerState::Provisioning | ServerState::Starting => p.starting_sessions += room,
                ServerState::Stopped => p.warm_sessions += room,
                _ => {}
            }
        }
        for (pool, queue) in &records.queued {
            if let Some(p) = out.get_mut(pool) {
                p.waiting = u32::try_from(queue.len()).unwrap_or(u32::MAX);
            }
        }
        out.into_values().collect()
    }

    /// (ours) What each pool's servers cost per hour now, by the prices of their VM provider
    /// configs' offerings: running (and booting, stopping, being destroyed) VMs at
    /// `price_per_hour`, stopped ones at `stopped_price_per_hour`. A server not yet given a VM
    /// costs nothing; a VM whose price is not configured is counted in `unpriced`.
    pub fn spend(&self) -> Vec<PoolSpend> {
        let setup = self.shared.setup();
        let mut prices: BTreeMap<&str, Vec<crate::config::Offering>> = BTreeMap::new();
        for p in &setup.config.vm_providers {
            prices.insert(p.name(), p.offerings());
        }
        let mut out: BTreeMap<String, PoolSpend> = setup
            .config
            .pools
            .iter()
            .map(|p| {
                let pool = p.server_pool_name.clone();
                (
                    pool.clone(),
                    PoolSpend {
                        pool,
                        ..PoolSpend::default()
                    },
                )
            })
            .collect();
        let records = self.shared.state.records();
        for s in records.servers.values().filter(|s| s.vm_id.is_some()) {
            let spend = out.entry(s.pool.clone()).or_insert_with(|| PoolSpend {
                pool: s.pool.clone(),
                ..PoolSpend::default()
            });
            let offering = prices
                .get(s.provider.as_str())
                .and_then(|o| o.get(s.offering as usize));
            let price = match s.state {
                ServerState::Stopped => offering.and_then(|o| o.stopped_price_per_hour),
                _ => offering.and_then(|o| o.price_per_hour),
            };
            match price {
                Some(p) => spend.per_hour += p,
                None => spend.unpriced += 1,
            }
        }
        out.into_values().collect()
    }

    /// (ours) The offerings skipped now after answering "insufficient capacity", as (VM
    /// provider config, offering label, until when).
    pub fn skipped_offerings(&self) -> Vec<(String, String, jiff::Timestamp)> {
        let setup = self.shared.setup();
        let now = self.shared.clock.now();
        self.shared
            .state
            .skipped
            .active(now)
            .into_iter()
            .map(|(provider, index, until)| {
                let label = setup
                    .config
                    .vm_provider(&provider)
                    .and_then(|p| p.offerings().into_iter().nth(index as usize))
                    .map_or_else(|| index.to_string(), |o| o.label);
                (provider, label, until)
            })
            .collect()
    }

    /// Where `session` is: on a server, or waiting (with its place); `None` when it ended,
    /// expired or never was.
    pub fn session(&self, session: SessionId) -> Option<SessionStatus> {
        self.shared.state.records().session_status(session)
    }

    /// One server, as [`Autoscaler::servers`] lists it; `None` when there is none of that id
    /// (a broker's lookup of a session's server copies that server only, not the fleet).
    pub fn server(&self, server: ServerId) -> Option<ServerInfo> {
        self.shared.state.records().servers.get(&server).cloned()
    }
}
