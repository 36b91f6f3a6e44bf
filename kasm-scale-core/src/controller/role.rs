//! Who acts. A controller alone on its store always acts ([`Role::Sole`]). Replicas sharing a
//! store (PostgreSQL) take turns: the holder of the store's lease leads, the others follow. The
//! lease itself is kept outside the core (`kasm-scale-postgres`), which tells the controller
//! with [`Autoscaler::lead`] and [`Autoscaler::step_down`].
//!
//! A leader ticks, provisions, destroys and answers the broker's writes. A follower does none of
//! that: each tick it reloads the stored state (so its read APIs show what the leader saved),
//! and a write answers [`ControllerError::NotLeader`] with the leader's address. Taking over
//! loads the stored state and reconciles with the clouds before the first plan.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::events::{ControllerError, Event};
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

impl Shared {
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

    /// Stops acting at once: writes are refused from now on and background work is aborted.
    pub fn step_down(&self, leader: Option<String>) {
        let was = {
            let mut role = self.role.lock().unwrap_or_else(|e| e.into_inner());
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
        self.emit(Event::SteppedDown { epoch });
    }
}

impl Autoscaler {
    /// Its role among the replicas of its store.
    pub fn role(&self) -> Role {
        self.shared.role()
    }

    /// This replica was granted the lease of `epoch` (by the store's lease keeper): its next
    /// tick (started at once when [`Autoscaler::run`] runs) loads the stored state, then acts
    /// and reconciles with the clouds before planning.
    pub fn lead(&self, epoch: u64) {
        {
            let mut role = self.shared.role.lock().unwrap_or_else(|e| e.into_inner());
            if *role == (Role::Leader { epoch }) {
                return;
            }
            *role = Role::TakingOver { epoch };
        }
        tracing::info!(epoch, "granted the lease: taking over");
        self.shared.wake.notify_one();
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

/// A follower's tick: the stored state replaces the records (what the leader saved), for the
/// read APIs.
pub(crate) async fn follow(shared: &Arc<Shared>) {
    match shared.store.load().await {
        Ok(saved) => {
            *shared.records() = saved.unwrap_or_default();
            shared.dirty.store(false, Ordering::Relaxed);
            let _ = shared.loaded.set(());
        }
        Err(e) => tracing::warn!(error = %e, "follower cannot read the stored state"),
    }
}

/// The first tick after [`Autoscaler::lead`]: loads the stored state and, if the lease of
/// `epoch` is still granted, acts from now on. The next steps of this tick reconcile with the
/// clouds first (as a fresh start does). Returns whether it leads.
pub(crate) async fn take_over(shared: &Arc<Shared>, epoch: u64) -> bool {
    let saved = match shared.store.load().await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, epoch, "cannot take over: the stored state cannot be loaded");
            shared.emit(Event::Failed {
                server: None,
                config: String::new(),
                error: format!("cannot take over: {e}"),
            });
            return false;
        }
    };
    let mut role = shared.role.lock().unwrap_or_else(|e| e.into_inner());
    if *role != (Role::TakingOver { epoch }) {
        // Stepped down (or granted a newer lease) while loading.
        return false;
    }
    let servers = saved.as_ref().map_or(0, |r| r.servers.len());
    let mut records = saved.unwrap_or_default();
    let changed = super::api::check_key(shared, &mut records);
    *shared.records() = records;
    shared.dirty.store(changed, Ordering::Relaxed);
    let _ = shared.loaded.set(());
    // Tick 0 reconciles and waits for it: the first plan sees what the clouds hold.
    shared.ticks.store(0, Ordering::Relaxed);
    *role = Role::Leader { epoch };
    drop(role);
    tracing::info!(epoch, servers, "took over: leading");
    metrics::gauge!("kasm_scale_leader").set(1.0);
    shared.emit(Event::Leading { epoch });
    true
}
