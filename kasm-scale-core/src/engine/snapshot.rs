//! [`SnapshotBuilder`]: the one place a configuration and a broker's records become
//! [`PoolSnapshot`]s.

use std::collections::HashMap;

use super::{Bookkeeping, ConfigSnapshot, PoolSnapshot, ScalingPolicy, ServerSnapshot};
use crate::config::Config;

/// Builds one [`PoolSnapshot`] per pool of a configuration.
///
/// ```
/// use kasm_scale_core::config::{AutoScaleConfig, Config, ConnectionType, Pool};
/// use kasm_scale_core::engine::{Bookkeeping, ServerId, ServerSnapshot, ServerState, SnapshotBuilder};
///
/// let pool = Pool {
///     server_pool_name: "desktops".into(),
///     server_pool_type: Default::default(),
///     session_placement: Default::default(),
///     autoscale: vec![AutoScaleConfig::new("aws", "aws-provider", ConnectionType::Rdp)],
///     user_affinity: None,
/// };
/// let config = Config { pools: vec![pool], ..Config::default() };
///
/// let mut builder = SnapshotBuilder::new(&config, None, |_| Bookkeeping::default(), |_| 2);
/// let server = ServerSnapshot {
///     id: ServerId(uuid::Uuid::nil()),
///     config: 0,
///     state: ServerState::Running,
///     sessions: 0,
///     capacity: 1,
///     reusable: false,
///     used: false,
///     created_at: jiff::Timestamp::UNIX_EPOCH,
///     checked_in_at: Some(jiff::Timestamp::UNIX_EPOCH),
///     queue_slots: 0,
///     outdated: false,
///     drained: None,
///     woken_at: None,
///     for_warm: false,
/// };
/// assert_eq!(builder.add("aws", server.clone()), Some((0, 0)));
/// assert_eq!(builder.add("azure", server), None);
/// let snapshots = builder.finish();
/// assert_eq!(snapshots[0].servers.len(), 1);
/// assert_eq!(snapshots[0].pending_requests, 2);
/// ```
#[derive(Debug)]
pub struct SnapshotBuilder<'a> {
    snapshots: Vec<PoolSnapshot>,
    /// (pool index, config index) by config name: names are unique over all pools.
    index: HashMap<&'a str, (usize, u32)>,
}

impl<'a> SnapshotBuilder<'a> {
    /// One empty snapshot per pool of `config` (only the pool named `only`, when given), each
    /// config with its policy ([`ScalingPolicy::in_config`]) and `bookkeeping(config_name)`, each
    /// pool with `pending(pool_name)` waiting requests.
    pub fn new(
        config: &'a Config,
        only: Option<&str>,
        bookkeeping: impl Fn(&str) -> Bookkeeping,
        pending: impl Fn(&str) -> u32,
    ) -> Self {
        let mut index = HashMap::new();
        let snapshots = config
            .pools
            .iter()
            .filter(|pool| only.is_none_or(|o| o == pool.server_pool_name))
            .enumerate()
            .map(|(p, pool)| PoolSnapshot {
                pool: pool.server_pool_name.clone(),
                configs: pool
                    .autoscale
                    .iter()
                    .zip(0u32..)
                    .map(|(a, c)| {
                        index.insert(a.autoscale_config_name.as_str(), (p, c));
                        ConfigSnapshot {
                            policy: ScalingPolicy::in_config(config, a),
                            bookkeeping: bookkeeping(&a.autoscale_config_name),
                            generation: None,
                        }
                    })
                    .collect(),
                servers: Vec::new(),
                pending_requests: pending(&pool.server_pool_name),
                placement: pool.session_placement,
                demand: None,
            })
            .collect();
        Self { snapshots, index }
    }

    /// Adds a server of the auto-scale config named `config_name` (its `config` index is set
    /// here); returns where it went as (pool index, config index), or `None` (nothing added)
    /// when no pool of the builder has that config.
    pub fn add(&mut self, config_name: &str, mut server: ServerSnapshot) -> Option<(usize, u32)> {
        let &(p, c) = self.index.get(config_name)?;
        server.config = c;
        self.snapshots[p].servers.push(server);
        Some((p, c))
    }

