//! [`Records`] as rows of `kasm_scale_records (kind, key, value)`, and the rows that changed
//! between two versions of them.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use kasm_scale_core::controller::{Records, SessionId};
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::traits::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Row kinds.
const SERVER: &str = "server";
const SESSION: &str = "session";
const QUEUE: &str = "queue";
const BOOKKEEPING: &str = "bookkeeping";
const ORPHAN: &str = "orphan";
const REMOVED: &str = "removed";
const DEMAND_RECENT: &str = "demand_recent";
const DEMAND_PROFILE: &str = "demand_profile";
const BOOT_TIMES: &str = "boot_times";
const REQUEST: &str = "request";
const DRAIN: &str = "drain";
const USER: &str = "user";
const META: &str = "meta";
const NEXT_SESSION: &str = "next_session";
const TOKEN_KEY_ID: &str = "token_key_id";
const ACTED_GENERATIONS: &str = "acted_generations";

/// Rows to write and rows to delete, as `(kind, key)` and the value's JSON text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Changes {
    pub upsert_kinds: Vec<&'static str>,
    pub upsert_keys: Vec<String>,
    pub upsert_values: Vec<String>,
    pub delete_kinds: Vec<&'static str>,
    pub delete_keys: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.upsert_keys.is_empty() && self.delete_keys.is_empty()
    }

    fn upsert(&mut self, kind: &'static str, key: String, value: &impl Serialize) {
        // Records serialize infallibly (plain data, string keys).
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.upsert_kinds.push(kind);
        self.upsert_keys.push(key);
        self.upsert_values.push(text);
    }

    fn delete(&mut self, kind: &'static str, key: String) {
        self.delete_kinds.push(kind);
        self.delete_keys.push(key);
    }

    /// The rows of one map that differ between `old` and `new`.
    fn map<K, V: PartialEq + Serialize, M: Map<K, V>>(
        &mut self,
        kind: &'static str,
        old: Option<&M>,
        new: &M,
        key: impl Fn(&K) -> String,
    ) {
        for (k, v) in new.entries() {
            if old.and_then(|o| o.lookup(k)) != Some(v) {
                self.upsert(kind, key(k), v);
            }
        }
        if let Some(old) = old {
            for (k, _) in old.entries() {
                if new.lookup(k).is_none() {
                    self.delete(kind, key(k));
                }
            }
        }
    }
}

/// The maps of [`Records`], alike.
trait Map<K, V> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_>;
    fn lookup(&self, k: &K) -> Option<&V>;
}

impl<K: Eq + Hash, V> Map<K, V> for HashMap<K, V> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(self.iter())
    }
    fn lookup(&self, k: &K) -> Option<&V> {
        self.get(k)
    }
}

impl<K: Ord, V> Map<K, V> for BTreeMap<K, V> {
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(self.iter())
    }
    fn lookup(&self, k: &K) -> Option<&V> {
        self.get(k)
    }
}

/// The rows that turn `old` (what the database holds; `None`: nothing, write everything) into
/// `new`.
pub(crate) fn changes(old: Option<&Records>, new: &Records) -> Changes {
    let mut c = Changes::default();
    c.map(
        SERVER,
        old.map(|o| &o.servers),
        &new.servers,
        ServerId::to_string,
    );
    c.map(
        SESSION,
        old.map(|o| &o.sessions),
        &new.sessions,
        |k: &SessionId| k.0.to_string(),
    );
    c.map(QUEUE, old.map(|o| &o.queued), &new.queued, String::clone);
    c.map(
        BOOKKEEPING,
        old.map(|o| &o.bookkeeping),
        &new.bookkeeping,
        String::clone,
    );
    c.map(ORPHAN, old.map(|o| &o.orphans), &new.orphans, String::clone);
    c.map(
        REMOVED,
        old.map(|o| &o.removed),
        &new.removed,
        ServerId::to_string,
    );
    c.map(
        DEMAND_RECENT,
        old.map(|o| &o.demand_recent),
        &new.demand_recent,
        String::clone,
    );
    c.map(
        DEMAND_PROFILE,
        old.map(|o| &o.demand_profiles),
        &new.demand_profiles,
        String::clone,
    );
    c.map(
        BOOT_TIMES,
        old.map(|o| &o.boot_times),
        &new.boot_times,
        String::clone,
    );
    c.map(
        REQUEST,
        old.map(|o| &o.requests),
        &new.requests,
        String::clone,
    );
    c.map(DRAIN, old.map(|o| &o.drains), &new.drains, String::clone);
    c.map(USER, old.map(|o| &o.users), &new.users, |k: &SessionId| {
        k.0.to_string()
    });
    if old.is_none_or(|o| o.next_session != new.next_session) {
        c.upsert(META, NEXT_SESSION.into(), &new.next_session);
    }
    if old.is_none_or(|o| o.acted_generations != new.acted_generations) {
        match (&new.acted_generations, old) {
            (g, _) if !g.is_empty() => c.upsert(META, ACTED_GENERATIONS.into(), g),
            (_, Some(_)) => c.delete(META, ACTED_GENERATIONS.into()),
            (_, None) => {}
        }
    }
    if old.is_none_or(|o| o.token_key_id != new.token_key_id) {
        match &new.token_key_id {
            Some(id) => c.upsert(META, TOKEN_KEY_ID.into(), id),
            None if old.is_some() => c.delete(META, TOKEN_KEY_ID.into()),
            None => {}
        }
    }
    c
}

