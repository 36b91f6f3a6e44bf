//! The scaling engine: `plan(&PoolSnapshot, now) -> Plan`, a pure function.
//!
//! It reads a snapshot of one pool (its auto-scale configs, their servers, the session requests
//! waiting for a slot, and each config's bookkeeping) and returns the actions that bring the pool
//! back to its policy, each with every parameter and a reason a person understands, plus the new
//! bookkeeping by config name. No clock, no I/O, no randomness: the same snapshot and `now` give
//! the same plan. [`assign`] picks the server for a session request; [`SnapshotBuilder`] builds
//! the snapshots of a configuration.
//!
//! # The rules
//!
//! [`plan`] applies them in this order, one function each (in `plan.rs`; the queue's rules 7
//! and 9 in `queue.rs`, the rollout's in `rollout.rs`, the drains' in `drain.rs`, the warm
//! tier's 14 to 16 in `warm.rs`). A config's *minimum*
//! at `now` is [`ScalingPolicy::minimum_at`]: `minimum_pool_standby_sessions` (or the largest
//! override of the open schedule windows), and 0 when the config is disabled or outside every
//! window.
//!
//! 1. `count_servers`: one pass over the servers. A config's free slots are the room left on its
//!    ready servers (running, and checked in where it requires check-in) that are not spent, plus
//!    the room of its servers still coming up, so that a cycle does not provision again for
//!    servers on their way. Every server, also one being destroyed, counts against
//!    `max_instances`. A drained server's room is never free (ours). The warm tier (ours, see
//!    `warm.rs`): stopped and stopping servers, and servers built for the tier
//!    ([`ServerSnapshot::for_warm`]) until they are stopped, count against `max_instances`;
//!    their room is neither free nor coming, and none is seated or assigned. A stopped server
//!    is *available* while current, undrained, of an enabled config that keeps a tier and
//!    younger than its `max_age`. A server started from the tier (`Starting` with
//!    [`ServerSnapshot::woken_at`]) is coming room like any server coming up, and its
//!    `checkin_timeout` counts from `woken_at`.
//! 2. `spent_single_use`: a single-use server whose session has ended is destroyed
//!    ([`Cause::SessionEnded`]).
//! 3. `checkin_timeouts`: a server with no session that is not ready `checkin_timeout` seconds
//!    after its creation is destroyed ([`Cause::CheckinTimeout`]).
//! 4. `drained_servers` (ours): a server drained with [`DrainThen::Destroy`] is destroyed as
//!    soon as it has no session, whatever its state ([`Cause::Drained`]); never one with a
//!    session. A server drained with [`DrainThen::Keep`] is kept: no rule destroys it (not when
//!    spent, nor when it does not check in in time) until the operator undrains it. Either
//!    way it still counts against `max_instances`, and rules 2 and 3 skip drained servers.
//! 5. `count_failures` (ours): a plan in which servers timed out adds one to the config's
//!    consecutive failures, however many timed out, so one bad burst does not freeze a config
//!    for an hour; a server ready since the last failure clears the count. A failing config waits
//!    [`failure_backoff`] after its last failure, then creates one server at a time and waits for
//!    it to come up: no endless create/destroy loop when check-in is slow.
//! 6. `track_rollout` (ours): a config has a rollout under way while it has outdated servers
//!    ([`ServerSnapshot::outdated`], when its [`ConfigSnapshot::generation`] is known; drained
//!    ones count too). Outdated servers and no [`RolloutState`] of the current generation start
//!    one. The canary is ready the first plan that finds `rollout.canary` ready current (not
//!    outdated, not drained) servers. With `pause_on_failure`, a current server timing out in
//!    this plan, or a failure the controller counted after `failures_since` (a create refused),
//!    pauses it with the reason; old-generation timeouts do not. A rollout whose canary was
//!    never ready is watched so even once no outdated server is left (they may go by other
//!    rules first): its canary failing still pauses it. Until the canary is ready, and
//!    while paused, outdated room counts as free as it always did (nothing is replaced); once
//!    it is ready (at once for a config that may not build now: disabled, or outside every
//!    window), outdated room is not free.
//! 7. `seat_waiting_requests`: queued session requests take the free slots of ready servers
//!    first (any config, in config order, current servers before outdated ones), then those of
//!    servers coming up for configs with aggressive scaling: first the slots earlier plans made
//!    for the queue (a server's `queue_slots`), then any, oldest first. Without aggressive
//!    scaling a request waits for the normal cycle (Kasm's rule) and holds no slot a config
//!    brings up for its minimum. Drained servers take none.
//! 8. `keep_minimum`: a config with fewer free slots than its minimum creates
//!    ceil(deficit / sessions per server) servers ([`Cause::BelowMinimum`]), never beyond
//!    `max_instances`, one at a time while it has failures, none while it waits out its backoff
//!    or its rollout is paused. During a rollout this is what the config would make with
//!    outdated room counted; the rest of the deficit is replacement ([`Cause::Rollout`], ours),
//!    made only while current servers coming up stay within `rollout.max_surge`, within
//!    `max_instances` (with no room it waits: rule 13 frees room from the surplus only) and the
//!    backoff.
//! 9. `provision_for_queue`: the minimum and the queue are one need (ours: each rule rounding up
//!    on its own made one server too many). Requests that no free or coming slot covers take the
//!    slots beyond the minimum on the servers just provisioned for it, then make the first
//!    enabled configs with aggressive scaling and room provision for them at once
//!    ([`Cause::QueuedRequests`]); a server whose spare slots a later config's rounding already
//!    provides is not made. Each new server carries the slots the queue takes (`queue_slots`),
//!    so the next plan seats the requests where this one counted them; what the queue leaves on
//!    its last server is free. Outside every schedule window a config provisions nothing,
//!    queued requests included: they wait, with a note saying so. A config whose rollout is
//!    paused provisions nothing either.
//! 10. `build_canary` (ours): while its canary is not ready, a config builds at most enough
//!     servers ([`Cause::Rollout`]) to have `rollout.canary` current servers, ready or coming
//!     up (this plan's own for the minimum and the queue included).
//! 11. `demand_targets` (ours): configs with `standby_policy = "demand"` raise their
//!     minimums (never lower them) to the pool's standby target from the snapshot's
//!     [`DemandSignal`], shared out in config order past configs at `max_instances`, backing
//!     off or with a paused rollout (spill-over), over the pool as the minimums and the queue
//!     leave it (waiting requests take room before the standby, as the next plan finds them on
//!     servers of their own); the configs it raises provision the rest into their provision for
//!     the minimum. During a rollout a config's free slots count here as rule 8's part for
//!     the minimum counts them (outdated room in, the rollout's own servers out), so the share
//!     it gets is the minimum that part keeps. See [`demand`] for the estimator and
//!     `standby.rs` for the sharing-out.
//! 12. `downscale_surplus`: free slots beyond the minimum worth one server start the downscale
//!     clock; once the surplus has lasted `downscale_backoff` seconds, idle servers are
//!     destroyed, oldest first, while the rest still covers the minimum ([`Cause::Surplus`]).
//!     Nothing goes while session requests wait in the pool, and a server with a session never
//!     goes. Only current servers' free slots count, and only current servers go (outdated ones
//!     go by rule 13, drained ones by rule 4).
//! 13. `retire_outdated` (ours): once the canary is ready and while the rollout is not paused,
//!     idle outdated servers (ready, no session, not spent, not drained) are destroyed
//!     ([`Cause::Rollout`], oldest first) while no session request waits in the pool and the
//!     room of the config's ready current servers, once rule 12 took its share, covers its
//!     minimum. When `max_instances` leaves no room for a replacement, an idle outdated server
//!     may go before that while the ready room left, current and outdated, still covers the
//!     minimum (its place takes a replacement at the next plan: a pool whose minimum needs most
//!     of its servers rolls out in batches of its room). Either way a plan that retires never
//!     leaves the ready free slots below the minimum. An outdated server with a session never
//!     goes, and goes in the first plan that finds it empty. A rollout with no outdated server
//!     left is finished (`finished_at`).
//!
//! 14. `expire_warm` (ours): a stopped server that is not available (outdated, older than
//!     `max_age`, drained with [`DrainThen::Destroy`], of a disabled config or one that keeps no
//!     tier) is destroyed, never started ([`Cause::WarmExpired`]); one drained with
//!     [`DrainThen::Keep`] is kept. Then while the tier (available stopped servers this plan
//!     does not start, stopping ones, those built for it) holds more than `max_stopped`, the
//!     oldest available ones go ([`Cause::WarmExpired`]).
//! 15. `stop_warm_builds` (ours): a server built for the tier, ready with no session, is
//!     stopped ([`Action::Stop`], [`Cause::WarmTier`]); destroyed instead
//!     ([`Cause::WarmExpired`]) when outdated, of a disabled config or one that keeps no tier,
//!     or beyond `max_stopped`.
//! 16. `refill_warm` (ours): a tier below its target (`min_stopped`; with the demand policy,
//!     the slots expected within a cold build beyond those within a warm start, in servers,
//!     within `min_stopped`..=`max_stopped`) builds the rest ([`Cause::WarmTier`]) within the
//!     `max_instances` room every other action left, also outside schedule windows while the
//!     config is enabled, not while it backs off (one at a time while failing), nor while its
//!     rollout is paused or waits for its canary.
//!
//! Start before build (ours): every server rules 8, 9 and 11 ask for (the minimum, the queue
//! with aggressive scaling, the demand target, the rollout's replacements within its surge) is
//! first covered by starting available warm servers of that config ([`Action::Start`],
//! [`Cause::WarmTier`], oldest first: they expire first), each giving its capacity; the
//! provision drops accordingly. A current server built for the tier that is ready with no
//! session is taken before any stopped one: the start hands it over to serve at once (rule 15
//! would stop it, and it would take a stop, a start and a check-in to serve). Rule 7 hands such
//! servers over to requests waiting with no ready slot (aggressive scaling) before they take
//! slots of servers still coming up. Rule 8, for a config with a tier, counts the room of its
//! servers still being built (not those started from the tier) as Kasm does, but they come up
//! within a build while its minimum covers the arrivals within a warm start: while its free
//! slots without them are below the minimum, warm servers are started for the difference. A start adds no server, so it needs no `max_instances` room;
//! it follows the backoff as a build does (none while backing off or paused, one at a time while
//! failing). Scale-in (ours): where rule 12 would destroy an idle server it stops it instead
//! ([`Action::Stop`], [`Cause::Surplus`]) while its enabled config's tier, with this plan's stops,
//! holds fewer than `max_stopped` and the server is younger than `max_age` (rule 12 takes only
//! current, undrained servers that are not spent: a single-use server enters the tier unused).
//!
//! Without a warm tier and with no stopped server, rules 14 to 16 do nothing and every plan is
//! what it was.
//!
//! With no outdated and no drained server, rules 4, 6, 10 and 13 do nothing and the plan is the
//! one Kasm's rules give.
//!
//! The plan is a fixed point: carried out (its servers made, its destroys under way) and
//! planned again at the same instant, it asks for nothing more and leaves the bookkeeping as
//! it was (`tests/it/engine_fixed_point.rs`).
//!
//! A disabled config (`enabled = false`) creates no server; everything else still applies (ours):
//! its single-use servers go when their session ends, servers that never check in go, and its
//! idle servers are not kept warm: with a minimum of 0 they go once the surplus has lasted
//! `downscale_backoff`, as outside every schedule window. Servers with sessions stay until their
//! sessions end. Disabling a config thus drains it.

