//! [`LdapDirectory`]: computer records in Active Directory.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::Secret;
use kasm_scale_core::config::{Dn, LdapConfig};
use kasm_scale_core::traits::{
    BackendError, ComputerRecord, ComputerSpec, DirectoryService, Owner, check_computer_name,
    generate_join_password,
};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{LdapConnSettings, Mod, Scope, SearchEntry, SearchOptions, dn_escape, ldap_escape};
use rand::SeedableRng;

use crate::errors::{
    ENTRY_ALREADY_EXISTS, NO_SUCH_OBJECT, NOT_ALLOWED_ON_NON_LEAF, SIZE_LIMIT_EXCEEDED, from_result,
};
use crate::pool::Pool;
use crate::tls;

/// The Tree Delete control: delete an entry with its children.
pub const TREE_DELETE_OID: &str = "1.2.840.113556.1.4.805";

/// `userAccountControl` of a workstation trust account.
const WORKSTATION_TRUST_ACCOUNT: &str = "4096";

/// Search page size for listing records.
const PAGE_SIZE: i32 = 500;

/// Child objects named when a record cannot be deleted because of them.
const CHILDREN_NAMED: i32 = 3;

/// Connections kept by default.
const DEFAULT_POOL_SIZE: usize = 4;

/// Active Directory computer records over LDAPS or StartTLS, for one LDAP config.
#[derive(Debug, Clone)]
pub struct LdapDirectory {
    name: String,
    domain: String,
    pool: Arc<Pool>,
}

/// Builds an [`LdapDirectory`]; [`LdapDirectoryBuilder::build`] checks the config.
#[derive(Debug)]
pub struct LdapDirectoryBuilder {
    config: LdapConfig,
    pool_size: usize,
}

