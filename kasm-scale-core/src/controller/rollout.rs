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
            // Resumed means try now: the failures that paused it do not hold back the next try.
            bk.consecutive_failures = 0;
            bk.last_failure_at = None;
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

/// Before a tick's plan: the generations this controller plans with, against those the last
/// acting controller planned with (saved). A difference is told (a reload, or a replica taking
/// over with another file than its leader had: it acts on its own, and a rollout follows) and
/// the saved ones become these. The records are taken mutably only on a difference.
pub(crate) fn note_generations(shared: &super::Shared) {
    let setup = shared.setup();
    let differs = {
        let records = shared.state.records();
        setup.generations.len() != records.acted_generations.len()
            || setup
                .generations
                .iter()
                .any(|(name, g)| records.acted_generations.get(name) != Some(g))
    };
    if !differs {
        return;
    }
    let mut notes = Vec::new();
    {
        let mut records = shared.state.records();
        for (pool, config) in setup.config.autoscale_configs() {
            let name = &config.autoscale_config_name;
            let (Some(now), Some(before)) = (
                setup.generations.get(name),
                records.acted_generations.get(name),
            ) else {
                continue;
            };
            if now != before {
                tracing::warn!(config = %name, %before, %now, "acting on another generation than the last plan");
                notes.push(Event::Note {
                    pool: pool.server_pool_name.clone(),
                    text: format!(
                        "{name}: acting on generation {now}; the last plan (of this or another replica) used {before}: a reload, or replicas whose configuration files differ (every replica must load the same file)"
                    ),
                });
            }
        }
        records.acted_generations = setup
            .generations
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
    }
    shared.events.tell(notes);
}
