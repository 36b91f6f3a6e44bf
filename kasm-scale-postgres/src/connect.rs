//! Connections: a pool of `pool_size` connections to the configured URL, with the password from
//! the environment or a file, over TLS (rustls, the configured CA) unless the host is loopback.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use kasm_scale_core::config::PostgresStoreConfig;
use kasm_scale_core::secret::Secret;

/// How long one statement may run before the database cancels it (ours): shorter than the
/// controller's store timeout, so a hung statement fails as an error the controller retries.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take (ours).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The password from `password_env` or `password_file` (its first line), if either is given.
fn password(config: &PostgresStoreConfig) -> Result<Option<Secret>, ConnectError> {
    if let Some(var) = &config.password_env {
        let value = std::env::var(var).map_err(|_| {
            ConnectError::Config(format!(
                "password_env: the environment variable `{var}` is not set (or not UTF-8)"
            ))
        })?;
        return Ok(Some(Secret::new(value)));
    }
    if let Some(path) = &config.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConnectError::Config(format!("password_file: cannot read `{path}`: {e}"))
        })?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        return Ok(Some(Secret::new(line)));
    }
    Ok(None)
}

/// The TLS connector for the configured CA.
fn tls(ca_file: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectError> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| ConnectError::Config(format!("tls_ca_file: cannot read `{ca_file}`: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| {
            ConnectError::Config(format!("tls_ca_file: `{ca_file}` is not PEM: {e}"))
        })?;
        roots.add(cert).map_err(|e| {
            ConnectError::Config(format!(
                "tls_ca_file: `{ca_file}`: unusable certificate: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(ConnectError::Config(format!(
            "tls_ca_file: `{ca_file}` holds no certificate"
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(format!("tls_ca_file: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pool for `config` (connections open on first use), and the schema migrated.
pub async fn connect(config: &PostgresStoreConfig) -> Result<Pool, ConnectError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e| ConnectError::Config(format!("url: {e}")))?;
    if let Some(password) = password(config)? {
        pg.password(password.expose());
    }
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.options(format!(
        "-c statement_timeout={} -c lock_timeout={}",
        STATEMENT_TIMEOUT.as_millis(),
        STATEMENT_TIMEOUT.as_millis()
    ));
    if pg.get_application_name().is_none() {
        pg.application_name("kasm-scale");
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &config.tls_ca_file {
        Some(ca) => Manager::from_config(pg, tls(ca)?, manager_config),
        None => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
    };
    let size = usize::try_from(config.pool_size.max(1)).unwrap_or(1);
    let pool = Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| ConnectError::Config(format!("pool: {e}")))?;
    crate::migrate(&pool).await?;
    Ok(pool)
}
