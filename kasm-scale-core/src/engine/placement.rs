//! Which server takes the next session.

use super::{PoolSnapshot, ServerId, ServerSnapshot};
use crate::config::Placement;

/// A user's request for a session in a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionRequest {
    /// The user. With the pool's `user_affinity` (ours), a request for a user who already has
    /// a session in the pool returns that session (a reconnect to the same server).
    pub user: Option<String>,
    /// The broker's id for this request (ours; an HTTP `Idempotency-Key`): a request repeated
    /// with the same id within a day gets the session the first one made, not another.
    pub request_id: Option<String>,
    /// (ours) Ask for another session even when the user has one in the pool (user affinity
    /// returns the one they have otherwise).
    pub second_session: bool,
}

/// The server that should take the next session, or `None` when no ready server has room.
///
/// Only ready servers (running, and checked in where their config requires it) with a free slot
/// qualify; a single-use server takes one session in its life. Depth-first (the default) picks
/// the fullest such server, so idle servers stay idle and can be scaled down; breadth-first
/// picks the emptiest. Ties go to the oldest server, then the smallest id.
pub fn assign(snapshot: &PoolSnapshot) -> Option<ServerId> {
    let fits = |s: &&ServerSnapshot| {
        let requires_checkin = snapshot
            .configs
            .get(s.config as usize)
            .is_some_and(|c| c.policy.requires_checkin);
        s.is_ready(requires_checkin) && !s.is_spent() && s.sessions < s.capacity
    };
    let candidates = snapshot.servers.iter().filter(fits);
    let best = match snapshot.placement {
        Placement::DepthFirst => {
            candidates.min_by_key(|s| (std::cmp::Reverse(s.sessions), s.created_at, s.id))
        }
        Placement::BreadthFirst => candidates.min_by_key(|s| (s.sessions, s.created_at, s.id)),
    };
    best.map(|s| s.id)
}
