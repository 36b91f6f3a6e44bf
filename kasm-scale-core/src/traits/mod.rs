//! The two backends the controller drives: [`VmProvider`] (a cloud) and [`DirectoryService`]
//! (Active Directory), their records, the owner marker that lets a restarted controller adopt
//! what it made, and the [`BackendError`] classes that tell the controller what to do.

mod directory;
mod error;
mod provider;
mod store;

use std::collections::BTreeMap;

pub use directory::{
    ComputerRecord, ComputerSpec, DirectoryService, JOIN_PASSWORD_LEN, MAX_COMPUTER_NAME_LEN,
    check_computer_name, generate_join_password,
};
pub use error::BackendError;
pub use provider::{Capabilities, Leftover, StopMode, Vm, VmProvider, VmSpec, VmState};
pub use store::{StateStore, StoreError};

#[cfg(test)]
pub(crate) use provider::MockVmProvider;

use crate::engine::ServerId;

/// Tag (and marker) keys; every VM and computer record carries all four.
pub const OWNER_TAG: &str = "kasm-scale:owner";
/// Pool tag key.
pub const POOL_TAG: &str = "kasm-scale:pool";
/// Auto-scale config tag key.
pub const CONFIG_TAG: &str = "kasm-scale:config";
/// Server id tag key.
pub const SERVER_TAG: &str = "kasm-scale:server-id";

/// Who made a VM or a computer record, and for which server: enough for a restarted controller
/// to adopt it (or to know it for an orphan).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The controller deployment (one id per broker installation).
    pub owner_id: String,
    /// `server_pool_name`.
    pub pool: String,
    /// `autoscale_config_name`.
    pub config: String,
    /// The server.
    pub server_id: ServerId,
}

impl Owner {
    /// The owner as tags.
    pub fn tags(&self) -> BTreeMap<String, String> {
        [
            (OWNER_TAG, self.owner_id.clone()),
            (POOL_TAG, self.pool.clone()),
            (CONFIG_TAG, self.config.clone()),
            (SERVER_TAG, self.server_id.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Reads the owner back from tags; `None` when a tag is missing or the server id is not a UUID.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Owner> {
        Some(Owner {
            owner_id: tags.get(OWNER_TAG)?.clone(),
            pool: tags.get(POOL_TAG)?.clone(),
            config: tags.get(CONFIG_TAG)?.clone(),
            server_id: ServerId(tags.get(SERVER_TAG)?.parse().ok()?),
        })
    }

    /// The owner as one line of text, for a directory's `description` attribute:
    /// `kasm-scale:owner=<id>;kasm-scale:pool=<pool>;…` with `;`, `=` and `\` escaped.
    pub fn marker(&self) -> String {
        self.tags()
            .iter()
            .map(|(k, v)| format!("{k}={}", escape_marker(v)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The part of every [`Owner::marker`] of `owner_id` that names the owner
    /// (`kasm-scale:owner=<id>`, escaped as in the marker), for searching a directory by owner.
    /// In a marker it is always followed by `;`.
    pub fn marker_owner_part(owner_id: &str) -> String {
        format!("{OWNER_TAG}={}", escape_marker(owner_id))
    }

    /// Reads [`Owner::marker`] text back.
    pub fn from_marker(text: &str) -> Option<Owner> {
        let mut tags = BTreeMap::new();
        for part in split_unescaped(text, ';') {
            let (k, v) = part.split_once('=')?;
            tags.insert(k.to_owned(), unescape_marker(v));
        }
        Owner::from_tags(&tags)
    }
}

fn escape_marker(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace('=', "\\=")
}

fn unescape_marker(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn split_unescaped(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if c == sep => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_through_tags_and_marker() {
        let owner = Owner {
            owner_id: "broker-1".into(),
            pool: "pool;a=b\\c".into(),
            config: "cfg".into(),
            server_id: ServerId(uuid::Uuid::from_u128(7)),
        };
        assert_eq!(Owner::from_tags(&owner.tags()), Some(owner.clone()));
        assert_eq!(Owner::from_marker(&owner.marker()), Some(owner.clone()));
        let tricky = Owner {
            owner_id: "o;kasm-scale:owner=\\x".into(),
            ..owner.clone()
        };
        let part = format!("{};", Owner::marker_owner_part(&tricky.owner_id));
        assert!(tricky.marker().contains(&part), "{}", tricky.marker());
        assert!(!owner.marker().contains(&part));
        assert_eq!(Owner::from_marker("kasm-scale:owner=x"), None);
    }
}
