//! kasm-scale's state in PostgreSQL: [`PostgresStore`], a durable
//! [`StateStore`](kasm_scale_core::traits::StateStore) that several replicas share, and
//! [`LeaseKeeper`], which makes exactly one of them act at a time.
//!
//! - **Schema**: created and migrated by the versioned SQL migrations embedded in this crate
//!   (`migrations/`), applied in one transaction under an advisory lock (two replicas starting
//!   together do not race), recorded in `kasm_scale_migrations`. Re-running them changes nothing.
//! - **Records**: one row per server, session, pool queue, bookkeeping entry, orphan, tombstone
//!   and counter in `kasm_scale_records (kind, key, value jsonb)`. A save writes only the rows
//!   that changed since the last save, in one transaction.
//! - **Lease and fencing**: `kasm_scale_lease` holds the leader (holder, epoch, expiry by the
//!   database's clock, advertised address). The holder renews it every third of its TTL and
//!   steps down by its own monotonic clock before the lease can expire. Every save checks, in its
//!   transaction and under a share lock on the lease row, that its epoch is still the newest: a
//!   stale leader's write is refused whole ([`StoreError::Fenced`]), never half-applied.
//!
//! ```no_run
//! # async fn run(config: kasm_scale_core::config::PostgresStoreConfig,
//! #              scaler: kasm_scale_core::controller::Autoscaler,
//! #              store: std::sync::Arc<kasm_scale_postgres::PostgresStore>) {
//! use kasm_scale_postgres::{LeaseKeeper, LeaseOptions};
//! // `store` was made by `PostgresStore::connect(&config).await?` and given to the builder,
//! // with `.role(Role::Follower { leader: None })`.
//! let keeper = LeaseKeeper::start(
//!     scaler.clone(),
//!     store.clone(),
//!     LeaseOptions::new(std::time::Duration::from_secs(15), "https://10.0.0.5:8443"),
//! );
//! scaler.run(async { /* until shutdown */ }).await;
//! scaler.save().await;
//! keeper.shutdown().await; // releases the lease: another replica takes over at once
//! # }
//! ```
//!
//! [`StoreError::Fenced`]: kasm_scale_core::traits::StoreError::Fenced

mod connect;
mod error;
mod lease;
mod migrate;
mod rows;
mod store;

pub use connect::connect;
pub use error::ConnectError;
pub use lease::{LeaseKeeper, LeaseOptions, LeaseState, current as lease_state};
pub use migrate::{MIGRATIONS, migrate};
pub use store::PostgresStore;
