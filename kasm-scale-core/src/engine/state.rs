//! The state file of `kasm-scale plan`: servers, queued requests and bookkeeping, as JSON.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    Bookkeeping, DrainThen, PoolSnapshot, ServerId, ServerSnapshot, ServerState, SnapshotBuilder,
};
use crate::config::{Config, Generation, Problem, fields};

/// What a broker knows between plans: its servers, the session requests waiting per pool, and
/// each config's bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Every server.
    #[serde(default)]
    pub servers: Vec<StateServer>,
    /// Session requests waiting for a slot, per pool name.
    #[serde(default)]
    pub pending_requests: BTreeMap<String, u32>,
    /// Bookkeeping per auto-scale config name (absent: fresh).
    #[serde(default)]
    pub bookkeeping: BTreeMap<String, Bookkeeping>,
    /// (ours) The current generation per auto-scale config name, 16 hex digits (absent: the
    /// one the configuration gives, [`Config::generation`]). A server whose `generation`
    /// differs is outdated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generations: BTreeMap<String, Generation>,
}

/// One server in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateServer {
    /// Its UUID.
    pub id: ServerId,
    /// Its `autoscale_config_name`.
    pub config: String,
    /// `provisioning`, `starting`, `running` or `destroying`.
    pub state: ServerState,
    /// Sessions on it now.
    #[serde(default, deserialize_with = "fields::non_negative_u32")]
    pub sessions: u32,
    /// Sessions it takes at most; default: its config's `max_simultaneous_sessions_per_server`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::opt_positive_u32"
    )]
    pub capacity: Option<u32>,
    /// Whether it is reusable; default: its config's `reusable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable: Option<bool>,
    /// Whether it has ever had a session. Default: whether it has one now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<bool>,
    /// When it was created (RFC 3339).
    pub created_at: Timestamp,
    /// When it checked in (RFC 3339), or null.
    #[serde(default)]
    pub checked_in_at: Option<Timestamp>,
    /// Slots the plan that made it gave to waiting session requests (they take them first).
    /// Default: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queue_slots: u32,
    /// (ours) The generation it was built from, 16 hex digits; absent: unknown (never
    /// outdated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<Generation>,
    /// (ours) `"destroy"` or `"keep"` when it is drained: it takes no new session, and goes
    /// when empty or is kept. Absent: not drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<DrainThen>,
}

/// Why a state file was refused: every problem, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct StateError {
    /// The problems, each with its path (`servers[3].sessions`).
    pub problems: Vec<Problem>,
    /// Whether the text is not JSON at all (as opposed to JSON with bad values).
    pub syntax: bool,
}

impl State {
    /// Parses a state file (JSON), reporting a bad value with its path.
    pub fn from_json(text: &str) -> Result<State, StateError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let inner = e.into_inner();
            let syntax = inner.is_syntax() || inner.is_eof();
            StateError {
                problems: vec![Problem::error(path, inner.to_string())],
                syntax,
            }
        })
    }

    /// One snapshot per pool of `config`, checking that every name resolves and every count
    /// makes sense. A config's current generation is the state's (`generations`), else the
    /// configuration's; a server of another generation is outdated.
    pub fn snapshots(&self, config: &Config) -> Result<Vec<PoolSnapshot>, StateError> {
        let mut problems = Vec::new();
        // Once per config: a generation costs a digest (and a slow one per secret).
        let configured: BTreeMap<&str, Option<Generation>> = config
            .autoscale_configs()
            .map(|(_, c)| {
                let name = c.autoscale_config_name.as_str();
                (name, config.generation(name))
            })
            .collect();
        let current = |name: &str| {
            self.generations
                .get(name)
                .copied()
                .or_else(|| configured.get(name).copied().flatten())
        };
        let mut builder = SnapshotBuilder::new(
            config,
            None,
            |name| self.bookkeeping.get(name).cloned().unwrap_or_default(),
            |pool| self.pending_requests.get(pool).copied().unwrap_or(0),
        );
        let mut ids = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let path = |field: &str| format!("servers[{i}].{field}");
            if !ids.insert(s.id) {
                problems.push(Problem::error(
                    path("id"),
                    format!("{} appears more than once", s.id),
                ));
            }
            let Some(policy) = builder.policy(&s.config) else {
                problems.push(Problem::error(
                    path("config"),
                    format!(
                        "refers to auto-scale config `{}`, which is not defined",
                        s.config
                    ),
                ));
                continue;
            };
            let (capacity, reusable) = (
                s.capacity.unwrap_or(policy.sessions_per_server),
                s.reusable.unwrap_or(policy.reusable),
            );
            if s.sessions > capacity {
                problems.push(Problem::error(
                    path("sessions"),
                    format!(
                        "{} is more than the server's capacity {capacity}",
                        s.sessions
                    ),
                ));
            }
            if let Some(t) = s.checked_in_at
                && t < s.created_at
            {
                problems.push(Problem::error(
                    path("checked_in_at"),
                    format!("{t} is before created_at {}", s.created_at),
                ));
            }
            builder.add(
                &s.config,
                ServerSnapshot {
                    id: s.id,
                    config: 0,
                    state: s.state,
                    sessions: s.sessions,
                    capacity,
                    reusable,
                    used: s.used.unwrap_or(s.sessions > 0) || s.sessions > 0,
                    created_at: s.created_at,
                    checked_in_at: s.checked_in_at,
                    queue_slots: s.queue_slots,
                    outdated: s
                        .generation
                        .is_some_and(|g| current(&s.config).is_some_and(|now| now != g)),
                    drained: s.drained,
                    woken_at: None,
                    for_warm: false,
                },
            );
        }
        for pool in self.pending_requests.keys() {
            if config.pool(pool).is_none() {
                problems.push(Problem::error(
                    format!("pending_requests.{pool}"),
                    format!("refers to pool `{pool}`, which is not defined"),
                ));
            }
        }
        for name in self.bookkeeping.keys() {
            if builder.policy(name).is_none() {
                problems.push(Problem::error(
                    format!("bookkeeping.{name}"),
                    format!("refers to auto-scale config `{name}`, which is not defined"),
                ));
            }
        }
        for name in self.generations.keys() {
            if builder.policy(name).is_none() {
                problems.push(Problem::error(
                    format!("generations.{name}"),
                    format!("refers to auto-scale config `{name}`, which is not defined"),
                ));
            }
        }
        if problems.is_empty() {
            let mut snapshots = builder.finish();
            for c in snapshots.iter_mut().flat_map(|s| &mut s.configs) {
                c.generation = current(&c.policy.name);
            }
            Ok(snapshots)
        } else {
            Err(StateError {
                problems,
                syntax: false,
            })
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
