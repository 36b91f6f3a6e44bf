//! What the controller remembers: servers, sessions, queued requests and bookkeeping.

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::Timestamp;

use crate::engine::{Bookkeeping, ServerId, ServerState};

/// A session (or a queued request for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Where a server's computer record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdRecord {
    /// LDAP config name.
    pub ldap: String,
    /// Container DN.
    pub container_dn: String,
    /// Delete child objects too.
    pub recursive: bool,
}

/// A server as the controller knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    /// Its id (Kasm's `server_id`).
    pub id: ServerId,
    /// Its host name (and AD computer name).
    pub hostname: String,
    /// Pool name.
    pub pool: String,
    /// Auto-scale config name.
    pub config: String,
    /// VM provider config name.
    pub provider: String,
    /// Where it is in its life.
    pub state: ServerState,
    /// The provider's VM id, once created.
    pub vm_id: Option<String>,
    /// Sessions on it.
    pub sessions: u32,
    /// Sessions it takes at most (copied from its config at creation).
    pub capacity: u32,
    /// Whether it returns to the pool after a session (copied at creation).
    pub reusable: bool,
    /// Whether it must check in before taking sessions (copied at creation).
    pub requires_checkin: bool,
    /// Whether it has had a session.
    pub used: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it checked in (or became ready).
    pub checked_in_at: Option<Timestamp>,
    /// Its computer record, if one was made.
    pub ad: Option<AdRecord>,
    /// The last thing that went wrong with it, in plain words.
    pub last_error: Option<String>,
    /// The last status its guest reported (`running (100%): ready`).
    pub reported_status: Option<String>,
}

/// The controller's memory: what a [`StateStore`](super::StateStore) keeps across restarts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Records {
    /// Servers by id.
    pub servers: BTreeMap<ServerId, ServerInfo>,
    /// Seated sessions.
    pub sessions: HashMap<SessionId, ServerId>,
    /// Queued requests per pool, oldest first.
    pub queued: HashMap<String, VecDeque<SessionId>>,
    /// Scaling bookkeeping per auto-scale config.
    pub bookkeeping: HashMap<String, Bookkeeping>,
    /// Last session id handed out.
    pub next_session: u64,
    /// VMs and AD records that carry our owner marker but belong to no server, with when they
    /// were first seen (key: `vm:<provider>:<id>` or `ad:<ldap>:<dn>`).
    pub orphans: BTreeMap<String, Timestamp>,
}

impl Records {
    /// Records a failed server attempt for `config` at `now` (it feeds the failure backoff).
    pub(crate) fn failure(&mut self, config: &str, now: Timestamp) {
        let bk = self.bookkeeping.entry(config.to_owned()).or_default();
        bk.consecutive_failures = bk.consecutive_failures.saturating_add(1);
        bk.last_failure_at = Some(now);
    }
}
