//! Background work: provider and directory calls run as tasks that outlive the tick that started
//! them, one per [`Work`] key at a time, and all stop when the last [`Autoscaler`] handle is
//! dropped.
//!
//! [`Autoscaler`]: super::Autoscaler

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Shared;
use crate::engine::ServerId;

/// What a background task does; at most one task per key runs at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    /// Creating a server's AD record and VM.
    Create(ServerId),
    /// Destroying a server's VM and AD record.
    Destroy(ServerId),
    /// (ours) Stopping a server into its warm tier, or starting it again.
    Power(ServerId),
    /// Reading the state of a provider's booting VMs.
    Refresh(String),
    /// Listing the clouds and directories and adopting or removing what they hold.
    Reconcile,
}

/// The running background tasks.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    running: Mutex<HashMap<Work, AbortHandle>>,
    changed: Notify,
}

/// Removes its key when its task ends, however it ends (also when aborted).
struct Done<'a> {
    tasks: &'a Tasks,
    key: Work,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.tasks.lock().remove(&self.key);
        self.tasks.changed.notify_waiters();
    }
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Work, AbortHandle>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether work of `key` is running.
    pub(crate) fn busy(&self, key: &Work) -> bool {
        self.lock().contains_key(key)
    }

    /// Waits until no task runs (or, with `only`, until that one has ended), at most `limit`.
    /// Returns whether it got there in time.
    pub(crate) async fn settle(&self, only: Option<&Work>, limit: Option<Duration>) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let idle = {
                    let running = self.lock();
                    only.map_or(running.is_empty(), |k| !running.contains_key(k))
                };
                if idle {
                    return;
                }
                changed.await;
            }
        };
        match limit {
            Some(limit) => tokio::time::timeout(limit, wait).await.is_ok(),
            None => {
                wait.await;
                true
            }
        }
    }

    /// Stops the task of `key`, if one runs.
    pub(crate) fn abort(&self, key: &Work) {
        if let Some(handle) = self.lock().remove(key) {
            handle.abort();
        }
        self.changed.notify_waiters();
    }

    /// Stops every task.
    pub(crate) fn abort_all(&self) {
        for (_, handle) in self.lock().drain() {
            handle.abort();
        }
        self.changed.notify_waiters();
    }
}

/// Runs `work` in the background unless work of the same key runs already; returns whether it
/// was started. The task holds the controller's shared state until it ends.
pub(crate) fn spawn<F, Fut>(shared: &Arc<Shared>, key: Work, work: F) -> bool
where
    F: FnOnce(Arc<Shared>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut running = shared.tasks.lock();
    // Checked under the tasks' lock: a step-down sets the role, then aborts every task under
    // this lock, so no task starts after it.
    if running.contains_key(&key) || !shared.clock.role().acts() {
        return false;
    }
    let owner = shared.clone();
    let future = work(shared.clone());
    let k = key.clone();
    let handle = tokio::spawn(async move {
        let _done = Done {
            tasks: &owner.tasks,
            key: k,
        };
        future.await;
    });
    running.insert(key, handle.abort_handle());
    true
}

/// The controller's randomness: jitter, and server ids when seeded. Without a seed, server ids
/// are UUID v4 from the operating system's generator, so they never repeat across processes
/// and restarts.
#[derive(Debug)]
pub(crate) struct Randomness {
    rng: Mutex<ChaCha8Rng>,
    seeded: bool,
}

impl Randomness {
    /// Deterministic from `seed` (simulations and tests), or from the operating system.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => {
                let mut bytes = [0u8; 32];
                bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                ChaCha8Rng::from_seed(bytes)
            }
        };
        Self {
            rng: Mutex::new(rng),
            seeded: seed.is_some(),
        }
    }

    /// Runs `f` with the generator.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A fresh server id.
    pub(crate) fn server_id(&self) -> ServerId {
        if self.seeded {
            let bytes: [u8; 16] = self.with(|r| r.random());
            ServerId(uuid::Builder::from_random_bytes(bytes).into_uuid())
        } else {
            ServerId(uuid::Uuid::new_v4())
        }
    }
}
