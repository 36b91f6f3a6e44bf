//! One tick, read top-down as its named steps: observe → snapshot → plan → execute → seat →
//! persist. Each step takes the parts of the controller it needs and returns what it did. Ticks
//! never overlap, and no step waits on a provider or a directory: their work runs in the
//! background (`tasks.rs`) and its results reach the records when it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use tracing::Instrument;

use super::{Autoscaler, Shared, execute, observe, queue, role, snapshot, state};
use crate::engine::{self, Plan, PoolSnapshot};

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
                () = tokio::time::sleep(self.shared.setup().tick_interval) => {}
                // Granted the lease: take over now, not a tick interval later.
                () = self.shared.clock.wake.notified() => {}
            }
        }
    }
}

/// One cycle, as its six steps. Snapshot and seat borrow only the configuration and the
/// records; observe, execute and persist take the controller, as they start background work or
/// save. Each returns what it did (the work observe started, what execute started, the seats
/// and expiries, which are told here); the background work reports its own events as it ends.
pub(crate) async fn tick(shared: &Arc<Shared>) {
    let _one_tick_at_a_time = shared.clock.tick_lock.lock().await;
    if !role::this_tick_acts(shared).await {
        return;
    }
    let n = shared.clock.ticks.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("tick", n);
    async {
        let began = tokio::time::Instant::now();
        // 1. Refresh booting servers; list the clouds and directories on the reconcile cadence.
        let observed = observe::observe(shared, n).await;
        // The configuration this tick plans with, against the last plan's.
        super::rollout::note_generations(shared);
        // 2. One snapshot per pool, with its demand signal.
        let now = shared.clock.now();
        let snapshots = snapshot::snapshots_at(&shared.setup(), &shared.state, now);
        // 3. The plans (pure).
        let plans = plan(snapshots, now);
        // 4. The plans become records and background work.
        let executed = execute::execute(shared, plans, now).await;
        // 5. Requests that waited too long go; the others take the free slots.
        let seated = queue::seat_the_queue(&shared.setup(), &shared.state, shared.clock.now());
        let seats = seated.len();
        shared.events.tell(seated);
        // 6. Save what changed. A failure is logged, counted and retried by the next save.
        let _ = state::persist(shared).await;
        shared.clock.ticked();
        metrics::histogram!("kasm_scale_tick_seconds").record(began.elapsed().as_secs_f64());
        tracing::debug!(
            elapsed_ms = began.elapsed().as_millis() as u64,
            observed,
            started = executed.started,
            seats,
            "tick done"
        );
    }
    .instrument(span)
    .await;
}

/// Step 3: each pool's plan.
fn plan(snapshots: Vec<PoolSnapshot>, now: Timestamp) -> Vec<(String, Plan)> {
    snapshots
        .into_iter()
        .map(|snap| {
            let plan = engine::plan(&snap, now);
            if !plan.actions.is_empty() {
                tracing::debug!(pool = %snap.pool, actions = plan.actions.len(), "planned");
            }
            (snap.pool, plan)
        })
        .collect()
}
