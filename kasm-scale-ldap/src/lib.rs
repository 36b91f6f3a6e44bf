//! kasm-scale on Active Directory: [`LdapDirectory`] implements
//! [`DirectoryService`](kasm_scale_core::traits::DirectoryService) over LDAPS or StartTLS with
//! `ldap3`.
//!
//! Each server's computer record is pre-created under the auto-scale config's
//! `ad_computer_container_dn`: objectClass `computer`, `sAMAccountName` `NAME$`,
//! `userAccountControl` 4096 (workstation trust account), `dNSHostName` `name.domain`, the owner
//! marker in `description`, and a fresh one-time password in `unicodePwd` that the startup script
//! joins with. Names are checked the way Windows checks them, values are escaped in DNs and
//! filters, and TLS certificates are verified (against the system roots or a configured CA)
//! unless a loudly named test option says otherwise.
//!
//! Who retries: not this crate. Each operation is one attempt and comes back classified (busy,
//! unavailable, timeouts and lost connections as transient); the controller's retry policy
//! retries the retryable ones. The one repeat inside a call: a pooled connection that turns out
//! dead (closed by the server or a firewall while idle) is replaced once by a new one. A create
//! whose add finds the record already there (a repeat after a lost answer) looks it up instead
//! of adding again.

mod directory;
mod errors;
mod pool;
mod tls;

pub use directory::{LdapDirectory, LdapDirectoryBuilder, TREE_DELETE_OID};