pub mod demand;
mod drain;
mod placement;
mod plan;
mod queue;
mod rollout;
mod snapshot;
mod standby;
mod state;
mod warm;

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::config::StandbyPolicy;
use crate::config::{AutoScaleConfig, Generation, Placement, RolloutPolicy, Schedule, WarmPool};
pub use demand::DemandSignal;

pub use placement::{SessionRequest, assign};
pub use plan::{FAILURE_BACKOFF_BASE, FAILURE_BACKOFF_CAP, failure_backoff, plan};
pub use snapshot::SnapshotBuilder;
pub use state::{State, StateError, StateServer};
pub use warm::DEFAULT_START_SECONDS;

/// A server's id: the UUID Kasm calls `server_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub uuid::Uuid);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Record made; the VM is being created.
    Provisioning,
    /// The VM exists and boots; not yet checked in (or not yet running).
    Starting,
    /// Ready for sessions (checked in, where the config requires it).
    Running,
    /// Being destroyed.
    Destroying,
    /// (ours) Being stopped into its config's warm tier.
    Stopping,
    /// (ours) Stopped in its config's warm tier: built (checked in, joined), its VM stopped. It
    /// takes no session and its room is not free; a start makes it [`ServerState::Starting`]
    /// again (with [`ServerSnapshot::woken_at`]), and it takes sessions once it proved it is up.
    Stopped,
}

