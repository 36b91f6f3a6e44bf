//! [`DirectoryService`]: Active Directory computer records for servers that join a domain.

use std::fmt;

use async_trait::async_trait;

use super::{BackendError, Owner};
use crate::secret::Secret;

/// The longest computer (NetBIOS) name Windows accepts.
pub const MAX_COMPUTER_NAME_LEN: usize = 15;

/// Checks a computer name the way Windows does: 1 to 15 characters, letters, digits and `-`,
/// not only digits, not starting or ending with `-`.
pub fn check_computer_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_COMPUTER_NAME_LEN {
        return Err(format!(
            "computer name `{name}` must be 1 to {MAX_COMPUTER_NAME_LEN} characters"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!(
            "computer name `{name}` may hold only letters, digits and `-`"
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "computer name `{name}` must not be all digits or start or end with `-`"
        ));
    }
    Ok(())
}

/// Characters of generated join passwords: letters, digits and symbols that no shell, PowerShell
/// here-string or LDAP filter treats specially.
const PASSWORD_ALPHABET: &[u8] =
    b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-.:=?@_";
/// Length of generated join passwords: 24 characters of a 67-character alphabet, about 145 bits.
pub const JOIN_PASSWORD_LEN: usize = 24;

// The startup-script size check renders with passwords of the longest length.
const _: () = assert!(JOIN_PASSWORD_LEN <= crate::template::AD_JOIN_PASSWORD_MAX_LEN);

/// A fresh one-time join password from `rng` (use a cryptographic generator outside tests):
/// [`JOIN_PASSWORD_LEN`] characters with an upper-case letter, a lower-case letter, a digit and a
/// symbol, which satisfies AD's complexity rules.
pub fn generate_join_password(rng: &mut impl rand::Rng) -> Secret {
    loop {
        let password: String = (0..JOIN_PASSWORD_LEN)
            .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
            .collect();
        let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
        if has(char::is_ascii_uppercase)
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_digit)
            && has(char::is_ascii_punctuation)
        {
            return Secret::new(password);
        }
    }
}

/// What to create: a computer record in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerSpec {
    /// The computer name (`server_hostname`): see [`check_computer_name`].
    pub name: String,
    /// The container, e.g. `OU=Computers,DC=example,DC=local`.
    pub container_dn: String,
    /// Who owns it, including the server id that makes `create_computer` idempotent.
    pub owner: Owner,
}

/// A computer record as the directory reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerRecord {
    /// The record's DN.
    pub dn: String,
    /// The computer name.
    pub name: String,
    /// Its owner, read back from its marker.
    pub owner: Owner,
}

/// A directory that pre-creates computer records with one-time join passwords.
///
/// # Contract
/// - `create_computer` returns a fresh one-time join password. It is idempotent on
///   `spec.owner.server_id`: when the record exists and carries the same owner, its password is
///   reset and returned; a record of the same name owned by anything else is a
///   [`BackendError::Conflict`].
/// - Every record carries [`Owner::marker`], so that `list_computers` finds it in its
///   container. `create_computer` looks for an existing record of the name in `spec`'s
///   container (where it would have been made).
/// - `delete_computer` of a record that does not exist is `Ok`. With `recursive`, child objects
///   (BitLocker keys …) go too; without it a record that has children is an error saying so
///   and naming some of them.
/// - Names are checked with [`check_computer_name`] even where the directory is laxer.
/// - Errors are classified and never contain the password.
/// - One attempt per call, as for [`VmProvider`](super::VmProvider): the controller retries.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DirectoryService: Send + Sync + fmt::Debug {
    /// The LDAP config name this directory serves.
    fn name(&self) -> &str;

    /// The AD DNS domain (from the search base's DC parts), given to scripts as `domain`.
    fn domain(&self) -> &str;

    /// Creates (or resets) the record and returns its one-time join password.
    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError>;

    /// Deletes the record `name` in `container_dn`.
    async fn delete_computer(
        &self,
        container_dn: &str,
        name: &str,
        recursive: bool,
    ) -> Result<(), BackendError>;

    /// Every record owned by `owner_id` directly in one of `containers` (not in containers
    /// below them): where records are made, wherever that is relative to the search base. No
    /// containers, no records.
    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError>;
}
