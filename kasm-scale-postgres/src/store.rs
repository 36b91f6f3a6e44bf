//! [`PostgresStore`]: the controller's records in PostgreSQL, saved as the rows that changed,
//! each save one transaction fenced by the lease's epoch.

use std::sync::Mutex;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use kasm_scale_core::config::PostgresStoreConfig;
use kasm_scale_core::controller::Records;
use kasm_scale_core::traits::{StateStore, StoreError};
use tokio_postgres::error::SqlState;
use tracing::Instrument;

use crate::connect::connect;
use crate::error::{ConnectError, describe};
use crate::rows::{self, Changes};

/// How often a save is tried when the database reports a serialization failure, a deadlock or a
/// dropped connection (ours).
const ATTEMPTS: u32 = 4;

/// A save on top of a known version, as one statement: `$1` the version last read, `$2` this
/// replica's epoch (NULL: no lease held, so no live lease may exist), `$3`/`$4` the rows to
/// delete, `$5`..`$7` the rows to write. Returns the new version (NULL when refused) and what
/// the lease and the version are, to say why. Deleted and written keys are disjoint.
const DIFF: &str = "\
WITH lease AS (
    SELECT epoch, holder, expires_at > clock_timestamp() AS live
    FROM kasm_scale_lease WHERE name = 'leader' FOR KEY SHARE
), ok AS (
    UPDATE kasm_scale_version SET version = version + 1
    WHERE name = 'records' AND version = $1
      AND (SELECT CASE WHEN $2::bigint IS NULL THEN NOT live ELSE epoch = $2 END FROM lease)
    RETURNING version
), deleted AS (
    DELETE FROM kasm_scale_records r
    USING unnest($3::text[], $4::text[]) AS d(kind, key)
    WHERE r.kind = d.kind AND r.key = d.key AND EXISTS (SELECT 1 FROM ok)
    RETURNING 1
), written AS (
    INSERT INTO kasm_scale_records (kind, key, value)
    SELECT u.kind, u.key, u.value::jsonb
    FROM unnest($5::text[], $6::text[], $7::text[]) AS u(kind, key, value)
    WHERE EXISTS (SELECT 1 FROM ok)
    ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value
    RETURNING 1
)
SELECT (SELECT version FROM ok), l.epoch, l.holder, l.live,
       (SELECT version FROM kasm_scale_version WHERE name = 'records')
FROM lease l";

/// Why the lease forbids a write by `fence`, as the lease row says (`epoch`, `holder`, whether
/// it is `live`); `None` when it allows it.
fn lease_refusal(fence: Fence, epoch: i64, holder: Option<&str>, live: bool) -> Option<String> {
    match fence {
        Fence::Leader(ours) if epoch != ours => Some(format!(
            "the lease is at epoch {epoch}, this replica's is {ours}: another replica leads"
        )),
        Fence::Unfenced if live => Some(format!(
            "replica `{}` holds the lease (epoch {epoch})",
            holder.unwrap_or_default()
        )),
        Fence::Follower => Some("this replica does not hold the lease".into()),
        _ => None,
    }
}

/// Whose writes this store makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// No lease in use: writes are refused only while another process holds a live lease.
    Unfenced,
    /// The holder of the lease of this epoch: writes are refused once a newer epoch exists.
    Leader(i64),
    /// Not the holder: every write is refused.
    Follower,
}

/// The controller's records in PostgreSQL (see the crate's documentation). Cheap to share:
/// give an `Arc` of it to the builder and to the [`LeaseKeeper`](crate::LeaseKeeper).
pub struct PostgresStore {
    pool: Pool,
    fence: Mutex<Fence>,
    /// What the database holds, as of the last successful load or save, and its version
    /// (`None`: unknown, so the next save rewrites every row). Held through a save: saves of one
    /// store run one at a time.
    saved: tokio::sync::Mutex<Option<(Records, i64)>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("fence", &self.fence())
            .finish_non_exhaustive()
    }
}

/// Whether trying again may succeed: a serialization failure, a deadlock, a cancelled statement
/// (timeout), or a connection that dropped.
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::QUERY_CANCELED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code),
        None => e.is_closed() || e.as_db_error().is_none(),
    }
}

/// One failed attempt: whether to try again, and the error to report.
struct Failure {
    retry: bool,
    /// The commit was sent: whether it took effect is unknown.
    unknown_outcome: bool,
    error: StoreError,
}

