//! Drains *(ours)*: an operator takes a server, an auto-scale config or a pool out of service.
//! A drained server takes no new session (a user's reconnect to their own session still goes to
//! it), its slots stop counting as free so the pool makes replacements, and it is destroyed when
//! empty, or kept for maintenance. Every drain records who asked, why and until when; a drain
//! with an expiry ends by itself, and nothing stays drained by a failure: a drain whose server
//! is gone, or whose config or pool is gone with all its servers, is removed.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::events::{ControllerError, Event};
use super::records::{Records, ServerInfo};
use super::{Autoscaler, state};
use crate::config::Config;
use crate::engine::{DrainThen, ServerId};

/// The longest `by` and `reason` of a drain, in characters.
pub const MAX_DRAIN_TEXT: usize = 512;

/// What a drain covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum DrainTarget {
    /// One server.
    Server(ServerId),
    /// Every server of an auto-scale config (by `autoscale_config_name`).
    Config(String),
    /// Every server of a pool (by `server_pool_name`).
    Pool(String),
}

impl DrainTarget {
    /// The key the drain is kept under (`server:<id>`, `config:<name>`, `pool:<name>`).
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Whether it covers `server`.
    pub fn covers(&self, server: &ServerInfo) -> bool {
        match self {
            DrainTarget::Server(id) => *id == server.id,
            DrainTarget::Config(name) => *name == server.config,
            DrainTarget::Pool(name) => *name == server.pool,
        }
    }
}

impl fmt::Display for DrainTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainTarget::Server(id) => write!(f, "server:{id}"),
            DrainTarget::Config(name) => write!(f, "config:{name}"),
            DrainTarget::Pool(name) => write!(f, "pool:{name}"),
        }
    }
}

/// A drain an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRequest {
    /// What to drain.
    pub target: DrainTarget,
    /// Who asks (a person or a system), 1 to [`MAX_DRAIN_TEXT`] characters.
    pub by: String,
    /// Why, 1 to [`MAX_DRAIN_TEXT`] characters.
    pub reason: String,
    /// When the drain ends by itself; `None`: when undrained.
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// What becomes of its servers once empty (default: destroyed).
    #[serde(default)]
    pub then: DrainThen,
}

/// A drain in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// What it covers.
    pub target: DrainTarget,
    /// Who asked.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
    /// When it ends by itself, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// What becomes of its servers once empty.
    pub then: DrainThen,
}

/// What a server's drains make of it: `Keep` over `Destroy` (a host under maintenance is never
/// destroyed because its pool is drained too); `None` when no drain covers it.
pub(crate) fn drained(drains: &BTreeMap<String, Drain>, server: &ServerInfo) -> Option<DrainThen> {
    let mut then = None;
    for drain in drains.values().filter(|d| d.target.covers(server)) {
        then = match (then, drain.then) {
            (_, DrainThen::Keep) | (Some(DrainThen::Keep), _) => Some(DrainThen::Keep),
            _ => Some(DrainThen::Destroy),
        };
    }
    then
}

/// Checks `request` against the configuration and the records; the drain to keep.
fn check(
    request: DrainRequest,
    config: &Config,
    records: &Records,
    now: Timestamp,
) -> Result<Drain, ControllerError> {
    let invalid = |why: String| Err(ControllerError::InvalidDrain(why));
    for (field, text) in [("by", &request.by), ("reason", &request.reason)] {
        let length = text.chars().count();
        if text.trim().is_empty() || length > MAX_DRAIN_TEXT {
            return invalid(format!(
                "`{field}` must be 1 to {MAX_DRAIN_TEXT} characters, got {length}"
            ));
        }
        if text.chars().any(char::is_control) {
            return invalid(format!("`{field}` must not hold control characters"));
        }
    }
    if let Some(until) = request.until
        && until <= now
    {
        return invalid(format!("`until` {until} is not after now ({now})"));
    }
    match &request.target {
        DrainTarget::Server(id) if !records.servers.contains_key(id) => {
            return Err(ControllerError::UnknownServer(*id));
        }
        DrainTarget::Config(name)
            if !config
                .autoscale_configs()
                .any(|(_, c)| c.autoscale_config_name == *name) =>
        {
            return Err(ControllerError::UnknownConfig(name.clone()));
        }
        DrainTarget::Pool(name) if config.pool(name).is_none() => {
            return Err(ControllerError::UnknownPool(name.clone()));
        }
        _ => {}
    }
    Ok(Drain {
        target: request.target,
        by: request.by.trim().to_owned(),
        reason: request.reason.trim().to_owned(),
        since: now,
        until: request.until,
        then: request.then,
    })
}