impl ServerState {
    /// Its name in reasons, status and metrics (`provisioning`, `starting`, `running`,
    /// `destroying`, `stopping`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Destroying => "destroying",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }

    /// Whether the server is in its config's warm tier or on its way into it (stopping,
    /// stopped).
    pub fn is_warm(self) -> bool {
        matches!(self, Self::Stopping | Self::Stopped)
    }
}

/// One server as the engine sees it. Its capacity and reusability are the values it was created
/// with, whatever its config says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSnapshot {
    /// The server.
    pub id: ServerId,
    /// Index of its config in [`PoolSnapshot::configs`].
    pub config: u32,
    /// Where it is in its life.
    pub state: ServerState,
    /// Sessions on it now.
    pub sessions: u32,
    /// Sessions it takes at most (copied at creation).
    pub capacity: u32,
    /// Whether it returns to the pool after a session (copied at creation).
    pub reusable: bool,
    /// Whether it has ever had a session.
    pub used: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it checked in (or, for configs without check-in, became ready); `None` before.
    pub checked_in_at: Option<Timestamp>,
    /// Slots that the plan which made it gave to waiting session requests
    /// ([`Action::Provision`]'s `queue_slots`): waiting requests take these first, so the plan
    /// that made it and the next one agree on which slots the queue holds (and a config's
    /// minimum is not eaten by requests another config's server was made for).
    pub queue_slots: u32,
    /// (ours) Built from an older generation of its config than the current one
    /// ([`ConfigSnapshot::generation`]): the rollout replaces it. It takes new sessions only
    /// when no current server has room, and its room does not count as free once the rollout
    /// is under way.
    pub outdated: bool,
    /// (ours) Drained by an operator: it takes no new session, its room is not free, and it is
    /// destroyed when its last session ends ([`DrainThen::Destroy`]) or kept
    /// ([`DrainThen::Keep`]).
    pub drained: Option<DrainThen>,
    /// (ours) When it was last started from the warm tier; `None` for a server never stopped.
    /// A started server is [`ServerState::Starting`] with no `checked_in_at` until it proves it
    /// is up, and its `checkin_timeout` counts from here.
    pub woken_at: Option<Timestamp>,
    /// (ours) Built for its config's warm tier ([`Cause::WarmTier`]): once ready it is stopped,
    /// and until then its room is not free and it takes no session.
    pub for_warm: bool,
}

