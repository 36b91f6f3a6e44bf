//! The leader lease: one row (`kasm_scale_lease`), its expiry computed by the database's clock.
//! [`LeaseKeeper`] takes it when it is free, renews it every third of its TTL, and makes the
//! controller step down by its own monotonic clock before the lease can expire (self-fencing):
//! the deadline is the send time of the last successful renewal plus the TTL minus a margin, and
//! the database computed the expiry after that send, so the old leader always stops first.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::controller::{Autoscaler, Role};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::PostgresStore;
use crate::error::describe;

/// How a replica takes part in the lease.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// How long the lease lasts without renewal (config `lease_ttl`, ours: 15 s).
    pub ttl: Duration,
    /// The address clients reach this replica at, shown by followers to callers of write APIs.
    pub address: String,
    /// This replica's name in the lease row: unique per process (default: a fresh UUID).
    pub holder: String,
}

impl LeaseOptions {
    /// A lease of `ttl`, this replica reachable at `address`, named by a fresh UUID.
    pub fn new(ttl: Duration, address: impl Into<String>) -> Self {
        Self {
            ttl,
            address: address.into(),
            holder: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Renewed this often: a third of the TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long before the database's expiry a leader that could not renew stops acting: a
    /// fifth of the TTL (for clock-rate differences and the time to stop).
    pub fn margin(&self) -> Duration {
        self.ttl / 5
    }
}

/// The lease as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Who holds (or last held) it.
    pub holder: Option<String>,
    /// The holder's advertised address.
    pub address: Option<String>,
    /// Grows with every new leader.
    pub epoch: i64,
    /// Time left before it expires (zero when expired).
    pub remaining: Duration,
}

impl LeaseState {
    /// Whether someone holds it now.
    pub fn live(&self) -> bool {
        !self.remaining.is_zero()
    }
}

const TTL_MS: &str = "($3::bigint * interval '1 millisecond')";

/// The lease's SQL.
struct Lease {
    store: Arc<PostgresStore>,
    options: LeaseOptions,
}

impl Lease {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.options.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.store.pool().get().await.map_err(|e| e.to_string())
    }

    /// Takes the lease if it expired: its new epoch.
    #[tracing::instrument(level = "debug", skip(self), fields(holder = %self.options.holder))]
    async fn acquire(&self) -> Result<Option<i64>, String> {
        let client = self.client().await?;
        // FOR UPDATE first: it waits for the saves in flight (they hold FOR KEY SHARE on the
        // row), so a save either lands before the new epoch exists or sees it and is refused.
        // Renewals (a plain UPDATE) do not wait for saves.
        let sql = format!(
            "WITH locked AS (SELECT name FROM kasm_scale_lease WHERE name = 'leader' FOR UPDATE) \
             UPDATE kasm_scale_lease l SET holder = $1, address = $2, epoch = l.epoch + 1, \
             expires_at = clock_timestamp() + {TTL_MS} \
             FROM locked WHERE l.name = locked.name AND l.expires_at <= clock_timestamp() \
             RETURNING l.epoch"
        );
        let row = client
            .query_opt(
                &sql,
                &[&self.options.holder, &self.options.address, &self.ttl_ms()],
            )
            .await
            .map_err(|e| describe(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Extends the lease of `epoch` if this replica still holds it and it has not expired.
    #[tracing::instrument(level = "debug", skip(self), fields(holder = %self.options.holder))]
    async fn renew(&self, epoch: i64) -> Result<bool, String> {
        let client = self.client().await?;
        let sql = format!(
            "UPDATE kasm_scale_lease SET expires_at = clock_timestamp() + {TTL_MS} \
             WHERE name = 'leader' AND holder = $1 AND epoch = $2 \
             AND expires_at > clock_timestamp()"
        );
        let n = client
            .execute(&sql, &[&self.options.holder, &epoch, &self.ttl_ms()])
            .await
            .map_err(|e| describe(&e))?;
        Ok(n == 1)
    }

    /// Ends the lease of `epoch` now, so another replica takes over at once.
    /// Bounded by the TTL (after it the lease has expired anyway).
    #[tracing::instrument(level = "debug", skip(self), fields(holder = %self.options.holder))]
    async fn release(&self, epoch: i64) -> Result<(), String> {
        tokio::time::timeout(self.options.ttl, self.release_now(epoch))
            .await
            .unwrap_or_else(|_| Err("no answer within the lease's TTL".into()))
    }

    async fn release_now(&self, epoch: i64) -> Result<(), String> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE kasm_scale_lease SET expires_at = '-infinity' \
                 WHERE name = 'leader' AND holder = $1 AND epoch = $2",
                &[&self.options.holder, &epoch],
            )
            .await
            .map_err(|e| describe(&e))?;
        Ok(())
    }
}

/// The lease as the database holds it now.
#[tracing::instrument(level = "debug", skip(store))]
pub async fn current(store: &PostgresStore) -> Result<LeaseState, String> {
    let client = store.pool().get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT holder, address, epoch, \
             CASE WHEN expires_at > clock_timestamp() \
                  THEN EXTRACT(EPOCH FROM (expires_at - clock_timestamp()))::float8 \
                  ELSE 0 END \
             FROM kasm_scale_lease WHERE name = 'leader'",
            &[],
        )
        .await
        .map_err(|e| describe(&e))?;
    let remaining: f64 = row.get(3);
    Ok(LeaseState {
        holder: row.get(0),
        address: row.get(1),
        epoch: row.get(2),
        remaining: Duration::try_from_secs_f64(remaining).unwrap_or(Duration::MAX),
    })
}

