//! [`SnapshotBuilder`]: one [`PoolSnapshot`] per pool of a configuration, built in one place
//! for the controller.

use std::collections::HashMap;

use super::{Bookkeeping, ConfigSnapshot, PoolSnapshot, ScalingPolicy, ServerSnapshot};
use crate::config::Config;

/// Builds one PoolSnapshot per pool of a configuration.
#[derive(Debug)]
pub struct SnapshotBuilder<'a> {
    pools: Vec<PoolSnapshot>,
    index: HashMap<&'a str, (usize, u32)>,
}

impl<'a> SnapshotBuilder<'a> {
    /// One empty snapshot per pool of `config` (only the pool named `only`, when given), each
    /// config with its policy and `bookkeeping(config_name)`, each pool with `pending(pool_name)`
    /// waiting requests.
    pub fn new(
        config: &'a Config,
        only: Option<&str>,
        bookkeeping: impl Fn(&str) -> Bookkeeping,
        pending: impl Fn(&str) -> u32,
    ) -> Self {
        let mut index = HashMap::new();
        let mut pools = Vec::new();
        for pool in config
            .pools
            .iter()
            .filter(|p| only.is_none_or(|o| o == p.server_pool_name))
        {
            let p = pools.len();
            let configs = pool
                .autoscale
                .iter()
                .enumerate()
                .map(|(c, a)| {
                    index.insert(a.autoscale_config_name.as_str(), (p, c as u32));
                    ConfigSnapshot {
                        policy: ScalingPolicy::in_config(config, a),
                        bookkeeping: bookkeeping(&a.autoscale_config_name),
                    }
                })
                .collect();
            pools.push(PoolSnapshot {
                pool: pool.server_pool_name.clone(),
                configs,
                servers: Vec::new(),
                pending_requests: pending(&pool.server_pool_name),
                placement: pool.session_placement,
            });
        }
        Self { pools, index }
    }

    /// Adds a server of the auto-scale config named `config_name` (its `config` index is set
    /// here); returns where it went as (pool index, config index), or `None` (nothing added)
    /// when no pool of the builder has that config.
    pub fn add(&mut self, config_name: &str, mut server: ServerSnapshot) -> Option<(usize, u32)> {
        let &(p, c) = self.index.get(config_name)?;
        server.config = c;
        self.pools[p].servers.push(server);
        Some((p, c))
    }

    /// The policy of a config by name.
    pub fn policy(&self, config_name: &str) -> Option<&ScalingPolicy> {
        let &(p, c) = self.index.get(config_name)?;
        Some(&self.pools[p].configs[c as usize].policy)
    }

    /// The snapshots, in the configuration's pool order.
    pub fn finish(self) -> Vec<PoolSnapshot> {
        self.pools
    }
}