/// (ours) What becomes of a drained server once it has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainThen {
    /// It is destroyed (and a replacement keeps the pool's free slots).
    #[default]
    Destroy,
    /// It is kept, empty, for maintenance, until the drain ends.
    Keep,
}

impl ServerSnapshot {
    /// Whether it can take sessions now: running, and checked in where `requires_checkin`.
    pub fn is_ready(&self, requires_checkin: bool) -> bool {
        self.state == ServerState::Running && (!requires_checkin || self.checked_in_at.is_some())
    }

    /// Whether it takes no more sessions in its life: a single-use server that has had one.
    pub fn is_spent(&self) -> bool {
        self.used && !self.reusable
    }

    /// (ours) When its `checkin_timeout` counts from: its last start from the warm tier
    /// ([`Self::woken_at`]), else its creation.
    pub fn timeout_from(&self) -> Timestamp {
        self.woken_at.unwrap_or(self.created_at)
    }

    /// (ours) Whether it was built for its config's warm tier and is not in it yet
    /// ([`Self::for_warm`], never started from the tier, neither stopping nor stopped): its
    /// room is neither free nor coming, it takes no session, and once ready it is stopped.
    pub fn is_warm_build(&self) -> bool {
        self.for_warm && self.woken_at.is_none() && !self.state.is_warm()
    }
}

/// What the engine needs of an auto-scale config.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    /// `autoscale_config_name`.
    pub name: String,
    /// Whether the config scales at all.
    pub enabled: bool,
    /// Provision at once for session requests that find no slot.
    pub aggressive_scaling: bool,
    /// Free session slots to keep while active.
    pub minimum_pool_standby_sessions: u32,
    /// Sessions a new server takes.
    pub sessions_per_server: u32,
    /// Whether new servers are reusable.
    pub reusable: bool,
    /// Whether new servers must check in before taking sessions.
    pub requires_checkin: bool,
    /// Seconds a surplus must last before idle servers go.
    pub downscale_backoff: u64,
    /// Seconds a new server has to become ready.
    pub checkin_timeout: u32,
    /// Active windows (none: always active).
    pub schedules: Vec<Schedule>,
    /// Hard cap on live servers of the config (its VM provider's `max_instances`).
    pub max_instances: u32,
    /// (ours) Kasm's static minimum, or the demand policy.
    pub standby_policy: StandbyPolicy,
    /// (ours) With the demand policy: the share of requests to serve at once.
    pub target_immediate_service: f64,
    /// (ours) How outdated servers are replaced.
    pub rollout: RolloutPolicy,
    /// (ours) The config's tier of stopped servers, if it keeps one.
    pub warm: Option<WarmPool>,
}