impl Failure {
    fn db(e: &tokio_postgres::Error) -> Self {
        Failure {
            retry: transient(e),
            unknown_outcome: false,
            error: StoreError::Unavailable(describe(e)),
        }
    }
}

impl PostgresStore {
    /// Connects with `config` (a pool of `pool_size` connections) and migrates the schema.
    pub async fn connect(config: &PostgresStoreConfig) -> Result<Self, ConnectError> {
        Ok(Self::with_pool(connect(config).await?))
    }

    /// A store on an existing pool (its schema already migrated with [`crate::migrate`]).
    pub fn with_pool(pool: Pool) -> Self {
        Self {
            pool,
            fence: Mutex::new(Fence::Unfenced),
            saved: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection pool (for the lease, and for tests).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn fence(&self) -> Fence {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes from now on carry `epoch` (this replica holds the lease of that epoch).
    pub(crate) fn lead(&self, epoch: i64) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Fence::Leader(epoch);
    }

    /// Writes from now on are refused (this replica does not hold the lease).
    pub(crate) fn follow(&self) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Fence::Follower;
    }

    /// One attempt at a diff on top of version `base`: ONE statement (one round trip, its own
    /// transaction) that takes the share lock on the lease row, bumps the version only if the
    /// lease and `base` allow it, and writes the rows only if the version moved.
    async fn try_diff(&self, changes: &Changes, base: i64, fence: Fence) -> Result<i64, Failure> {
        let client = self.pool.get().await.map_err(|e| Failure {
            retry: true,
            unknown_outcome: false,
            error: StoreError::Unavailable(format!("no connection: {e}")),
        })?;
        let statement = client
            .prepare_cached(DIFF)
            .await
            .map_err(|e| Failure::db(&e))?;
        let epoch = match fence {
            Fence::Leader(e) => Some(e),
            Fence::Unfenced | Fence::Follower => None,
        };
        let row = client
            .query_one(
                &statement,
                &[
                    &base,
                    &epoch,
                    &changes.delete_kinds,
                    &changes.delete_keys,
                    &changes.upsert_kinds,
                    &changes.upsert_keys,
                    &changes.upsert_values,
                ],
            )
            .await
            .map_err(|e| Failure {
                retry: transient(&e),
                // A statement the server refused was rolled back; a lost connection may have
                // committed it or not.
                unknown_outcome: e.as_db_error().is_none(),
                error: StoreError::Unavailable(describe(&e)),
            })?;
        let (written, lease_epoch, holder, live, stored): (
            Option<i64>,
            i64,
            Option<String>,
            bool,
            i64,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if let Some(version) = written {
            return Ok(version);
        }
        let why = lease_refusal(fence, lease_epoch, holder.as_deref(), live).unwrap_or_else(|| {
            format!(
                "the stored state changed since this process last read it (version {base}, now \
                 {stored}): another process writes it"
            )
        });
        Err(Failure {
            retry: false,
            unknown_outcome: false,
            error: StoreError::Fenced(why),
        })
    }

    /// One attempt at a whole rewrite (what the database holds is unknown: every row is
    /// deleted, then `changes` written), if the lease allows it, in one transaction. Returns the
    /// new version.
    async fn try_rewrite(&self, changes: &Changes, fence: Fence) -> Result<i64, Failure> {
        let mut client = self.pool.get().await.map_err(|e| Failure {
            retry: true,
            unknown_outcome: false,
            error: StoreError::Unavailable(format!("no connection: {e}")),
        })?;
        let tx = client.transaction().await.map_err(|e| Failure::db(&e))?;
        // Prepared once per connection (deadpool's statement cache).
        let (lease, version, clear, delete, upsert) = tokio::try_join!(
            tx.prepare_cached(
                "SELECT epoch, holder, expires_at > clock_timestamp() \
                 FROM kasm_scale_lease WHERE name = 'leader' FOR KEY SHARE"
            ),
            tx.prepare_cached(
                "UPDATE kasm_scale_version SET version = version + 1 \
                 WHERE name = 'records' RETURNING version"
            ),
            tx.prepare_cached("DELETE FROM kasm_scale_records"),
            tx.prepare_cached(
                "DELETE FROM kasm_scale_records r \
                 USING unnest($1::text[], $2::text[]) AS d(kind, key) \
                 WHERE r.kind = d.kind AND r.key = d.key"
            ),
            tx.prepare_cached(
                "INSERT INTO kasm_scale_records (kind, key, value) \
                 SELECT kind, key, value::jsonb \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(kind, key, value) \
                 ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value"
            ),
        )
        .map_err(|e| Failure::db(&e))?;
        // Sent together (pipelined: one round trip), checked before the commit. The key-share
        // lock on the lease row makes a takeover (which locks it FOR UPDATE) wait for this
        // transaction: either this write lands
        // before the new leader loads, or it sees the new epoch and is rolled back.
        let lease = tx.query_one(&lease, &[]);
        let version = tx.query_one(&version, &[]);
        let clear = tx.execute(&clear, &[]);
        let delete = async {
            if !changes.delete_keys.is_empty() {
                tx.execute(&delete, &[&changes.delete_kinds, &changes.delete_keys])
                    .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        };
        let upsert = async {
            if !changes.upsert_keys.is_empty() {
                tx.execute(
                    &upsert,
                    &[
                        &changes.upsert_kinds,
                        &changes.upsert_keys,
                        &changes.upsert_values,
                    ],
                )
                .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        };
        let (lease, version, clear, delete, upsert) =
            tokio::join!(lease, version, clear, delete, upsert);
        let lease = lease.map_err(|e| Failure::db(&e))?;
        let version: i64 = version.map_err(|e| Failure::db(&e))?.get(0);
        let (epoch, holder, live): (i64, Option<String>, bool) =
            (lease.get(0), lease.get(1), lease.get(2));
        if let Some(why) = lease_refusal(fence, epoch, holder.as_deref(), live) {
            // Dropping the transaction rolls every statement back.
            return Err(Failure {
                retry: false,
                unknown_outcome: false,
                error: StoreError::Fenced(why),
            });
        }
        clear.map_err(|e| Failure::db(&e))?;
        for written in [delete, upsert] {
            written.map_err(|e| Failure::db(&e))?;
        }
        tx.commit().await.map_err(|e| Failure {
            retry: transient(&e),
            unknown_outcome: true,
            error: StoreError::Unavailable(format!("commit: {}", describe(&e))),
        })?;
        Ok(version)
    }
}

#[async_trait]
impl StateStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        let mut saved = self.saved.lock().await;
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no connection: {e}")))?;
        let unavailable = |e: tokio_postgres::Error| StoreError::Unavailable(describe(&e));
        // One snapshot: the rows and the version they are at.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(unavailable)?;
        let version: i64 = tx
            .query_one(
                "SELECT version FROM kasm_scale_version WHERE name = 'records'",
                &[],
            )
            .await
            .map_err(unavailable)?
            .get(0);
        let rows = tx
            .query("SELECT kind, key, value::text FROM kasm_scale_records", &[])
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        if rows.is_empty() {
            *saved = Some((Records::default(), version));
            return Ok(None);
        }
        let records = rows::records(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))))?;
        *saved = Some((records.clone(), version));
        Ok(Some(records))
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let fence = self.fence();
        if fence == Fence::Follower {
            return Err(StoreError::Fenced(
                "this replica does not hold the lease".into(),
            ));
        }
        let mut saved = self.saved.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Unknown while the attempt is in flight: if this future is dropped mid-statement
            // (the controller's store timeout), the next save rewrites every row instead of
            // diffing against a state the database may no longer hold.
            let known = saved.take();
            let full = known.is_none();
            let base = known.as_ref().map(|(_, v)| *v);
            let changes = rows::changes(known.as_ref().map(|(r, _)| r), records);
            if !full && changes.is_empty() {
                *saved = known;
                return Ok(());
            }
            let span = tracing::debug_span!(
                "postgres_save",
                rows = changes.upsert_keys.len(),
                deleted = changes.delete_keys.len(),
                full,
                attempt
            );
            let attempt_once = async {
                match base {
                    Some(base) => self.try_diff(&changes, base, fence).await,
                    None => self.try_rewrite(&changes, fence).await,
                }
            };
            match attempt_once.instrument(span).await {
                Ok(version) => {
                    *saved = Some((records.clone(), version));
                    metrics::counter!("kasm_scale_store_rows_written_total")
                        .increment(changes.upsert_keys.len() as u64);
                    return Ok(());
                }
                Err(f) => {
                    if !f.unknown_outcome {
                        // Nothing landed: the database still holds what it held.
                        *saved = known;
                    }
                    if !f.retry || attempt >= ATTEMPTS {
                        return Err(f.error);
                    }
                    tracing::warn!(error = %f.error, attempt, "save failed, trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                }
            }
        }
    }
}
