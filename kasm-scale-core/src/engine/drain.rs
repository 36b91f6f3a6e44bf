//! (ours) Drained servers in a plan: rule 4 of the [module documentation](super).
//!
//! A drained server takes no new session ([`super::assign`] never picks it, waiting requests
//! take none of its room) and its room is never free, so the config's minimum makes
//! replacements for it. Rule 1 (`count_servers`) counts it only against `max_instances` (and,
//! when outdated, as a server the rollout still waits for); this rule destroys it once empty.

use super::plan::{Pass, destroy};
use super::{Cause, DrainThen, ServerSnapshot, ServerState};

impl Pass<'_> {
    /// Rule 4 (ours): a server drained with `then = destroy` that has no session is destroyed
    /// ([`Cause::Drained`]), whatever its state (one still coming up too); one with a session
    /// waits for its last session to end. A server drained with `then = keep` is never
    /// destroyed by any rule (not when spent, nor when it does not check in in time): the
    /// operator's undrain hands it back to the rules.
    pub(super) fn drained_servers(&mut self, drained: &[&ServerSnapshot]) {
        for server in drained {
            debug_assert!(
                server.drained == Some(DrainThen::Destroy)
                    && server.sessions == 0
                    && server.state != ServerState::Destroying
            );
            let c = server.config as usize;
            self.tally[c].outdated_gone += u32::from(self.is_outdated(server));
            let name = &self.snapshot.configs[c].policy.name;
            let state = server.state.as_str();
            self.per_config[c].push(destroy(
                server,
                name,
                Cause::Drained,
                format!(
                    "destroy {} of {name}: drained, and it has no session ({state})",
                    server.id
                ),
            ));
        }
    }
}
