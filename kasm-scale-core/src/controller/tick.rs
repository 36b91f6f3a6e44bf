//! One tick, as named steps: observe → snapshot → plan → execute → seat the queue → persist.
//! Ticks never overlap, and no step waits on a provider or a directory: their work runs in the
//! background (`tasks.rs`) and its results reach the records when it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use tracing::Instrument;

use super::tasks::{self, Work};
use super::{
    Autoscaler, Event, Role, Shared, api, demand, execute, observe, persist, queue, reconcile,
    role, snapshot,
};
use crate::engine::{self, Plan};

impl Autoscaler {
    /// One cycle: observe, plan every pool, start the plans' work, seat waiting requests, save.
    /// Returns without waiting for providers or directories (see [`Autoscaler::settle`]). A tick
    /// that starts while another runs waits for it: ticks never overlap.
    pub async fn tick(&self) {
        tick(&self.shared).await;
    }

    /// Waits until every piece of background work (creates, destroys, refreshes, reconciles)
    /// has ended: for tests, simulations and a graceful shutdown.
    pub async fn settle(&self) {
        self.shared.tasks.settle(None, None).await;
    }

    /// Ticks every tick interval until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.tick().await;
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.shared.tick_interval) => {}
                // Granted the lease: take over now, not a tick interval later.
                () = self.shared.wake.notified() => {}
            }
        }
    }
}

/// One cycle.
pub(crate) async fn tick(shared: &Arc<Shared>) {
    let _one_tick_at_a_time = shared.tick_lock.lock().await;
    match shared.role() {
        Role::Follower { .. } => {
            role::follow(shared).await;
            *shared.last_tick.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(tokio::time::Instant::now());
            return;
        }
        Role::TakingOver { epoch } => {
            if !role::take_over(shared, epoch).await {
                return;
            }
        }
        Role::Sole | Role::Leader { .. } => {}
    }
    if let Err(e) = api::start(shared).await {
        tracing::error!(error = %e, "tick skipped: the saved state cannot be loaded");
        shared.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: e.to_string(),
        });
        return;
    }
    let n = shared.ticks.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("tick", n);
    async {
        let began = tokio::time::Instant::now();
        observe(shared, n).await;
        let now = shared.now();
        let plans = plan(shared, now);
        execute::execute(shared, plans, now).await;
        seat_the_queue(shared);
        // A failure is logged, counted and retried by the next save.
        let _ = persist::persist(shared).await;
        *shared.last_tick.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::time::Instant::now());
        metrics::histogram!("kasm_scale_tick_seconds").record(began.elapsed().as_secs_f64());
        tracing::debug!(elapsed_ms = began.elapsed().as_millis() as u64, "tick done");
    }
    .instrument(span)
    .await;
}

/// Step 1: refresh the servers whose VMs boot; on the reconcile cadence, list the clouds and
/// directories. The first reconcile (adopting what a previous run left) is waited for, at most
/// one backend call's timeout, so the first plan sees it; later ones run in the background.
async fn observe(shared: &Arc<Shared>, n: u64) {
    observe::refresh(shared);
    observe::expire_unknown_sessions(shared);
    if n.is_multiple_of(shared.reconcile_every) {
        // History of pools and configs the configuration no longer has (left in the store by
        // an earlier configuration) goes on the reconcile cadence.
        demand::prune(shared);
        super::requests::prune(shared);
        tasks::spawn(shared, Work::Reconcile, |s| async move {
            reconcile::reconcile(&s).await;
        });
        if n == 0 {
            shared
                .tasks
                .settle(Some(&Work::Reconcile), Some(shared.first_reconcile_wait))
                .await;
        }
    }
}

/// Steps 2 and 3: one snapshot per pool, read from the records in one pass, and its plan.
fn plan(shared: &Shared, now: Timestamp) -> Vec<(String, Plan)> {
    let snapshots = {
        let records = shared.records();
        let mut snapshots = snapshot::snapshots(shared, &records, None);
        demand::signals(shared, &records, &mut snapshots, now);
        snapshots
    };
    snapshots
        .iter()
        .map(|snap| {
            let plan = engine::plan(snap, now);
            if !plan.actions.is_empty() {
                tracing::debug!(pool = %snap.pool, actions = plan.actions.len(), "planned");
            }
            (snap.pool.clone(), plan)
        })
        .collect()
}

/// Step 5: drop requests that waited too long, seat the others where there is room.
fn seat_the_queue(shared: &Shared) {
    queue::expire(shared);
    queue::serve(shared, None);
}
