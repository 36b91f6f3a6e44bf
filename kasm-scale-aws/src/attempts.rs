//! Which servers this provider has already tried to create: a repeated create (a retry after an
//! error or a lost answer, or a caller asking twice) looks the server-id tag up before sending
//! RunInstances again; the first create of a fresh server id relies on its `ClientToken` alone
//! and saves a DescribeInstances call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kasm_scale_core::engine::ServerId;

/// How long an attempt is remembered. Retries come within minutes; past this, a repeat is
/// treated as a first create (on AWS its `ClientToken` still answers with the same instance).
const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Expired entries are dropped every this many records, so memory follows the creates of the
/// last day, not of the process's life.
const PRUNE_EVERY: u32 = 1024;

/// Server ids with the time of their first create attempt.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    inner: Mutex<(HashMap<ServerId, Instant>, u32)>,
}

impl Attempts {
    /// Records an attempt for `id`; true when none was remembered.
    pub(crate) fn first(&self, id: ServerId) -> bool {
        let now = Instant::now();
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, since_prune) = &mut *guard;
        *since_prune += 1;
        if *since_prune >= PRUNE_EVERY {
            seen.retain(|_, at| now.duration_since(*at) < MEMORY);
            *since_prune = 0;
        }
        match seen.get(&id) {
            Some(at) if now.duration_since(*at) < MEMORY => false,
            _ => {
                seen.insert(id, now);
                true
            }
        }
    }

    /// How many attempts are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempt_only_is_first() {
        let a = Attempts::default();
        let id = |n| ServerId(uuid::Uuid::from_u128(n));
        assert!(a.first(id(1)));
        assert!(!a.first(id(1)));
        assert!(a.first(id(2)));
        for n in 3..3000 {
            assert!(a.first(id(n)));
        }
        assert!(!a.first(id(1)), "fresh entries survive pruning");
        assert_eq!(a.len(), 2999);
    }
}
