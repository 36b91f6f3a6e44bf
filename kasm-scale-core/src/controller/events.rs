//! What the controller tells its broker: events, outcomes and errors.

use crate::config::ConfigError;
use crate::engine::{Cause, ServerId};
use crate::template::TemplateError;
use crate::token::TokenError;
use crate::traits::BackendError;

use super::records::SessionId;
use crate::traits::StoreError;
use tokio::sync::broadcast;

/// Something that happened, for brokers and dashboards. Serializes as JSON with its kind in
/// `event` (`{"event": "ready", "server": "…"}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A server is being created.
    Provisioning {
        /// The server.
        server: ServerId,
        /// Its auto-scale config.
        config: String,
        /// Why the plan asked for it.
        cause: Cause,
    },
    /// Its VM exists and boots.
    Starting {
        /// The server.
        server: ServerId,
    },
    /// A VM with our owner marker was taken in without a record (after a restart).
    Adopted {
        /// The server.
        server: ServerId,
        /// Whether its sessions are unknown (the saved state had no record of it).
        sessions_unknown: bool,
    },
    /// It is ready for sessions.
    Ready {
        /// The server.
        server: ServerId,
    },
    /// It is gone.
    Destroyed {
        /// The server.
        server: ServerId,
        /// Why the plan asked for it, when the plan did (else the VM died, vanished or its
        /// config was removed: see `reason`).
        cause: Option<Cause>,
        /// Why it went, for people.
        reason: String,
    },
    /// This replica was granted the store's lease and acts from now on.
    Leading {
        /// The lease's epoch.
        epoch: u64,
    },
    /// This replica stopped acting (its lease was lost, or it shut down).
    SteppedDown {
        /// The epoch of the lease it held (0 when it acted alone).
        epoch: u64,
    },
    /// Something failed; the server (if any) keeps the message as its last error.
    Failed {
        /// The server, if the failure concerns one.
        server: Option<ServerId>,
        /// Its auto-scale config (or the provider, directory or store that failed).
        config: String,
        /// What went wrong.
        error: String,
    },
    /// Something worth knowing that needs no action (the plan's notes, skipped actions).
    Note {
        /// The pool.
        pool: String,
        /// What, for people.
        text: String,
    },
    /// A queued request got a server.
    SessionAssigned {
        /// The request's id.
        session: SessionId,
        /// The server.
        server: ServerId,
    },
    /// A queued request waited longer than the queue timeout and was dropped.
    RequestExpired {
        /// The request's id.
        session: SessionId,
        /// Its pool.
        pool: String,
        /// How long it waited, in seconds.
        waited_seconds: i64,
    },
    /// Sessions on a server whose VM died were lost.
    SessionsLost {
        /// The server.
        server: ServerId,
        /// The sessions it had.
        sessions: Vec<SessionId>,
    },
    /// (ours) An operator drained a server, config or pool.
    Drained {
        /// The drain.
        drain: super::Drain,
    },
    /// (ours) A drain ended: undrained, expired, or its target is gone.
    Undrained {
        /// What it covered.
        target: super::DrainTarget,
        /// Why it ended.
        reason: String,
    },
    /// (ours) A new configuration is in force ([`Autoscaler::reconfigure`](super::Autoscaler::reconfigure)).
    Reconfigured {
        /// What changed.
        changes: super::Reloaded,
    },
    /// (ours) A configuration was refused; the running one stays.
    ReloadRefused {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// (ours) A config's rollout moved on: it began, its canary is ready, it paused, it was
    /// resumed, or its last outdated server went.
    Rollout {
        /// The auto-scale config.
        config: String,
        /// The generation it builds.
        generation: crate::config::Generation,
        /// What happened.
        phase: RolloutPhase,
        /// Details for people (why it paused).
        reason: String,
    },
}

/// (ours) What happened to a rollout ([`Event::Rollout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Servers of an older generation were found: the rollout began.
    Started,
    /// Its canary servers are ready: the rest are replaced.
    CanaryReady,
    /// A server of the new generation failed: nothing more of it is built.
    Paused,
    /// The operator resumed it.
    Resumed,
    /// No outdated server is left.
    Finished,
}

/// What a guest reports with its check-in token (Kasm's `set_server_status` body).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub struct CheckinStatus {
    /// `running` when the server is ready; anything else while it is getting there.
    pub status: String,
    /// Free text.
    #[serde(default)]
    pub status_message: String,
    /// Percent done, as text.
    #[serde(default)]
    pub status_progress: String,
}

impl CheckinStatus {
    /// `running` (100%).
    pub fn running() -> Self {
        Self {
            status: "running".into(),
            status_message: String::new(),
            status_progress: "100".into(),
        }
    }

    /// Whether the guest says it is ready.
    pub fn is_running(&self) -> bool {
        self.status.eq_ignore_ascii_case("running")
    }