/// Builds the records back from rows `(kind, key, value as JSON text)`. A row that cannot be
/// read fails the load, naming it (and never guessing).
pub(crate) fn records(
    rows: impl IntoIterator<Item = (String, String, String)>,
) -> Result<Records, StoreError> {
    fn parse<T: DeserializeOwned>(kind: &str, key: &str, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| {
            StoreError::Corrupt(format!("kasm_scale_records row ({kind}, {key}): {e}"))
        })
    }
    fn id(kind: &str, key: &str) -> Result<ServerId, StoreError> {
        key.parse::<uuid::Uuid>().map(ServerId).map_err(|e| {
            StoreError::Corrupt(format!(
                "kasm_scale_records row ({kind}, {key}): bad server id: {e}"
            ))
        })
    }
    fn learned<T: DeserializeOwned>(kind: &str, key: &str, text: &str) -> Option<T> {
        serde_json::from_str(text)
            .inspect_err(|e| {
                tracing::warn!(kind, key, error = %e, "unreadable demand history dropped: learned again");
            })
            .ok()
    }
    let mut r = Records::default();
    for (kind, key, value) in rows {
        match kind.as_str() {
            SERVER => {
                let server: kasm_scale_core::controller::ServerInfo = parse(&kind, &key, &value)?;
                if server.id != id(&kind, &key)? {
                    return Err(StoreError::Corrupt(format!(
                        "kasm_scale_records row ({kind}, {key}) holds server {}",
                        server.id
                    )));
                }
                r.servers.insert(server.id, server);
            }
            SESSION => {
                let session = key.parse::<u64>().map_err(|e| {
                    StoreError::Corrupt(format!(
                        "kasm_scale_records row ({kind}, {key}): bad session id: {e}"
                    ))
                })?;
                r.sessions
                    .insert(SessionId(session), parse(&kind, &key, &value)?);
            }
            QUEUE => {
                r.queued.insert(key.clone(), parse(&kind, &key, &value)?);
            }
            BOOKKEEPING => {
                r.bookkeeping
                    .insert(key.clone(), parse(&kind, &key, &value)?);
            }
            ORPHAN => {
                r.orphans.insert(key.clone(), parse(&kind, &key, &value)?);
            }
            REMOVED => {
                r.removed
                    .insert(id(&kind, &key)?, parse(&kind, &key, &value)?);
            }
            // Learned history: a row that cannot be read is learned again, not a corrupt store.
            DEMAND_RECENT => {
                if let Some(v) = learned(&kind, &key, &value) {
                    r.demand_recent.insert(key.clone(), v);
                }
            }
            DEMAND_PROFILE => {
                if let Some(v) = learned(&kind, &key, &value) {
                    r.demand_profiles.insert(key.clone(), v);
                }
            }
            BOOT_TIMES => {
                if let Some(v) = learned(&kind, &key, &value) {
                    r.boot_times.insert(key.clone(), v);
                }
            }
            REQUEST => {
                r.requests.insert(key.clone(), parse(&kind, &key, &value)?);
            }
            DRAIN => {
                r.drains.insert(key.clone(), parse(&kind, &key, &value)?);
            }
            USER => {
                let session: u64 = key.parse().map_err(|e| {
                    StoreError::Corrupt(format!(
                        "kasm_scale_records row ({kind}, {key}): bad session id: {e}"
                    ))
                })?;
                r.users
                    .insert(SessionId(session), parse(&kind, &key, &value)?);
            }
            META if key == NEXT_SESSION => r.next_session = parse(&kind, &key, &value)?,
            META if key == ACTED_GENERATIONS => {
                r.acted_generations = parse(&kind, &key, &value)?;
            }
            META if key == TOKEN_KEY_ID => r.token_key_id = Some(parse(&kind, &key, &value)?),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "kasm_scale_records row ({kind}, {key}): unknown kind of record (written by a \
                     newer kasm-scale?)"
                )));
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(c: &Changes) -> Vec<(String, String, String)> {
        c.upsert_kinds
            .iter()
            .zip(&c.upsert_keys)
            .zip(&c.upsert_values)
            .map(|((k, key), v)| ((*k).to_owned(), key.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn an_unchanged_state_writes_nothing_and_a_new_one_writes_every_row() {
        let mut r = Records {
            next_session: 7,
            ..Records::default()
        };
        r.sessions
            .insert(SessionId(3), ServerId(uuid::Uuid::from_u128(9)));
        r.orphans
            .insert("vm:aws:i-1".into(), jiff::Timestamp::UNIX_EPOCH);
        assert!(changes(Some(&r), &r).is_empty());
        let all = changes(None, &r);
        assert_eq!(all.upsert_keys.len(), 3);
        assert_eq!(records(rows(&all)).unwrap(), r);
        let mut fewer = r.clone();
        fewer.orphans.clear();
        let c = changes(Some(&r), &fewer);
        assert_eq!(c.delete_keys, ["vm:aws:i-1"]);
        assert!(c.upsert_keys.is_empty());
    }

    #[test]
    fn a_row_that_cannot_be_read_is_named() {
        let e = records([("session".into(), "x1".into(), "\"a\"".into())]).unwrap_err();
        assert!(e.to_string().contains("(session, x1)"), "{e}");
        let e = records([("gizmo".into(), "k".into(), "1".into())]).unwrap_err();
        assert!(e.to_string().contains("unknown kind"), "{e}");
    }
}
