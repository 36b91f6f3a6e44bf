//! Who acts. A controller alone on its store always acts ([`Role::Sole`]). Replicas sharing a
//! store (PostgreSQL) take turns: the holder of the store's lease leads, the others follow. The
//! lease itself is kept outside the core (`kasm-scale-postgres`), which tells the controller
//! with [`Autoscaler::lead`] and [`Autoscaler::step_down`].
//!
//! A leader ticks, provisions, destroys and answers the broker's writes. A follower does none of
//! that: each tick it reloads the stored state (so its read APIs show what the leader saved),
//! and a write answers [`ControllerError::NotLeader`] with the leader's address. Taking over
//! loads the stored state and reconciles with the clouds before the first plan.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use super::events::{ControllerError, Event};
use super::state::{load_once, take_saved};
use super::{Autoscaler, Shared};

/// What this controller does among the replicas of one store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// The only controller on its store: it always acts (the default).
    Sole,
    /// Granted the lease of `epoch`: it acts once its next tick has loaded the stored state.
    TakingOver {
        /// The lease's epoch (grows with every new leader).
        epoch: u64,
    },
    /// Holds the lease of `epoch`: it acts.
    Leader {
        /// The lease's epoch.
        epoch: u64,
    },
    /// Another replica leads: this one serves reads and refuses writes.
    Follower {
        /// The leader's advertised address, when known.
        leader: Option<String>,
    },
}

impl Role {
    /// Whether it acts (ticks, provisions, serves writes).
    pub fn acts(&self) -> bool {
        matches!(self, Role::Sole | Role::Leader { .. })
    }
}

/// The controller's time, its ticks and its role: when it is, which tick runs, and whether it
/// acts.
pub(crate) struct Clock {
    /// The wall-clock time at `started`.
    pub epoch: Timestamp,
    /// When it was built, on tokio's clock.
    pub started: tokio::time::Instant,
    /// Ticks since the start (or since taking over).
    pub ticks: AtomicU64,
    /// Held by the running tick: ticks never overlap.
    pub tick_lock: tokio::sync::Mutex<()>,
    /// When the last tick ended (tokio's clock), for [`Autoscaler::health`].
    pub last_tick: Mutex<Option<tokio::time::Instant>>,
    /// Whether it acts, among the replicas of its store.
    pub role: Mutex<Role>,
    /// Wakes [`Autoscaler::run`] for a tick now (on taking over).
    pub wake: tokio::sync::Notify,
}

impl Clock {
    /// A clock that reads `epoch` now, in `role`.
    pub(crate) fn new(epoch: Timestamp, role: Role) -> Self {
        Self {
            epoch,
            started: tokio::time::Instant::now(),
            ticks: AtomicU64::new(0),
            tick_lock: tokio::sync::Mutex::new(()),
            last_tick: Mutex::new(None),
            role: Mutex::new(role),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wall-clock time on tokio's clock: correct on a paused clock too.
    pub fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        self.epoch + SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX)
    }