impl ScalingPolicy {
    /// The policy of `config`, whose VM provider allows `max_instances` servers.
    pub fn new(config: &AutoScaleConfig, max_instances: u32) -> Self {
        Self {
            name: config.autoscale_config_name.clone(),
            enabled: config.enabled,
            aggressive_scaling: config.aggressive_scaling,
            minimum_pool_standby_sessions: config.minimum_pool_standby_sessions,
            sessions_per_server: config.max_simultaneous_sessions_per_server.max(1),
            reusable: config.reusable,
            requires_checkin: config.requires_checkin(),
            downscale_backoff: config.downscale_backoff,
            checkin_timeout: config.checkin_timeout,
            schedules: config.schedules.clone(),
            max_instances,
            standby_policy: config.standby_policy,
            target_immediate_service: config.target_immediate_service,
            rollout: config.rollout,
            warm: config.warm_pool,
        }
    }

    /// The policy of `config` as `whole` defines it (the cap comes from its VM provider config;
    /// 0 when that is missing).
    pub fn in_config(whole: &crate::config::Config, config: &AutoScaleConfig) -> Self {
        let max = whole
            .vm_provider(&config.vm_provider_config_id)
            .map_or(0, |p| p.max_instances());
        Self::new(config, max)
    }

    /// Whether a schedule window is open at `now` (always, without schedules). Outside every
    /// window the config provisions nothing, not even for queued requests.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.schedules.is_empty() || self.schedules.iter().any(|s| s.is_active_at(now))
    }

    /// The free slots to keep at `now`: 0 when disabled or outside every schedule window;
    /// inside, the largest override of the open windows (ours), else
    /// `minimum_pool_standby_sessions`.
    pub fn minimum_at(&self, now: Timestamp) -> u32 {
        if !self.enabled {
            return 0;
        }
        if self.schedules.is_empty() {
            return self.minimum_pool_standby_sessions;
        }
        let open: Vec<&Schedule> = self
            .schedules
            .iter()
            .filter(|s| s.is_active_at(now))
            .collect();
        if open.is_empty() {
            return 0;
        }
        open.iter()
            .filter_map(|s| s.minimum_pool_standby_sessions)
            .max()
            .unwrap_or(self.minimum_pool_standby_sessions)
    }
}

/// A config's scaling memory between plans (Kasm keeps the first in its database).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookkeeping {
    /// When the current surplus began; idle servers go `downscale_backoff` seconds later.
    pub downscale_requested_at: Option<Timestamp>,
    /// Failures since the last success: a plan in which servers failed to check in in time
    /// counts one, however many did (ours), as does each server the controller fails to create.
    pub consecutive_failures: u32,
    /// When the last of those failures happened.
    pub last_failure_at: Option<Timestamp>,
    /// (ours) The config's last rollout: the generation it replaces servers with, and where it
    /// stands. `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutState>,
}

/// (ours) Where a config's rollout stands: kept in its [`Bookkeeping`], so that a restart or
/// a failover goes on where it was (a pause included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The generation servers are replaced with (the config's current one).
    pub generation: Generation,
    /// When the plan first found servers of another generation.
    pub started_at: Timestamp,
    /// Failures after this time pause the rollout: its start, or the operator's last resume.
    pub failures_since: Timestamp,
    /// When `canary` servers of the new generation were first ready; `None` before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_at: Option<Timestamp>,
    /// Why and since when it is paused; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<RolloutPause>,
    /// When the last outdated server went; `None` while some are left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// (ours) Why a rollout stopped building servers of its new generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPause {
    /// When it paused.
    pub at: Timestamp,
    /// Why, in plain words (the failure that paused it).
    pub reason: String,
}

