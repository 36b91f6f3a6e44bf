//! The schema, as versioned SQL migrations embedded in the crate. [`migrate`] applies the ones a
//! database lacks, in order, in ONE transaction under an advisory lock, and records each in
//! `kasm_scale_migrations`: two replicas starting together apply them once, and a failure leaves
//! the database as it was.

use deadpool_postgres::Pool;

use crate::error::{ConnectError, describe};

/// The migrations, oldest first: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "records_and_lease",
    include_str!("../migrations/0001_records_and_lease.sql"),
)];

/// The advisory lock key held while migrating (`kasm-scale` in ASCII, as a number).
const LOCK_KEY: i64 = 0x6b61_736d_7363_616c;

/// Brings the schema up to the newest migration. Refuses a database migrated by a newer
/// kasm-scale (it would not know its tables).
pub async fn migrate(pool: &Pool) -> Result<(), ConnectError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| ConnectError::Database(e.to_string()))?;
    let db = |e: tokio_postgres::Error| ConnectError::Migration(describe(&e));
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS kasm_scale_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM kasm_scale_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(ConnectError::Migration(format!(
            "the database is at schema version {current}, newer than this kasm-scale knows \
             ({newest}): upgrade kasm-scale"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            ConnectError::Migration(format!("{version} ({name}): {}", describe(&e)))
        })?;
        tx.execute(
            "INSERT INTO kasm_scale_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(db)?;
        tracing::info!(version, name, "schema migrated");
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}