    /// Notes that a tick ended now.
    pub(crate) fn ticked(&self) {
        *self.last_tick.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::time::Instant::now());
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Ok` when this controller acts; else why a write is refused.
    pub fn acting(&self) -> Result<(), ControllerError> {
        match self.role() {
            Role::Sole | Role::Leader { .. } => Ok(()),
            Role::TakingOver { .. } => Err(ControllerError::NotLeader { leader: None }),
            Role::Follower { leader } => Err(ControllerError::NotLeader { leader }),
        }
    }
}

impl Shared {
    /// Stops acting at once: writes are refused from now on and background work is aborted.
    pub fn step_down(&self, leader: Option<String>) {
        let was = {
            let mut role = self.clock.role.lock().unwrap_or_else(|e| e.into_inner());
            let was = role.clone();
            *role = Role::Follower { leader };
            was
        };
        let epoch = match was {
            Role::Leader { epoch } | Role::TakingOver { epoch } => epoch,
            Role::Sole => 0,
            Role::Follower { .. } => return,
        };
        self.tasks.abort_all();
        tracing::warn!(epoch, "stepped down: no longer acting");
        metrics::gauge!("kasm_scale_leader").set(0.0);
        self.events.emit(Event::SteppedDown { epoch });
    }
}

impl Autoscaler {
    /// Its role among the replicas of its store.
    pub fn role(&self) -> Role {
        self.shared.clock.role()
    }

    /// This replica was granted the lease of `epoch` (by the store's lease keeper): its next
    /// tick (started at once when [`Autoscaler::run`] runs) loads the stored state, then acts
    /// and reconciles with the clouds before planning.
    pub fn lead(&self, epoch: u64) {
        {
            let mut role = self
                .shared
                .clock
                .role
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *role == (Role::Leader { epoch }) {
                return;
            }
            *role = Role::TakingOver { epoch };
        }
        tracing::info!(epoch, "granted the lease: taking over");
        self.shared.clock.wake.notify_one();
    }

    /// Stops acting at once (the lease is lost or about to be): writes are refused with
    /// [`ControllerError::NotLeader`] naming `leader` (the new leader's advertised address,
    /// when known), and background work (creates, destroys, reconciles) is aborted. Work a
    /// provider already accepted is finished by the next leader: a server's record is saved
    /// before its VM is asked for, and creates are idempotent on the server id.
    pub fn step_down(&self, leader: Option<String>) {
        self.shared.step_down(leader);
    }
}

/// Whether this tick acts: a follower's tick only reloads what the leader saved, the first tick
/// after being granted the lease takes over, and an acting controller first makes sure its
/// saved state is loaded.
pub(crate) async fn this_tick_acts(shared: &Arc<Shared>) -> bool {
    match shared.clock.role() {
        Role::Follower { .. } => {
            follow(shared).await;
            shared.clock.ticked();
            return false;
        }
        Role::TakingOver { epoch } => {
            if !take_over(shared, epoch).await {
                return false;
            }
        }
        Role::Sole | Role::Leader { .. } => {}
    }
    if let Err(e) = load_once(&shared.state, &shared.setup().tokens, &shared.events).await {
        tracing::error!(error = %e, "tick skipped: the saved state cannot be loaded");
        shared.events.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: e.to_string(),
        });
        return false;
    }
    true
}

/// A follower's tick: the stored state replaces the records (what the leader saved), for the
/// read APIs.
async fn follow(shared: &Arc<Shared>) {
    match shared.state.store.load().await {
        Ok(saved) => {
            shared.state.replace(saved.unwrap_or_default(), false);
            let _ = shared.state.loaded.set(());
        }
        Err(e) => tracing::warn!(error = %e, "follower cannot read the stored state"),
    }
}

/// The first tick after [`Autoscaler::lead`]: loads the stored state and, if the lease of
/// `epoch` is still granted, acts from now on. The next steps of this tick reconcile with the
/// clouds first (as a fresh start does). Returns whether it leads.
async fn take_over(shared: &Arc<Shared>, epoch: u64) -> bool {
    let saved = match shared.state.store.load().await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, epoch, "cannot take over: the stored state cannot be loaded");
            shared.events.emit(Event::Failed {
                server: None,
                config: String::new(),
                error: format!("cannot take over: {e}"),
            });
            return false;
        }
    };
    let mut role = shared.clock.role.lock().unwrap_or_else(|e| e.into_inner());
    if *role != (Role::TakingOver { epoch }) {
        // Stepped down (or granted a newer lease) while loading.
        return false;
    }
    let servers = take_saved(&shared.state, &shared.setup().tokens, &shared.events, saved);
    // Tick 0 reconciles and waits for it: the first plan sees what the clouds hold.
    shared.clock.ticks.store(0, Ordering::Relaxed);
    *role = Role::Leader { epoch };
    drop(role);
    tracing::info!(epoch, servers, "took over: leading");
    metrics::gauge!("kasm_scale_leader").set(1.0);
    shared.events.emit(Event::Leading { epoch });
    true
}