impl LdapDirectory {
    /// A builder for `config`.
    pub fn builder(config: LdapConfig) -> LdapDirectoryBuilder {
        LdapDirectoryBuilder {
            config,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl LdapDirectoryBuilder {
    /// At most this many connections (and operations at once). Default 4.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// Checks the config (URL, TLS, CA file, search base) and prepares the connection pool.
    /// Connections are made on first use.
    pub fn build(self) -> Result<LdapDirectory, BackendError> {
        let c = self.config;
        let invalid = |m: String| BackendError::InvalidRequest(format!("{}: {m}", c.name));
        let ldaps = c.url.starts_with("ldaps://");
        if !ldaps && !c.url.starts_with("ldap://") {
            return Err(invalid(format!(
                "url `{}` must start with ldaps:// or ldap://",
                c.url
            )));
        }
        if !ldaps && !c.start_tls && !c.danger_allow_plaintext {
            return Err(invalid(
                "an ldap:// url needs start_tls = true (AD sets passwords only over TLS); \
                 danger_allow_plaintext = true allows it in tests"
                    .into(),
            ));
        }
        let domain = c
            .domain()
            .ok_or_else(|| invalid("search_base has no DC= parts to derive the domain".into()))?;
        let mut settings = LdapConnSettings::new().set_starttls(!ldaps && c.start_tls);
        let plaintext = !ldaps && !c.start_tls;
        if c.danger_skip_tls_verify {
            settings = settings.set_no_tls_verify(true);
        } else if !plaintext {
            let tls = tls::client_config(c.ca_certificate_file.as_deref()).map_err(invalid)?;
            settings = settings.set_config(tls);
        }
        let pool = Pool::new(
            c.url.clone(),
            settings,
            c.service_account_dn.clone(),
            c.service_account_password.clone(),
            Duration::from_secs(u64::from(c.connection_timeout)),
            self.pool_size,
        );
        Ok(LdapDirectory {
            name: c.name,
            domain,
            pool: Arc::new(pool),
        })
    }
}

/// `"password"` in UTF-16LE: how AD takes `unicodePwd`.
fn unicode_pwd(password: &Secret) -> Vec<u8> {
    format!("\"{}\"", password.expose())
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The DN of computer `name` in `container_dn`, both checked; the name is escaped.
fn computer_dn(container_dn: &str, name: &str) -> Result<String, BackendError> {
    check_computer_name(name).map_err(BackendError::InvalidRequest)?;
    Dn::parse(container_dn)
        .map_err(|e| BackendError::InvalidRequest(format!("container `{container_dn}` {e}")))?;
    Ok(format!("CN={},{container_dn}", dn_escape(name)))
}

impl LdapDirectory {
    /// The record whose account is `NAME$` directly in `container_dn`, where it is (or would
    /// have been) made, wherever that is relative to the search base: its DN and owner.
    async fn find(
        &self,
        container_dn: &str,
        name: &str,
    ) -> Result<Option<(String, Option<Owner>)>, BackendError> {
        let filter = format!(
            "(&(objectClass=computer)(sAMAccountName={}$))",
            ldap_escape(name.to_ascii_uppercase())
        );
        let entries = self
            .pool
            .run("cannot look the computer up", |mut ldap| {
                let filter = filter.clone();
                async move {
                    let (entries, _) = ldap
                        .search(container_dn, Scope::OneLevel, &filter, vec!["description"])
                        .await?
                        .success()?;
                    Ok(entries)
                }
            })
            .await
            .map_err(|e| match e {
                BackendError::NotFound(_) => BackendError::InvalidRequest(format!(
                    "the container {container_dn} does not exist (ad_computer_container_dn; \
                     unset, it is CN=Computers under the search base)"
                )),
                other => other,
            })?;
        Ok(entries.into_iter().next().map(|e| {
            let e = SearchEntry::construct(e);
            let owner = e
                .attrs
                .get("description")
                .and_then(|d| d.first())
                .and_then(|d| Owner::from_marker(d));
            (e.dn, owner)
        }))
    }

    /// The entries matching `filter` directly in `container` (one level, paged), with their
    /// `description` and `cn`. A container that does not exist holds nothing.
    async fn search_container(
        &self,
        container: &str,
        filter: &str,
    ) -> Result<Vec<SearchEntry>, BackendError> {
        let what = format!("cannot list computer records in {container}");
        let listed = self
            .pool
            .run(&what, |mut ldap| async move {
                let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                    Box::new(EntriesOnly::new()),
                    Box::new(PagedResults::new(PAGE_SIZE)),
                ];
                let mut stream = ldap
                    .streaming_search_with(
                        adapters,
                        container,
                        Scope::OneLevel,
                        filter,
                        vec!["description", "cn"],
                    )
                    .await?;
                let mut entries = Vec::new();
                while let Some(entry) = stream.next().await? {
                    entries.push(SearchEntry::construct(entry));
                }
                stream.finish().await.success()?;
                Ok(entries)
            })
            .await;
        match listed {
            Err(BackendError::NotFound(_)) => Ok(Vec::new()),
            other => other,
        }
    }

    /// The DNs of the first [`CHILDREN_NAMED`] objects directly under `dn`, and whether there
    /// are more: what keeps a plain delete from succeeding.
    async fn children(&self, dn: &str) -> Result<(Vec<String>, bool), BackendError> {
        self.pool
            .run(
                &format!("cannot list the child objects of {dn}"),
                |mut ldap| async move {
                    let options = SearchOptions::new().sizelimit(CHILDREN_NAMED + 1);
                    let ldap3::SearchResult(entries, result) = ldap
                        .with_search_options(options)
                        .search(dn, Scope::OneLevel, "(objectClass=*)", vec!["1.1"])
                        .await?;
                    if result.rc != 0 && result.rc != SIZE_LIMIT_EXCEEDED {
                        return Err(result.into());
                    }
                    let mut dns: Vec<String> = entries
                        .into_iter()
                        .map(|e| SearchEntry::construct(e).dn)
                        .collect();
                    let more = dns.len() > CHILDREN_NAMED as usize;
                    dns.truncate(CHILDREN_NAMED as usize);
                    Ok((dns, more))
                },
            )
            .await
    }

    /// An existing record with the account name: ours gets a fresh password, anyone else's is a
    /// conflict.
    async fn take_over(
        &self,
        spec: &ComputerSpec,
        (found, owner): (String, Option<Owner>),
    ) -> Result<Secret, BackendError> {
        match owner {
            Some(o) if o == spec.owner => self.reset_password(&found).await,
            _ => Err(BackendError::Conflict(format!(
                "the computer account {}$ exists ({found}) and is not this server's",
                spec.name.to_ascii_uppercase()
            ))),
        }
    }

    /// Sets a fresh password on an existing record of ours.
    async fn reset_password(&self, dn: &str) -> Result<Secret, BackendError> {
        let password = generate_join_password(&mut rand::rngs::StdRng::from_os_rng());
        let value = unicode_pwd(&password);
        self.pool
            .run("cannot reset the computer's password", |mut ldap| {
                let value = value.clone();
                async move {
                    let change = Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value]));
                    ldap.modify(dn, vec![change]).await?.success()
                }
            })
            .await?;
        Ok(password)
    }
}

#[async_trait]
impl DirectoryService for LdapDirectory {
    fn name(&self) -> &str {
        &self.name
    }

