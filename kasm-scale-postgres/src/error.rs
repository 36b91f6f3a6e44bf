//! The errors of this crate's setup and how a database error reads in them: shared by the
//! connection, the migrations, the store and the lease, which all import from here.

/// Why the store cannot be set up. Never holds the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The settings are unusable.
    #[error("state_store: {0}")]
    Config(String),
    /// The database cannot be reached or refused us.
    #[error("state_store: cannot reach PostgreSQL: {0}")]
    Database(String),
    /// The schema cannot be migrated.
    #[error("state_store: cannot migrate the schema: {0}")]
    Migration(String),
}

/// A database error in words, with its SQLSTATE when the server sent one (never the password:
/// tokio-postgres does not put it in errors).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
