//! Rollouts as a broker and an operator see them *(ours)*: each config's current generation,
//! its current and outdated servers, where its rollout stands, and the resume of a paused one.
//! The engine plans the rollout itself (see [`crate::engine`]).

use serde::Serialize;

use super::events::{ControllerError, Event, RolloutPhase};
use super::{Autoscaler, state};
use crate::config::Generation;
use crate::engine::{RolloutState, ServerState};

/// One auto-scale config's servers by generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationStatus {
    /// `server_pool_name`.
    pub pool: String,
    /// `autoscale_config_name`.
    pub config: String,
    /// Its current generation.
    pub generation: Option<Generation>,
    /// Live servers built from it.
    pub current: u32,
    /// Live servers built from an older one (the rollout replaces them).
    pub outdated: u32,
    /// Its last rollout, if any.
    pub rollout: Option<RolloutState>,
}

impl Autoscaler {
    /// Every configured auto-scale config with its current and outdated servers and its
    /// rollout (servers being destroyed are not counted).
    pub fn generations(&self) -> Vec<GenerationStatus> {
        let setup = self.shared.setup();
        let records = self.shared.state.records();
        setup
            .config
            .autoscale_configs()
            .map(|(pool, c)| {
                let name = &c.autoscale_config_name;
                let generation = setup.generations.get(name).copied();
                let (mut current, mut outdated) = (0, 0);
                for s in records.servers.values() {
                    if &s.config != name || s.state == ServerState::Destroying {
                        continue;
                    }
                    match (s.generation, generation) {
                        (Some(g), Some(now)) if g != now => outdated += 1,
                        _ => current += 1,
                    }
                }
                GenerationStatus {
                    pool: pool.server_pool_name.clone(),
                    config: name.clone(),
                    generation,
                    current,
                    outdated,
                    rollout: records
                        .bookkeeping
                        .get(name)
                        .and_then(|b| b.rollout.clone()),
                }
            })
            .collect()
    }

    /// Resumes the paused rollout of auto-scale config `config`: it builds servers of the new
    /// generation again, and only failures from now on pause it again. Returns its state.
    pub async fn resume_rollout(&self, config: &str) -> Result<RolloutState, ControllerError> {
        self.shared.clock.acting()?;
        self.start().await?;
        let setup = self.shared.setup();
        if !setup
            .config
            .autoscale_configs()
            .any(|(_, c)| c.autoscale_config_name == config)
        {
            return Err(ControllerError::UnknownConfig(config.into()));
        }
        let now = self.shared.clock.now();
        let resumed = {
            let mut records = self.shared.state.records();
            let paused = records
                .bookkeeping
                .get(config)
                .and_then(|b| b.rollout.as_ref())
                .is_some_and(|r| r.paused.is_some() && r.finished_at.is_none());
            if !paused {
                return Err(ControllerError::NotPaused(config.into()));
            }
            let bk = records.bookkeeping.entry(config.to_owned()).or_default();
            let rollout = bk
                .rollout
                .as_mut()
                .ok_or_else(|| ControllerError::NotPaused(config.into()))?;
            rollout.paused = None;
            rollout.failures_since = now;
            rollout.clone()
        };
        tracing::info!(config, generation = %resumed.generation, "rollout resumed");
        self.shared.events.emit(Event::Rollout {
            config: config.to_owned(),
            generation: resumed.generation,
            phase: RolloutPhase::Resumed,
            reason: "resumed by the operator".into(),
        });
        state::saved(&self.shared).await?;
        Ok(resumed)
    }
}