    pub(crate) fn describe(&self) -> String {
        let mut text: String = self.status.chars().take(64).collect();
        if !self.status_progress.is_empty() {
            let progress: String = self.status_progress.chars().take(8).collect();
            text += &format!(" ({progress}%)");
        }
        if !self.status_message.is_empty() {
            let message: String = self.status_message.chars().take(256).collect();
            text += &format!(": {message}");
        }
        text
    }
}

/// What [`Autoscaler::request_session_once`](super::Autoscaler::request_session_once) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    /// The session (as the first attempt made it, for a repeated request id).
    pub outcome: SessionOutcome,
    /// Whether the request id was seen before: nothing was made now.
    pub replayed: bool,
    /// (ours) Whether the user already had this session in the pool (user affinity): nothing
    /// was made now, and the session is on the server it was on.
    pub reconnected: bool,
}

/// What [`Autoscaler::request_session`](super::Autoscaler::request_session) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// A server takes the session now.
    Assigned {
        /// The session.
        session: SessionId,
        /// The server.
        server: ServerId,
    },
    /// No server has room: the request waits (an [`Event::SessionAssigned`] follows, or an
    /// [`Event::RequestExpired`] after the queue timeout).
    Queued {
        /// The request (and later the session).
        session: SessionId,
    },
}

/// Something the builder was given that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An auto-scale config's VM provider config has no provider.
    #[error("`{config}` needs a provider for `{provider}`")]
    MissingProvider {
        /// `autoscale_config_name`.
        config: String,
        /// The VM provider config name.
        provider: String,
    },
    /// (ours) An auto-scale config keeps a warm tier (`warm_pool`) on a VM provider config
    /// whose provider cannot stop and start VMs ([`Capabilities::stop_start`]).
    ///
    /// [`Capabilities::stop_start`]: crate::traits::Capabilities::stop_start
    #[error(
        "`{config}` keeps a warm tier (warm_pool), but the provider of `{provider}` cannot stop and start VMs"
    )]
    NoStopStart {
        /// `autoscale_config_name`.
        config: String,
        /// The VM provider config name.
        provider: String,
    },
    /// An auto-scale config that makes AD records has no directory for its LDAP config.
    #[error("`{config}` needs a directory for `{ldap}`")]
    MissingDirectory {
        /// `autoscale_config_name`.
        config: String,
        /// The LDAP config name.
        ldap: String,
    },
    /// A startup script does not parse.
    #[error("startup script of `{provider}`: {error}")]
    Script {
        /// The VM provider config name.
        provider: String,
        /// Python's error, with line and column.
        error: TemplateError,
    },
    /// The owner id is empty.
    #[error("owner_id must not be empty")]
    EmptyOwnerId,
    /// A reload changed a VM provider config but brought no provider built from the new one
    /// (the running provider would go on creating VMs the old way).
    #[error("VM provider config `{provider}` changed: give a provider built from the new one")]
    StaleProvider {
        /// The VM provider config name.
        provider: String,
    },
    /// A reload moved a VM provider config that has servers elsewhere (another region,
    /// account endpoint, subscription or resource group): the provider built from it would no
    /// longer find their VMs.
    #[error(
        "VM provider config `{provider}`: `{field}` changed while servers run where it points now: add a VM provider config for the new place and point the auto-scale configs at it (the old one's servers drain with it)"
    )]
    ProviderMoved {
        /// The VM provider config name.
        provider: String,
        /// The field that moved it.
        field: String,
    },
    /// A reload put an auto-scale config in another pool than its servers.
    #[error(
        "auto-scale config `{config}` moved from pool `{from}` to `{to}` while {servers} of its servers run in `{from}`: give it a new name in `{to}` (the old one's servers drain)"
    )]
    ConfigMoved {
        /// `autoscale_config_name`.
        config: String,
        /// The pool its servers are in.
        from: String,
        /// The pool the new configuration puts it in.
        to: String,
        /// Its servers in `from`.
        servers: u32,
    },
    /// A reload changed an LDAP config but brought no directory built from the new one.
    #[error("LDAP config `{ldap}` changed: give a directory built from the new one")]
    StaleDirectory {
        /// The LDAP config name.
        ldap: String,
    },
}

