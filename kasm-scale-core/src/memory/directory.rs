//! [`MemoryDirectory`]: a `DirectoryService` whose computer records live in this process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Dn;
use crate::secret::Secret;
use crate::traits::{
    BackendError, ComputerRecord, ComputerSpec, DirectoryService, Owner, check_computer_name,
    generate_join_password,
};

#[derive(Debug)]
struct Record {
    dn: String,
    /// The container, normalized (see [`MemoryDirectory::container`]).
    container: String,
    name: String,
    owner: Owner,
    password: Secret,
    children: u32,
}

#[derive(Debug)]
struct Inner {
    rng: ChaCha8Rng,
    /// By (container DN in lower case, name in upper case): AD compares both without case.
    records: BTreeMap<(String, String), Record>,
}

/// An in-memory Active Directory: computer records with one-time passwords and child objects.
#[derive(Debug)]
pub struct MemoryDirectory {
    name: String,
    domain: String,
    inner: Mutex<Inner>,
}

impl MemoryDirectory {
    /// A directory for LDAP config `name` and AD domain `domain`, deterministic for `seed`.
    pub fn new(name: impl Into<String>, domain: impl Into<String>, seed: u64) -> Self {
        let inner = Inner {
            rng: ChaCha8Rng::seed_from_u64(seed),
            records: BTreeMap::new(),
        };
        Self {
            name: name.into(),
            domain: domain.into(),
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `container_dn` compared as AD compares DNs: without case and spacing around `,` and `=`.
    fn container(container_dn: &str) -> String {
        Dn::parse(container_dn)
            .map_or_else(|_| container_dn.to_owned(), |d| d.to_string())
            .to_ascii_lowercase()
    }

    fn key(container_dn: &str, name: &str) -> (String, String) {
        (container_dn.to_ascii_lowercase(), name.to_ascii_uppercase())
    }

    /// Gives a record a child object (as BitLocker recovery keys are), for tests of recursive
    /// deletion. Returns whether the record exists.
    pub fn add_child(&self, container_dn: &str, name: &str) -> bool {
        self.lock()
            .records
            .get_mut(&Self::key(container_dn, name))
            .map(|r| r.children += 1)
            .is_some()
    }

    /// Whether `password` is the current join password of the record (a join would succeed).
    pub fn can_join(&self, container_dn: &str, name: &str, password: &str) -> bool {
        self.lock()
            .records
            .get(&Self::key(container_dn, name))
            .is_some_and(|r| r.password.expose() == password)
    }

    /// Records now.
    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }
}

#[async_trait]
impl DirectoryService for MemoryDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    fn domain(&self) -> &str {
        &self.domain
    }

    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError> {
        check_computer_name(&spec.name).map_err(BackendError::InvalidRequest)?;
        let container = Dn::parse(&spec.container_dn).map_err(BackendError::InvalidRequest)?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let password = generate_join_password(&mut inner.rng);
        let key = Self::key(&spec.container_dn, &spec.name);
        match inner.records.get_mut(&key) {
            Some(r) if r.owner == spec.owner => r.password = password.clone(),
            Some(_) => {
                return Err(BackendError::Conflict(format!(
                    "computer `{}` exists and is not this server's",
                    spec.name
                )));
            }
            None => {
                let dn = format!("CN={},{container}", spec.name);
                let record = Record {
                    dn,
                    container: Self::container(&spec.container_dn),
                    name: spec.name.clone(),
                    owner: spec.owner.clone(),
                    password: password.clone(),
                    children: 0,
                };
                inner.records.insert(key, record);
            }
        }
        Ok(password)
    }

    async fn delete_computer(
        &self,
        container_dn: &str,
        name: &str,
        recursive: bool,
    ) -> Result<(), BackendError> {
        let mut inner = self.lock();
        let key = Self::key(container_dn, name);
        match inner.records.get(&key) {
            None => Ok(()),
            Some(r) if r.children > 0 && !recursive => Err(BackendError::InvalidRequest(format!(
                "computer `{name}` has {} child object(s) (notAllowedOnNonLeaf); enable ad_recursive_machine_record_cleanup",
                r.children
            ))),
            Some(_) => {
                inner.records.remove(&key);
                Ok(())
            }
        }
    }

    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError> {
        let containers: Vec<String> = containers.iter().map(|c| Self::container(c)).collect();
        Ok(self
            .lock()
            .records
            .values()
            .filter(|r| r.owner.owner_id == owner_id && containers.contains(&r.container))
            .map(|r| ComputerRecord {
                dn: r.dn.clone(),
                name: r.name.clone(),
                owner: r.owner.clone(),
            })
            .collect())
    }
}