/// The drains that end now, by key, with why: expired ones, those of a server that is gone, and
/// those of a config or pool that is neither configured nor holds a server.
fn ending(config: &Config, records: &Records, now: Timestamp) -> Vec<(String, String)> {
    let why = |d: &Drain| -> Option<String> {
        if d.until.is_some_and(|u| u <= now) {
            return Some("its time ran out".into());
        }
        let held = || records.servers.values().any(|s| d.target.covers(s));
        match &d.target {
            DrainTarget::Server(id) if !records.servers.contains_key(id) => {
                Some("its server is gone".into())
            }
            DrainTarget::Config(name)
                if !held()
                    && !config
                        .autoscale_configs()
                        .any(|(_, c)| c.autoscale_config_name == *name) =>
            {
                Some("its config was removed and has no server left".into())
            }
            DrainTarget::Pool(name) if !held() && config.pool(name).is_none() => {
                Some("its pool was removed and has no server left".into())
            }
            _ => None,
        }
    };
    records
        .drains
        .iter()
        .filter_map(|(key, d)| why(d).map(|w| (key.clone(), w)))
        .collect()
}

/// Step 1 of a tick: the drains that end now go (the records are taken mutably only when one
/// does), each told as [`Event::Undrained`].
pub(crate) fn expire(shared: &super::Shared, now: Timestamp) {
    let setup = shared.setup();
    let ended: Vec<(Drain, String)> = {
        let mut records = shared.state.records();
        let ending = ending(&setup.config, &records, now);
        if ending.is_empty() {
            return;
        }
        ending
            .into_iter()
            .filter_map(|(key, why)| records.drains.remove(&key).map(|d| (d, why)))
            .collect()
    };
    for (drain, why) in ended {
        tracing::info!(target = %drain.target, by = %drain.by, %why, "drain ended");
        shared.events.emit(Event::Undrained {
            target: drain.target,
            reason: why,
        });
    }
}

impl Autoscaler {
    /// Drains a server, an auto-scale config or a pool (see the module documentation of
    /// `drain.rs`, and `docs/service.md`). Draining a target again replaces its drain (a new
    /// reason, expiry or `then`). The drain is saved before this returns.
    pub async fn drain(&self, request: DrainRequest) -> Result<Drain, ControllerError> {
        self.shared.clock.acting()?;
        self.start().await?;
        let now = self.shared.clock.now();
        let setup = self.shared.setup();
        let drain = {
            let mut records = self.shared.state.records();
            let drain = check(request, &setup.config, &records, now)?;
            records.drains.insert(drain.target.key(), drain.clone());
            drain
        };
        tracing::info!(target = %drain.target, by = %drain.by, reason = %drain.reason, then = ?drain.then, until = ?drain.until, "drained");
        // Told once saved: a broker is never told of a drain the store may not hold.
        state::saved(&self.shared).await?;
        metrics::counter!("kasm_scale_drains_total").increment(1);
        self.shared.events.emit(Event::Drained {
            drain: drain.clone(),
        });
        Ok(drain)
    }

    /// Ends the drain of `target`; returns it. Its servers take sessions again (and the rules
    /// scale them as any other).
    pub async fn undrain(&self, target: &DrainTarget) -> Result<Drain, ControllerError> {
        self.shared.clock.acting()?;
        self.start().await?;
        let drain = {
            let mut records = self.shared.state.records();
            if !records.drains.contains_key(&target.key()) {
                return Err(ControllerError::NotDrained(target.clone()));
            }
            records.drains.remove(&target.key())
        }
        .ok_or_else(|| ControllerError::NotDrained(target.clone()))?;
        tracing::info!(target = %drain.target, "undrained");
        state::saved(&self.shared).await?;
        self.shared.events.emit(Event::Undrained {
            target: drain.target.clone(),
            reason: "undrained".into(),
        });
        Ok(drain)
    }

    /// Every drain in force, by target.
    pub fn drains(&self) -> Vec<Drain> {
        self.shared
            .state
            .records()
            .drains
            .values()
            .cloned()
            .collect()
    }
}
