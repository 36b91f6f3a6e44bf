//! Step 1 of a tick: ask each provider, in the background and in parallel, about the servers
//! whose VMs boot, and on the reconcile cadence list the clouds and directories (`reconcile.rs`).
//! A VM that runs makes a server that needs no check-in ready; a VM that stopped or vanished
//! makes its server go (with its AD record).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::state::State;
use super::tasks::{self, Work};
use super::{Shared, destroy, queue, reconcile};
use crate::engine::{ServerId, ServerState};
use crate::traits::{BackendError, Vm, VmState};

/// Step 1: end the drains that are over; refresh the servers whose VMs boot; on the reconcile cadence, list the clouds and
/// directories (and forget stale history: see `reconcile.rs`). The first reconcile (adopting what a previous run left)
/// is waited for, at most one backend call's timeout, so the first plan sees it; later ones run
/// in the background. Returns how many pieces of background work it started.
pub(crate) async fn observe(shared: &Arc<Shared>, n: u64) -> usize {
    let now = shared.clock.now();
    expire_unknown_sessions(shared.setup().unknown_sessions_timeout, &shared.state, now);
    // Drains whose time ran out, or whose target is gone, end before the plan.
    super::drain::expire(shared, now);
    let mut started = refresh(shared);
    if n.is_multiple_of(shared.setup().reconcile_every) {
        let fresh = tasks::spawn(shared, Work::Reconcile, |s| async move {
            reconcile::reconcile(&s).await;
        });
        started += usize::from(fresh);
        if n == 0 {
            let limit = Some(shared.setup().first_reconcile_wait);
            shared.tasks.settle(Some(&Work::Reconcile), limit).await;
        }
    }
    started
}

/// Adopted servers whose sessions the broker has not reported within the unknown-sessions
/// timeout are taken as empty and used, so that they are scaled in like any idle server (a
/// server saved before the timestamp existed starts its wait now). Takes the records mutably
/// only when one is due.
fn expire_unknown_sessions(wait: Duration, state: &State, now: Timestamp) {
    let timeout = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
    let due =
        |since: Option<jiff::Timestamp>| since.is_none_or(|t| now.duration_since(t) >= timeout);
    if !state
        .records()
        .servers
        .values()
        .any(|s| s.sessions_unknown && due(s.sessions_unknown_since))
    {
        return;
    }
    let mut records = state.records();
    for s in records.servers.values_mut() {
        if !s.sessions_unknown {
            continue;
        }
        let Some(since) = s.sessions_unknown_since else {
            s.sessions_unknown_since = Some(now);
            continue;
        };
        if !due(Some(since)) {
            continue;
        }
        s.sessions_unknown = false;
        s.sessions_unknown_since = None;
        s.sessions = 0;
        s.used = true;
        s.last_error = Some(format!(
            "adopted with its sessions unknown and not reported within {} s: taken as empty",
            wait.as_secs()
        ));
        tracing::warn!(server = %s.id, waited_s = now.duration_since(since).as_secs(), "sessions not reported: taken as empty");
        metrics::counter!("kasm_scale_unknown_sessions_expired_total").increment(1);
    }
}

/// Starts one refresh per provider that has booting servers (unless one runs); returns how many
/// it started.
fn refresh(shared: &Arc<Shared>) -> usize {
    let mut providers: Vec<String> = shared
        .state
        .records()
        .servers
        .values()
        .filter(|s| matches!(s.state, ServerState::Starting | ServerState::Stopping))
        .filter(|s| s.vm_id.is_some())
        .map(|s| s.provider.clone())
        .collect();
    providers.sort_unstable();
    providers.dedup();
    let mut started = 0;
    for provider in providers {
        let name = provider.clone();
        let span = tracing::debug_span!("refresh", provider = %name);
        let fresh = tasks::spawn(shared, Work::Refresh(provider), |s| {
            async move {
                refresh_provider(&s, &name).await;
            }
            .instrument(span)
        });
        started += usize::from(fresh);
    }
    started
}

async fn refresh_provider(shared: &Arc<Shared>, provider_name: &str) {
    let Some(provider) = shared.setup().providers.get(provider_name).cloned() else {
        return;
    };
    let waiting: Vec<(ServerId, String)> = shared
        .state
        .records()
        .servers
        .values()
        .filter(|s| matches!(s.state, ServerState::Starting | ServerState::Stopping))
        .filter(|s| s.provider == provider_name)
        .filter_map(|s| Some((s.id, s.vm_id.clone()?)))
        .collect();
    let mut calls = JoinSet::new();
    for (id, vm_id) in waiting {
        let provider = provider.clone();
        calls.spawn(async move {
            let answer = provider.get(&vm_id).await;
            (id, answer)
        });
    }
    while let Some(Ok((id, answer))) = calls.join_next().await {
        apply(shared, id, answer);
    }
}

fn apply(shared: &Arc<Shared>, id: ServerId, answer: Result<Option<Vm>, BackendError>) {
    let now = shared.clock.now();
    let Some(server) = shared.state.records().servers.get(&id).cloned() else {
        return;
    };
    if !matches!(server.state, ServerState::Starting | ServerState::Stopping) {
        return;
    }
    if let Ok(Some(vm)) = &answer
        && vm.private_ip.is_some()
        && vm.private_ip != server.address
        && let Some(s) = shared.state.records().servers.get_mut(&id)
    {
        // Learned while it boots (some clouds assign it after the create answered).
        s.address.clone_from(&vm.private_ip);
    }
    if super::power::refreshed(shared, &server, &answer) {
        return;
    }
    match answer {
        Ok(Some(vm)) if vm.state == VmState::Running && !server.requires_checkin => {
            let ready = shared
                .state
                .records()
                .servers
                .get_mut(&id)
                .is_some_and(|s| {
                    let first = s.state == ServerState::Starting;
                    s.state = ServerState::Running;
                    s.checked_in_at.get_or_insert(now);
                    first
                });
            if ready {
                tracing::info!(server = %id, "server ready (VM running)");
                shared.ready(id, &server.config, server.created_at);
                shared.events.tell(queue::serve(
                    &shared.setup(),
                    &shared.state,
                    Some(&server.pool),
                ));
            }
        }
        Ok(Some(vm)) if vm.state.is_dead() || vm.state == VmState::Terminated => {
            destroy::start(
                shared,
                id,
                None,
                format!("its VM is {:?}", vm.state).to_lowercase(),
            );
        }
        Ok(None) if server.created_at + reconcile::VANISH_GRACE <= now => {
            // Its destroy still asks the provider: a cloud that answered "not found" by mistake
            // gets the VM terminated all the same.
            destroy::start(shared, id, None, "its VM vanished".into());
        }
        Ok(_) => {}
        Err(e) => shared.note_error(
            Some(id),
            &server.config,
            format!("cannot read the VM's state: {e}"),
        ),
    }
}