    /// The policy of a config by name (for checks like capacity defaults), if present.
    pub fn policy(&self, config_name: &str) -> Option<&ScalingPolicy> {
        let &(p, c) = self.index.get(config_name)?;
        Some(&self.snapshots[p].configs[c as usize].policy)
    }

    /// The snapshots, in the configuration's pool order.
    pub fn finish(self) -> Vec<PoolSnapshot> {
        self.snapshots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AutoScaleConfig, ConnectionType, Pool};
    use crate::engine::{ServerId, ServerState};

    fn config() -> Config {
        let pool = |name: &str, autoscale| Pool {
            server_pool_name: name.into(),
            server_pool_type: Default::default(),
            session_placement: Default::default(),
            autoscale,
            user_affinity: None,
        };
        let mut big = AutoScaleConfig::new("b-aws", "p", ConnectionType::Rdp);
        big.max_simultaneous_sessions_per_server = 3;
        big.reusable = true;
        let a = vec![
            AutoScaleConfig::new("a-aws", "p", ConnectionType::Rdp),
            AutoScaleConfig::new("a-azure", "p", ConnectionType::Rdp),
        ];
        Config {
            pools: vec![pool("a", a), pool("b", vec![big])],
            ..Config::default()
        }
    }

    fn server(n: u128) -> ServerSnapshot {
        ServerSnapshot {
            id: ServerId(uuid::Uuid::from_u128(n)),
            config: 99,
            state: ServerState::Running,
            sessions: 0,
            capacity: 1,
            reusable: false,
            used: false,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            checked_in_at: None,
            queue_slots: 0,
            outdated: false,
            drained: None,
            woken_at: None,
            for_warm: false,
        }
    }

    #[test]
    fn every_pool_with_its_configs_bookkeeping_and_queue() {
        let config = config();
        let bk = |name: &str| Bookkeeping {
            consecutive_failures: name.len() as u32,
            ..Bookkeeping::default()
        };
        let pending = |pool: &str| if pool == "b" { 7 } else { 0 };
        let mut builder = SnapshotBuilder::new(&config, None, bk, pending);
        assert_eq!(builder.policy("b-aws").unwrap().sessions_per_server, 3);
        assert!(builder.policy("gcp").is_none());
        assert_eq!(builder.add("a-azure", server(1)), Some((0, 1)));
        assert_eq!(builder.add("b-aws", server(2)), Some((1, 0)));
        assert_eq!(builder.add("gcp", server(3)), None);
        let snaps = builder.finish();
        let names: Vec<&str> = snaps.iter().map(|s| s.pool.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(snaps[0].configs.len(), 2);
        assert_eq!(snaps[0].configs[1].policy.name, "a-azure");
        assert_eq!(snaps[0].configs[1].bookkeeping.consecutive_failures, 7);
        assert_eq!(
            (snaps[0].pending_requests, snaps[1].pending_requests),
            (0, 7)
        );
        assert_eq!(
            snaps[0].servers,
            [ServerSnapshot {
                config: 1,
                ..server(1)
            }]
        );
        assert_eq!(
            snaps[1].servers,
            [ServerSnapshot {
                config: 0,
                ..server(2)
            }]
        );
    }

    #[test]
    fn only_one_pool_knows_only_its_configs() {
        let config = config();
        let mut builder =
            SnapshotBuilder::new(&config, Some("b"), |_| Bookkeeping::default(), |_| 0);
        assert!(builder.policy("a-aws").is_none());
        assert_eq!(builder.add("a-aws", server(1)), None);
        assert_eq!(builder.add("b-aws", server(2)), Some((0, 0)));
        let snaps = builder.finish();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].pool, "b");
        assert_eq!(snaps[0].servers.len(), 1);
    }
}
