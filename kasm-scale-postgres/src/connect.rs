//! Connections: a pool of `pool_size` connections to the configured URL, with the password from
//! the environment or a file, over TLS (rustls, the configured CA) unless the host is loopback.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use kasm_scale_core::config::PostgresStoreConfig;
use kasm_scale_core::secret::Secret;

use crate::error::ConnectError;

/// How long one statement may run before the database cancels it (ours): shorter than the
/// controller's store timeout, so a hung statement fails as an error the controller retries.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take (ours).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
        let text = kasm_scale_core::read_input_file(path).map_err(|e| {
            ConnectError::Config(format!("password_file: cannot read `{path}`: {e}"))
        })?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        return Ok(Some(Secret::new(line)));
    }
    Ok(None)
}

/// The TLS connector for the configured CA.
fn tls(ca_file: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectError> {
    let pem = kasm_scale_core::read_input_file(ca_file)
        .map_err(|e| ConnectError::Config(format!("tls_ca_file: cannot read `{ca_file}`: {e}")))?
        .into_bytes();
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

/// What the URL may not say, whatever form it takes (`user:password@`, `?password=`,
/// `?host=`, `?hostaddr=`, `host=a,b`, several hosts in the authority, key=value pairs): a
/// password (it would travel with the URL into logs), a host list tokio-postgres cannot connect
/// with, and, without a CA, any address a connection would go to that is not loopback (plain
/// TCP only on this machine). With a CA, every address needs a host name to check the server's
/// certificate against.
fn check_url(pg: &tokio_postgres::Config, tls: bool) -> Result<(), ConnectError> {
    use tokio_postgres::config::Host;
    if pg.get_password().is_some() {
        return Err(ConnectError::Config(
            "url: must not carry a password: use password_env or password_file".into(),
        ));
    }
    let (hosts, addrs) = (pg.get_hosts(), pg.get_hostaddrs());
    if hosts.is_empty() && addrs.is_empty() {
        return Err(ConnectError::Config(
            "url: names no host (give a host, or host= or hostaddr=)".into(),
        ));
    }
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(ConnectError::Config(format!(
            "url: {} hosts but {} hostaddr: give one hostaddr per host, or none",
            hosts.len(),
            addrs.len()
        )));
    }
    let loopback_ip = |ip: std::net::IpAddr| ip.to_canonical().is_loopback();
    // As tokio-postgres tries them: host i at hostaddr i when given (the host then only names
    // the server for TLS), else at host i.
    for i in 0..hosts.len().max(addrs.len()) {
        let host = hosts.get(i);
        let (target, loopback) = match (addrs.get(i), host) {
            (Some(addr), _) => {
                if tls && !matches!(host, Some(Host::Tcp(_))) {
                    return Err(ConnectError::Config(format!(
                        "url: hostaddr `{addr}` has no host name to check the server's \
                         certificate against (tls_ca_file): give host= as well"
                    )));
                }
                let named = match host {
                    Some(Host::Tcp(name)) => format!(" (host `{name}`)"),
                    _ => String::new(),
                };
                (format!("hostaddr `{addr}`{named}"), loopback_ip(*addr))
            }
            (None, Some(Host::Tcp(name))) => {
                let loopback = name == "localhost"
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(loopback_ip);
                (format!("host `{name}`"), loopback)
            }
            #[cfg(unix)]
            (None, Some(Host::Unix(_))) => continue,
            (None, None) => continue,
        };
        if !tls && !loopback {
            return Err(ConnectError::Config(format!(
                "url: {target} is not loopback: give tls_ca_file (TLS is required off this \
                 machine)"
            )));
        }
    }
    Ok(())
}

/// A pool for `config` (connections open on first use), and the schema migrated.
pub async fn connect(config: &PostgresStoreConfig) -> Result<Pool, ConnectError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e| ConnectError::Config(format!("url: {e}")))?;
    check_url(&pg, config.tls_ca_file.is_some())?;
    if let Some(password) = password(config)? {
        pg.password(password.expose());
    }
    if config.tls_ca_file.is_some() {
        // TLS or nothing: a server (or a man in the middle) cannot talk us down to plain text.
        pg.ssl_mode(tokio_postgres::config::SslMode::Require);
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
    crate::migrate::migrate(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, tls: bool) -> Result<(), String> {
        let pg: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        check_url(&pg, tls).map_err(|e| e.to_string())
    }

    #[test]
    fn the_url_carries_no_password_in_any_form() {
        for url in [
            "postgres://kasm:secret@127.0.0.1:5432/kasm",
            "postgres://kasm@127.0.0.1:5432/kasm?password=secret",
            "host=127.0.0.1 user=kasm password=secret dbname=kasm",
        ] {
            let e = check(url, true).expect_err(url);
            assert!(e.contains("must not carry a password"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn plain_tcp_goes_to_loopback_only_whatever_the_url_says() {
        check("postgres://kasm@127.0.0.1:5432/kasm", false).expect("IPv4 loopback");
        check("postgres://kasm@[::1]:5432/kasm", false).expect("IPv6 loopback");
        check("postgres://kasm@localhost/kasm", false).expect("localhost");
        for url in [
            "postgres://kasm@db.example.com/kasm",
            "postgres://kasm@127.0.0.1/kasm?host=db.example.com",
            "postgres://kasm@127.0.0.1,10.0.0.9/kasm",
        ] {
            let e = check(url, false).expect_err(url);
            assert!(
                e.contains("is not loopback") && e.contains("tls_ca_file"),
                "{e}"
            );
            check(url, true).expect("with a CA, any host");
        }
    }

    /// tokio-postgres connects to `hostaddr[i]` when it is given (`host[i]` then only names the
    /// server for TLS), else to `host[i]`, trying each in turn: every one is judged.
    #[test]
    fn every_address_a_connection_would_use_is_judged() {
        for url in [
            "host=localhost hostaddr=10.0.0.9 user=kasm dbname=kasm",
            "hostaddr=10.0.0.9 user=kasm dbname=kasm",
            "postgres://kasm@localhost/kasm?hostaddr=10.0.0.9",
            "host=/run/postgresql hostaddr=10.0.0.9 user=kasm",
            "host=127.0.0.1,::1 hostaddr=127.0.0.1,10.0.0.9 user=kasm",
            "hostaddr=127.0.0.1,10.0.0.9 user=kasm",
            "host=127.0.0.1,db.example.com user=kasm",
            "postgres://kasm@localhost,db.example.com:5433/kasm",
            "postgres://kasm@/kasm?host=/run/postgresql&host=db.example.com",
        ] {
            let e = check(url, false).expect_err(url);
            assert!(
                e.contains("is not loopback") && e.contains("tls_ca_file"),
                "{url}: {e}"
            );
            assert!(
                e.contains("`10.0.0.9`") || e.contains("`db.example.com`"),
                "{url}: the error names the address: {e}"
            );
        }
        for url in [
            "host=db.example.com hostaddr=127.0.0.1 user=kasm",
            "host=localhost,db.example.com hostaddr=127.0.0.1,::1 user=kasm",
            "hostaddr=::1 user=kasm",
            "host=::ffff:127.0.0.1 user=kasm",
            "host=/run/postgresql,localhost user=kasm",
            "postgres://kasm@%2Frun%2Fpostgresql/kasm",
        ] {
            check(url, false).unwrap_or_else(|e| panic!("{url}: loopback or a socket: {e}"));
        }
    }

    #[test]
    fn host_lists_that_cannot_connect_are_refused_with_the_reason() {
        for tls in [false, true] {
            let e = check("host=localhost,127.0.0.1 hostaddr=127.0.0.1 user=kasm", tls)
                .expect_err("two hosts, one hostaddr");
            assert!(e.contains("2 hosts but 1 hostaddr"), "{e}");
            let e = check("user=kasm dbname=kasm", tls).expect_err("no host");
            assert!(e.contains("names no host"), "{e}");
        }
        // TLS checks the certificate against the host name: an address alone has none.
        for url in [
            "hostaddr=10.0.0.9 user=kasm",
            "host=db.example.com,/run/postgresql hostaddr=10.0.0.8,10.0.0.9 user=kasm",
        ] {
            let e = check(url, true).expect_err(url);
            assert!(
                e.contains("`10.0.0.9`") && e.contains("no host name"),
                "{url}: {e}"
            );
        }
        check("host=db.example.com hostaddr=10.0.0.9 user=kasm", true)
            .expect("the certificate is checked against db.example.com");
    }
}