    fn domain(&self) -> &str {
        &self.domain
    }

    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError> {
        let dn = computer_dn(&spec.container_dn, &spec.name)?;
        if let Some(found) = self.find(&spec.container_dn, &spec.name).await? {
            return self.take_over(spec, found).await;
        }
        let password = generate_join_password(&mut rand::rngs::StdRng::from_os_rng());
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = [
            ("objectClass", b"computer".to_vec()),
            ("cn", spec.name.clone().into_bytes()),
            (
                "sAMAccountName",
                format!("{}$", spec.name.to_ascii_uppercase()).into_bytes(),
            ),
            ("userAccountControl", WORKSTATION_TRUST_ACCOUNT.into()),
            (
                "dNSHostName",
                format!("{}.{}", spec.name.to_ascii_lowercase(), self.domain).into_bytes(),
            ),
            ("description", spec.owner.marker().into_bytes()),
            ("unicodePwd", unicode_pwd(&password)),
        ]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), HashSet::from([v])))
        .collect();
        let added = self
            .pool
            .run("cannot create the computer record", |mut ldap| {
                let attrs = attrs.clone();
                let dn = dn.clone();
                async move { ldap.add(&dn, attrs).await }
            })
            .await?;
        match added.rc {
            0 => Ok(password),
            // Made meanwhile (or by an earlier attempt whose answer was lost): the record found
            // decides; the add is not sent again.
            ENTRY_ALREADY_EXISTS => match self.find(&spec.container_dn, &spec.name).await? {
                Some(found) => self.take_over(spec, found).await,
                None => Err(BackendError::Conflict(format!(
                    "{dn} exists but cannot be found by its account name {}$",
                    spec.name.to_ascii_uppercase()
                ))),
            },
            _ => Err(from_result("cannot create the computer record", &added)),
        }
    }

    async fn delete_computer(
        &self,
        container_dn: &str,
        name: &str,
        recursive: bool,
    ) -> Result<(), BackendError> {
        let dn = computer_dn(container_dn, name)?;
        let what = format!("cannot delete {dn}");
        let plain = self
            .pool
            .run(&what, |mut ldap| {
                let dn = dn.clone();
                async move { ldap.delete(&dn).await }
            })
            .await?;
        match plain.rc {
            0 | NO_SUCH_OBJECT => Ok(()),
            NOT_ALLOWED_ON_NON_LEAF if recursive => {
                let tree = self
                    .pool
                    .run(&what, |mut ldap| {
                        let dn = dn.clone();
                        async move {
                            let control = RawControl {
                                ctype: TREE_DELETE_OID.into(),
                                crit: true,
                                val: None,
                            };
                            ldap.with_controls(control).delete(&dn).await
                        }
                    })
                    .await?;
                match tree.rc {
                    0 | NO_SUCH_OBJECT => Ok(()),
                    _ => Err(from_result(&what, &tree)),
                }
            }
            NOT_ALLOWED_ON_NON_LEAF => {
                let children = match self.children(&dn).await {
                    Ok((dns, more)) if !dns.is_empty() => {
                        format!(": {}{}", dns.join("; "), if more { "; …" } else { "" })
                    }
                    Ok(_) => String::new(),
                    Err(e) => format!(" (cannot list them: {e})"),
                };
                Err(BackendError::Conflict(format!(
                    "{what}: it has child objects (BitLocker recovery keys or the like){children}; \
                     ad_recursive_machine_record_cleanup = true deletes them with it"
                )))
            }
            _ => Err(from_result(&what, &plain)),
        }
    }

    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError> {
        // The marker's owner part (escaped as in the marker), escaped again for the filter.
        let part = Owner::marker_owner_part(owner_id);
        let filter = format!(
            "(&(objectClass=computer)(description=*{};*))",
            ldap_escape(part)
        );
        let mut records = Vec::new();
        for container in containers {
            Dn::parse(container).map_err(|e| {
                BackendError::InvalidRequest(format!("container `{container}` {e}"))
            })?;
            let entries = self.search_container(container, &filter).await?;
            records.extend(entries.into_iter().filter_map(|e| {
                let owner = Owner::from_marker(e.attrs.get("description")?.first()?)?;
                let name = e.attrs.get("cn")?.first()?.clone();
                (owner.owner_id == owner_id).then_some(ComputerRecord {
                    dn: e.dn,
                    name,
                    owner,
                })
            }));
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_escape_and_check_what_goes_in() {
        assert_eq!(
            computer_dn("OU=Kasm,DC=example,DC=local", "KASM-1").unwrap(),
            "CN=KASM-1,OU=Kasm,DC=example,DC=local"
        );
        for bad in ["A,B", "A=B", "A)(cn=*", "x\\y", "TOO-LONG-NAME-123"] {
            assert!(matches!(
                computer_dn("OU=Kasm,DC=example,DC=local", bad),
                Err(BackendError::InvalidRequest(_))
            ));
        }
        assert!(computer_dn("OU=Kasm,DC=example,(cn=*)", "A").is_err());
        assert!(computer_dn("OU=Kasm,DC=example,DC=local,", "A").is_err());
        assert_eq!(
            unicode_pwd(&Secret::new("ab")),
            vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]
        );
    }
}