/// Keeps this replica's part in the lease in the background: takes it when free (then the
/// controller takes over: [`Autoscaler::lead`]), renews it, and steps the controller down the
/// moment it cannot be sure to hold it ([`Autoscaler::step_down`]).
pub struct LeaseKeeper {
    task: JoinHandle<()>,
    lease: Arc<Lease>,
    held: Arc<std::sync::Mutex<Option<i64>>>,
    scaler: Autoscaler,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("holder", &self.lease.options.holder)
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Starts keeping the lease for `scaler`, whose store is `store` (built with
    /// `.role(Role::Follower { leader: None })`).
    pub fn start(scaler: Autoscaler, store: Arc<PostgresStore>, options: LeaseOptions) -> Self {
        store.follow();
        if scaler.role() == Role::Sole {
            // Built without `.role(Follower)`: it must not act before it holds the lease.
            scaler.step_down(None);
        }
        let lease = Arc::new(Lease { store, options });
        let held = Arc::new(std::sync::Mutex::new(None));
        let task = tokio::spawn(keep(scaler.clone(), lease.clone(), held.clone()));
        Self {
            task,
            lease,
            held,
            scaler,
        }
    }

    /// The epoch of the lease this replica holds, if it does.
    pub fn held(&self) -> Option<i64> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This replica's name in the lease row.
    pub fn holder(&self) -> &str {
        &self.lease.options.holder
    }

    /// Stops at once, as a crash would (for tests): no step-down, no release; the lease
    /// expires by its TTL. The controller keeps its role until its owner drops it.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Stops keeping the lease: the controller steps down, and the lease (if held) is
    /// released so another replica takes over at once. Call it after the controller's last
    /// save.
    pub async fn shutdown(self) {
        let held = Arc::clone(&self.held);
        self.task.abort();
        let _ = self.task.await;
        self.scaler.step_down(None);
        self.lease.store.follow();
        let held = *held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(epoch) = held {
            match self.lease.release(epoch).await {
                Ok(()) => tracing::info!(epoch, "lease released"),
                Err(e) => {
                    tracing::warn!(epoch, error = %e, "cannot release the lease; it expires by itself")
                }
            }
        }
    }
}

/// The keeper's loop.
async fn keep(scaler: Autoscaler, lease: Arc<Lease>, held: Arc<std::sync::Mutex<Option<i64>>>) {
    let options = lease.options.clone();
    let set_held = |epoch: Option<i64>| *held.lock().unwrap_or_else(|e| e.into_inner()) = epoch;
    // While leading: the epoch, and when to stop acting without a renewal.
    let mut leading: Option<(i64, Instant)> = None;
    loop {
        match leading {
            None => {
                let sent = Instant::now();
                // Bounded: a hung database must not stall a follower forever.
                let acquired = tokio::time::timeout(options.renew_every(), lease.acquire()).await;
                match acquired {
                    Ok(Ok(Some(epoch))) => {
                        let deadline = sent + options.ttl - options.margin();
                        leading = Some((epoch, deadline));
                        set_held(Some(epoch));
                        lease.store.lead(epoch);
                        scaler.lead(u64::try_from(epoch).unwrap_or(0));
                        metrics::counter!("kasm_scale_lease_acquired_total").increment(1);
                        continue;
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot try for the lease"),
                    Err(_) => tracing::warn!("trying for the lease took too long"),
                }
                // Someone else leads: note where, and wake when their lease could expire.
                let wait = match tokio::time::timeout(options.renew_every(), current(&lease.store))
                    .await
                {
                    Ok(Ok(state)) => {
                        if state.live() && state.holder.as_deref() == Some(options.holder.as_str())
                        {
                            // Ours: an acquire whose answer was lost (timeout) took it. Lead
                            // with what is left of it.
                            let deadline = (Instant::now() + state.remaining)
                                .checked_sub(options.margin())
                                .unwrap_or_else(Instant::now);
                            leading = Some((state.epoch, deadline));
                            set_held(Some(state.epoch));
                            lease.store.lead(state.epoch);
                            scaler.lead(u64::try_from(state.epoch).unwrap_or(0));
                            continue;
                        }
                        if state.live() {
                            scaler.step_down(state.address.clone());
                        }
                        (state.remaining + Duration::from_millis(10)).min(options.renew_every())
                    }
                    _ => options.renew_every(),
                };
                tokio::time::sleep(wait).await;
            }
            Some((epoch, deadline)) => {
                if matches!(scaler.role(), Role::Follower { .. }) {
                    // The controller stepped down on its own (a save was refused): give the
                    // lease up, so that a replica (this one too) takes over with a fresh load,
                    // instead of holding it with nobody acting.
                    lease.store.follow();
                    set_held(None);
                    leading = None;
                    if let Err(e) = lease.release(epoch).await {
                        tracing::warn!(epoch, error = %e, "cannot release the lease; it expires by itself");
                    }
                    continue;
                }
                let next = (deadline + options.margin())
                    .checked_sub(options.ttl - options.renew_every())
                    .unwrap_or(deadline)
                    .min(deadline);
                tokio::time::sleep_until(next).await;
                let mut renewed = false;
                // Try until the deadline: a slow or lost connection gets several chances.
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match tokio::time::timeout_at(deadline, lease.renew(epoch)).await {
                        Ok(Ok(true)) => {
                            leading = Some((epoch, sent + options.ttl - options.margin()));
                            renewed = true;
                            break;
                        }
                        Ok(Ok(false)) => {
                            tracing::warn!(epoch, "the lease was taken: stepping down");
                            break;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(epoch, error = %e, "cannot renew the lease");
                            tokio::time::sleep(Duration::from_millis(100).min(options.margin()))
                                .await;
                        }
                        Err(_) => break,
                    }
                }
                if !renewed {
                    // Stop acting first, then refuse writes in the store as well.
                    scaler.step_down(None);
                    lease.store.follow();
                    set_held(None);
                    leading = None;
                    metrics::counter!("kasm_scale_lease_lost_total").increment(1);
                    tracing::warn!(epoch, "lease not renewed in time: stepped down");
                }
            }
        }
    }
}
