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
/// qualify; a single-use server takes one session in its life, and a drained server takes none
/// (ours). Depth-first (the default) picks the fullest such server, so idle servers stay idle
/// and can be scaled down; breadth-first picks the emptiest. Ties go to the oldest server, then
/// the smallest id. During a rollout (ours) current servers come first, by that rule; an
/// outdated server ([`ServerSnapshot::outdated`], of a config whose generation is known) takes
/// the session only when no current server can.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::engine::{
///     Bookkeeping, ConfigSnapshot, PoolSnapshot, ScalingPolicy, ServerId, ServerSnapshot,
///     ServerState, assign,
/// };
/// use kasm_scale_core::config::{AutoScaleConfig, ConnectionType, Generation};
///
/// let mut config = AutoScaleConfig::new("aws", "p", ConnectionType::Rdp);
/// config.max_simultaneous_sessions_per_server = 4;
/// let server = |n: u128, sessions: u32, outdated: bool| ServerSnapshot {
///     id: ServerId(uuid::Uuid::from_u128(n)),
///     config: 0,
///     state: ServerState::Running,
///     sessions,
///     capacity: 4,
///     reusable: true,
///     used: sessions > 0,
///     created_at: jiff::Timestamp::UNIX_EPOCH,
///     checked_in_at: Some(jiff::Timestamp::UNIX_EPOCH),
///     queue_slots: 0,
///     outdated,
///     drained: None,
///     woken_at: None,
///     for_warm: false,
/// };
/// let mut pool = PoolSnapshot {
///     pool: "desktops".into(),
///     configs: vec![ConfigSnapshot {
///         policy: ScalingPolicy::new(&config, 10),
///         bookkeeping: Bookkeeping::default(),
///         generation: Some(Generation(7)),
///     }],
///     // The fuller server is outdated: the current one takes the session.
///     servers: vec![server(1, 3, true), server(2, 1, false)],
///     ..PoolSnapshot::default()
/// };
/// assert_eq!(assign(&pool), Some(ServerId(uuid::Uuid::from_u128(2))));
/// // Once the current server is full, the outdated one does.
/// pool.servers[1].sessions = 4;
/// assert_eq!(assign(&pool), Some(ServerId(uuid::Uuid::from_u128(1))));
/// ```
pub fn assign(snapshot: &PoolSnapshot) -> Option<ServerId> {
    let config = |s: &ServerSnapshot| snapshot.configs.get(s.config as usize);
    let fits = |s: &&ServerSnapshot| {
        let requires_checkin = config(s).is_some_and(|c| c.policy.requires_checkin);
        s.is_ready(requires_checkin)
            && !s.is_spent()
            && s.sessions < s.capacity
            && s.drained.is_none()
            && !s.is_warm_build()
    };
    let outdated =
        |s: &ServerSnapshot| s.outdated && config(s).is_some_and(|c| c.generation.is_some());
    let candidates = snapshot.servers.iter().filter(fits);
    let best = match snapshot.placement {
        Placement::DepthFirst => candidates.min_by_key(|s| {
            (
                outdated(s),
                std::cmp::Reverse(s.sessions),
                s.created_at,
                s.id,
            )
        }),
        Placement::BreadthFirst => {
            candidates.min_by_key(|s| (outdated(s), s.sessions, s.created_at, s.id))
        }
    };
    best.map(|s| s.id)
}
