//! Destroying one server in the background: VM, then AD record, then the record itself. What
//! fails stays on the server as its last error (state `destroying`), and the next tick tries
//! again.

use std::sync::Arc;

use tracing::Instrument;

use super::records::AdRecord;
use super::tasks::{self, Work};
use super::{Event, Shared};
use crate::engine::{Cause, ServerId, ServerState};
use crate::traits::BackendError;

/// Marks server `id` destroying and starts its destroy (unless one runs). `cause` is the plan's
/// when the plan asked; `None` when the server is dead (its VM stopped or vanished) or retired.
pub(crate) fn start(
    shared: &Arc<Shared>,
    id: ServerId,
    cause: Option<Cause>,
    reason: String,
) -> bool {
    match shared.state.records().servers.get_mut(&id) {
        Some(s) => s.state = ServerState::Destroying,
        None => return false,
    }
    tasks::spawn(shared, Work::Destroy(id), |s| async move {
        destroy(&s, id, cause, reason).await;
    })
}

pub(crate) async fn destroy(
    shared: &Arc<Shared>,
    id: ServerId,
    cause: Option<Cause>,
    reason: String,
) {
    // A create still running for it is stopped; a VM it made anyway is found by reconcile.
    shared.tasks.abort(&Work::Create(id));
    shared.tasks.abort(&Work::Power(id));
    let Some(server) = shared.state.records().servers.get(&id).cloned() else {
        return;
    };
    let span = tracing::info_span!(
        "destroy",
        server = %id,
        config = %server.config,
        provider = %server.provider,
        cause = ?cause
    );
    async {
        let began = tokio::time::Instant::now();
        let setup = shared.setup();
        let provider = setup.providers.get(&server.provider);
        if server.vm_id.is_some() && provider.is_none() {
            // Never forget a VM we cannot destroy: the server stays, with the reason, until
            // its VM provider config is back.
            return shared.note_error(
                Some(id),
                &server.config,
                format!(
                    "cannot destroy the VM: no provider for VM provider config `{}` (configure it again to let its servers go)",
                    server.provider
                ),
            );
        }
        if let (Some(vm_id), Some(provider)) = (&server.vm_id, provider) {
            let gone = provider.destroy(vm_id).await;
            if let Err(e) = gone {
                return shared.note_error(
                    Some(id),
                    &server.config,
                    format!("cannot destroy the VM: {e}"),
                );
            }
            if let Some(s) = shared.state.records().servers.get_mut(&id) {
                s.vm_id = None;
            }
        }
        if let Some(ad) = &server.ad
            && let Err(e) = delete_ad(shared, ad, &server.hostname).await
        {
            return shared.note_error(
                Some(id),
                &server.config,
                format!("cannot delete the AD computer record: {e}"),
            );
        }
        let lost = {
            let mut records = shared.state.records();
            records.servers.remove(&id);
            let lost: Vec<_> = records
                .sessions
                .iter()
                .filter(|(_, on)| **on == id)
                .map(|(session, _)| *session)
                .collect();
            for session in &lost {
                records.sessions.remove(session);
            }
            records.tombstone(id, shared.clock.now());
            lost
        };
        tracing::info!(
            elapsed_ms = began.elapsed().as_millis() as u64,
            %reason,
            "server destroyed"
        );
        if !lost.is_empty() {
            shared.events.emit(Event::SessionsLost {
                server: id,
                sessions: lost,
            });
        }
        shared.events.emit(Event::Destroyed {
            server: id,
            cause,
            reason,
        });
    }
    .instrument(span)
    .await;
}

/// Deletes a server's AD computer record (a missing record is fine; a missing directory is
/// not: the record would be forgotten).
pub(crate) async fn delete_ad(
    shared: &Shared,
    ad: &AdRecord,
    name: &str,
) -> Result<(), BackendError> {
    let setup = shared.setup();
    let Some(directory) = setup.directories.get(&ad.ldap) else {
        return Err(BackendError::InvalidRequest(format!(
            "no directory for LDAP config `{}` (configure it again to let its records go)",
            ad.ldap
        )));
    };
    directory
        .delete_computer(&ad.container_dn, name, ad.recursive)
        .await
}
