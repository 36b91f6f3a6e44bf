//! A small pool of bound LDAP connections: at most `size` operations at once, idle connections
//! reused, a connection that broke dropped, and an operation whose reused connection turns out
//! dead (the server closed it while idle) tried once more on a new one: the one repeat inside a
//! call. Every other failure goes back classified, for the controller's retry policy.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasm_scale_core::Secret;
use kasm_scale_core::traits::BackendError;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use tokio::sync::Semaphore;

use crate::errors::{connection_lost, from_ldap};

/// Where and as whom to connect.
pub(crate) struct Pool {
    pub(crate) url: String,
    pub(crate) settings: LdapConnSettings,
    pub(crate) bind_dn: String,
    pub(crate) password: Secret,
    pub(crate) timeout: Duration,
    idle: Mutex<Vec<Ldap>>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password)
            .field("size", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of at most `size` connections.
    pub(crate) fn new(
        url: String,
        settings: LdapConnSettings,
        bind_dn: String,
        password: Secret,
        timeout: Duration,
        size: usize,
    ) -> Pool {
        Pool {
            url,
            settings: settings.set_conn_timeout(timeout),
            bind_dn,
            password,
            timeout,
            idle: Mutex::default(),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// A new connection, bound as the service account.
    async fn connect(&self) -> Result<Ldap, BackendError> {
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings.clone(), &self.url)
            .await
            .map_err(|e| from_ldap(&format!("cannot connect to {}", self.url), e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout)
            .simple_bind(&self.bind_dn, self.password.expose())
            .await
            .and_then(|r| r.success())
            .map_err(|e| from_ldap(&format!("cannot bind as {}", self.bind_dn), e))?;
        Ok(ldap)
    }

    fn idle_connection(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    fn put_back(&self, ldap: Ldap) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ldap);
    }

    /// Runs `op` on a connection (given its own handle, with the operation timeout set): one
    /// attempt, except that a reused connection found dead (the server closed it while idle) is
    /// replaced once by a new one. Nothing else is tried again: the controller's retry policy
    /// retries. `what` names the operation in errors.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, BackendError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| BackendError::Transient("the LDAP pool is closed".into()))?;
        let (ldap, reused) = match self.idle_connection() {
            Some(l) => (l, true),
            None => (self.connect().await?, false),
        };
        match self.attempt(ldap, &op).await {
            Err(e) if reused && connection_lost(&e) => {
                let fresh = self.connect().await?;
                self.attempt(fresh, &op).await
            }
            other => other,
        }
        .map_err(|e| from_ldap(what, e))
    }

    /// `op` on `ldap`; the connection goes back to the pool unless it broke or timed out.
    async fn attempt<T, F, Fut>(&self, ldap: Ldap, op: &F) -> Result<T, LdapError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        let mut handle = ldap.clone();
        handle.with_timeout(self.timeout);
        let result = op(handle).await;
        let broken = result
            .as_ref()
            .err()
            .is_some_and(|e| connection_lost(e) || matches!(e, LdapError::Timeout { .. }));
        if !broken {
            self.put_back(ldap);
        }
        result
    }
}