impl SessionOutcome {
    /// The session (seated or waiting).
    pub fn session(&self) -> SessionId {
        match *self {
            SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session } => {
                session
            }
        }
    }
}

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// No pool of that name.
    #[error("unknown pool `{0}`")]
    UnknownPool(String),
    /// A request id that cannot be one (empty, too long, not visible ASCII).
    #[error("invalid request id: {0}")]
    InvalidRequestId(String),
    /// A request id used before, within the time it is remembered, for another pool.
    #[error(
        "this request id was used for a request in pool `{pool}`: use a new id for a new request"
    )]
    RequestIdReused {
        /// The pool of the first request.
        pool: String,
    },
    /// No session of that id.
    #[error("unknown session {0:?}")]
    UnknownSession(SessionId),
    /// No server of that id.
    #[error("unknown server {0}")]
    UnknownServer(ServerId),
    /// No auto-scale config of that name.
    #[error("unknown auto-scale config `{0}`")]
    UnknownConfig(String),
    /// A drain that cannot be one (its text, its expiry).
    #[error("invalid drain: {0}")]
    InvalidDrain(String),
    /// No drain of that target.
    #[error("{0} is not drained")]
    NotDrained(super::DrainTarget),
    /// A user name that cannot be one (too long, control characters).
    #[error("invalid user: {0}")]
    InvalidUser(String),
    /// No rollout of that config is paused.
    #[error("no rollout of `{0}` is paused")]
    NotPaused(String),
    /// The check-in token was refused.
    #[error("check-in refused: {0}")]
    Token(#[from] TokenError),
    /// The builder was given something unusable (every problem).
    #[error("invalid autoscaler setup: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Setup(Vec<SetupError>),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state store could not load the saved state, so nothing is served yet.
    #[error("cannot start: {0}")]
    Store(#[from] StoreError),
    /// Another replica leads (or this one is taking over): writes go to the leader.
    #[error("this replica does not lead{}", .leader.as_deref().map(|l| format!("; the leader is at {l}")).unwrap_or_default())]
    NotLeader {
        /// The leader's advertised address, when known.
        leader: Option<String>,
    },
}

impl ControllerError {
    /// Every problem it holds, one per entry: each of a refused setup or reload
    /// ([`ControllerError::Setup`]), each error of an invalid configuration
    /// ([`ControllerError::Config`]; warnings left out), else its message.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ControllerError::Setup(list) => list.iter().map(ToString::to_string).collect(),
            ControllerError::Config(ConfigError::Invalid { problems }) => problems
                .iter()
                .filter(|p| p.severity == crate::config::Severity::Error)
                .map(ToString::to_string)
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Why creating a server failed (kept on the config's failure count and in events).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ProvisionError {
    #[error("cannot create the AD computer record: {0}")]
    Directory(BackendError),
    #[error("cannot issue the check-in token: {0}")]
    Token(TokenError),
    #[error("startup script: {0}")]
    Script(TemplateError),
    #[error(
        "the rendered startup script is {size} bytes, over the provider's limit of {limit} bytes"
    )]
    ScriptTooLarge { size: usize, limit: usize },
    #[error("cannot create the VM: {0}")]
    Vm(BackendError),
    #[error("cannot save the AD join password before asking for the VM: {0}")]
    Save(StoreError),
    #[error(
        "cannot resume the create: {0}, and no VM of its first attempt was found (the server is given up rather than its AD record reset)"
    )]
    Resume(TokenError),
}

/// Where events go: every subscriber, and a counter per kind for metrics.
pub(crate) struct Events {
    sender: broadcast::Sender<Event>,
}

impl Events {
    /// Room for `capacity` events per subscriber that lags.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// Tells subscribers, and counts the event for metrics (`kasm_scale_*_total`).
    pub(crate) fn emit(&self, event: Event) {
        count(&event);
        // No subscriber is fine.
        let _ = self.sender.send(event);
    }

    /// Tells every event of `events`, in order.
    pub(crate) fn tell(&self, events: Vec<Event>) {
        for event in events {
            self.emit(event);
        }
    }

    /// Events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

/// Counts an event for metrics: one counter per kind, labelled by config, cause or pool.
fn count(event: &Event) {
    use metrics::counter;
    match event {
        Event::Provisioning { config, cause, .. } => counter!(
            "kasm_scale_provisions_total",
            "config" => config.clone(),
            "cause" => cause_name(Some(*cause))
        )
        .increment(1),
        Event::Destroyed { cause, .. } => {
            counter!("kasm_scale_destroys_total", "cause" => cause_name(*cause)).increment(1)
        }
        Event::Failed { config, .. } => {
            counter!("kasm_scale_failures_total", "config" => config.clone()).increment(1)
        }
        Event::Ready { .. } => counter!("kasm_scale_servers_ready_total").increment(1),
        Event::Adopted { .. } => counter!("kasm_scale_adopted_total").increment(1),
        Event::RequestExpired { pool, .. } => {
            counter!("kasm_scale_requests_expired_total", "pool" => pool.clone()).increment(1)
        }
        Event::SessionsLost { sessions, .. } => {
            counter!("kasm_scale_sessions_lost_total").increment(sessions.len() as u64)
        }
        _ => {}
    }
}

/// A cause as its snake_case name (`dead` when the plan did not ask: the VM died, vanished or
/// its config was removed).
fn cause_name(cause: Option<crate::engine::Cause>) -> String {
    cause
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "dead".into())
}
