//! kasm-scale on Active Directory: [`LdapDirectory`] implements
//! [`DirectoryService`](kasm_scale_core::traits::DirectoryService) over LDAPS or StartTLS with
//! `ldap3`.
//!
//! Each server's computer record is pre-created in the auto-scale config's container
//! (`ad_computer_container_dn`, default `CN=Computers,<search_base>`; see
//! [`Config::computer_container`](kasm_scale_core::config::Config::computer_container)) and is
//! looked for only there: a create searches the container it creates in, and `list_computers`
//! searches the containers it is given, one level deep. The record: objectClass `computer`,
//! `sAMAccountName` `NAME$`, `userAccountControl` 4096 (workstation trust account), `dNSHostName`
//! `name.domain`, the owner marker in `description`, and a fresh one-time password in
//! `unicodePwd` that the startup script joins with. Names are checked the way Windows checks
//! them, values are escaped in DNs and filters, and TLS certificates are verified (against the
//! system roots or a configured CA) unless a loudly named test option says otherwise. A
//! certificate that fails verification is a configuration error (not retried) saying which check
//! failed: wrong CA, expired, not yet valid, or not valid for the name in the url.
//!
//! Who retries: not this crate. Each operation is one attempt and comes back classified (busy,
//! unavailable, server down, timeouts, refused and lost connections as transient; everything
//! else not retryable); the controller's retry policy retries the retryable ones. The one repeat
//! inside a call: a pooled connection that turns out dead (closed by the server or a firewall
//! while idle) is replaced once by a new one. A create whose add finds the record already there
//! (a repeat after a lost answer) looks it up instead of adding again. A plain delete refused
//! because the record has children names the first of them.

mod directory;
mod errors;
mod pool;
mod tls;

pub use directory::{LdapDirectory, LdapDirectoryBuilder, TREE_DELETE_OID};