/// One auto-scale config of the pool with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSnapshot {
    /// Its policy.
    pub policy: ScalingPolicy,
    /// Its bookkeeping as of the last plan.
    pub bookkeeping: Bookkeeping,
    /// (ours) Its current generation: the servers of any other are outdated
    /// ([`ServerSnapshot::outdated`]). `None` when unknown (nothing is outdated then).
    pub generation: Option<Generation>,
}

/// Everything the engine knows of one pool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolSnapshot {
    /// The pool's name.
    pub pool: String,
    /// Its auto-scale configs, in priority order.
    pub configs: Vec<ConfigSnapshot>,
    /// Its servers (any order); `config` indexes `configs`.
    pub servers: Vec<ServerSnapshot>,
    /// Session requests waiting for a slot.
    pub pending_requests: u32,
    /// How sessions are placed.
    pub placement: Placement,
    /// (ours) The pool's demand, for configs with `standby_policy = "demand"`: `None` gives
    /// them Kasm's static minimum.
    pub demand: Option<DemandSignal>,
}

/// Why an action is taken, for machines (the `reason` text is for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Free slots are below the minimum.
    BelowMinimum,
    /// Session requests wait for a slot (aggressive scaling).
    QueuedRequests,
    /// A surplus lasted longer than `downscale_backoff`.
    Surplus,
    /// A single-use server's session ended.
    SessionEnded,
    /// A server did not become ready within `checkin_timeout`.
    CheckinTimeout,
    /// (ours) A rollout replaces servers of an older generation: a server of the new one is
    /// made, or an idle outdated one goes.
    Rollout,
    /// (ours) An operator drained the server (or its config or pool) and it has no session.
    Drained,
    /// (ours) The warm tier: servers built for it, a ready one built for it stopped, an idle
    /// one stopped into it instead of destroyed, or a stopped one started for free slots.
    WarmTier,
    /// (ours) A stopped server is older than the warm tier's `max_age`, of an outdated
    /// generation, or beyond `max_stopped`: it is destroyed, never started.
    WarmExpired,
}

/// One thing to do. Every parameter is here: the executor decides nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Action {
    /// Create `count` servers of `config`.
    Provision {
        /// `autoscale_config_name`.
        config: String,
        /// How many servers.
        count: u32,
        /// Why, for machines.
        cause: Cause,
        /// Slots of the new servers that waiting session requests take, server by server (each
        /// takes up to its capacity, the last one the rest); what they leave keeps the minimum.
        /// 0 for servers made for the minimum alone.
        #[serde(default, skip_serializing_if = "is_zero")]
        queue_slots: u32,
        /// Why, for people.
        reason: String,
    },
    /// Destroy one server (and its AD record).
    Destroy {
        /// The server.
        server: ServerId,
        /// Its `autoscale_config_name`.
        config: String,
        /// Why, for machines.
        cause: Cause,
        /// Why, for people.
        reason: String,
    },

    /// (ours) Stop one ready, idle server into its config's warm tier.
    Stop {
        /// The server.
        server: ServerId,
        /// Its `autoscale_config_name`.
        config: String,
        /// Why, for machines.
        cause: Cause,
        /// Why, for people.
        reason: String,
    },
    /// (ours) Start one stopped server of the warm tier: it takes sessions once it proved it is
    /// up again.
    Start {
        /// The server.
        server: ServerId,
        /// Its `autoscale_config_name`.
        config: String,
        /// Why, for machines.
        cause: Cause,
        /// Slots of it that waiting session requests take (as [`Action::Provision`]'s).
        #[serde(default, skip_serializing_if = "is_zero")]
        queue_slots: u32,
        /// Why, for people.
        reason: String,
    },
}

impl Action {
    /// The reason for people.
    pub fn reason(&self) -> &str {
        match self {
            Action::Provision { reason, .. }
            | Action::Destroy { reason, .. }
            | Action::Stop { reason, .. }
            | Action::Start { reason, .. } => reason,
        }
    }
}

/// What to do, and each config's new bookkeeping (to store and give to the next plan).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// The actions: per config (in config order) its destroys of spent and timed-out servers,
    /// then its provision for the minimum; then the destroys of idle surplus; provisions for
    /// queued requests last.
    pub actions: Vec<Action>,
    /// Each config's bookkeeping after this plan, by `autoscale_config_name`: store it and give
    /// it to the next plan.
    pub bookkeeping: BTreeMap<String, Bookkeeping>,
    /// Things worth knowing that need no action (a config waiting out a failure backoff, requests
    /// that wait outside every schedule window or that no config can take).
    pub notes: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
