//! Crash safety, on the reconcile cadence and in the background: the clouds and the directory
//! are the source of truth. Every provider and directory is listed at once (in parallel); the
//! controller adopts VMs with its owner marker that it can attribute to a config, destroys
//! servers whose VM stopped or vanished, and removes what belongs to no server once it has
//! stayed so for the grace period.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::records::ServerInfo;
use super::tasks::Work;
use super::{Event, Shared, demand, destroy, hostname, requests};
use crate::engine::{ServerId, ServerState};
use crate::traits::{BackendError, ComputerRecord, Leftover, Vm, VmState};

/// How long after its creation a VM may be missing from its provider's answers before its server
/// counts as vanished (ours): clouds such as EC2 are eventually consistent.
pub(crate) const VANISH_GRACE: SignedDuration = SignedDuration::from_secs(120);

enum Listing {
    Vms(String, Result<Vec<Vm>, BackendError>),
    Leftovers(String, Result<Vec<Leftover>, BackendError>),
    Records(String, Result<Vec<ComputerRecord>, BackendError>),
}

pub(crate) async fn reconcile(shared: &Arc<Shared>) {
    let span = tracing::info_span!("reconcile");
    reconcile_now(shared).instrument(span).await;
}

async fn reconcile_now(shared: &Arc<Shared>) {
    let began = shared.clock.now();
    // History of pools and configs the configuration no longer has (left in the store by an
    // earlier configuration), and request ids past their time, go on the reconcile cadence.
    demand::prune(&shared.setup().config, &shared.state);
    super::affinity::prune(&shared.state);
    requests::prune(&shared.state, began);
    // The servers whose VMs were known before the listings: a VM created meanwhile is not
    // "vanished".
    let before: HashSet<ServerId> = shared
        .state
        .records()
        .servers
        .values()
        .filter(|s| s.vm_id.is_some())
        .map(|s| s.id)
        .collect();
    let mut listings = JoinSet::new();
    for (name, provider) in &shared.setup().providers {
        let (s, p, n) = (shared.clone(), provider.clone(), name.clone());
        listings.spawn(async move {
            let (shared, provider, name) = (s, p, n);
            let vms = provider.list(&shared.setup().owner_id).await;
            Listing::Vms(name, vms)
        });
        let (shared, provider, name) = (shared.clone(), provider.clone(), name.clone());
        listings.spawn(async move {
            let parts = provider.list_leftovers(&shared.setup().owner_id).await;
            Listing::Leftovers(name, parts)
        });
    }
    for (name, directory) in &shared.setup().directories {
        let (shared, directory, name) = (shared.clone(), directory.clone(), name.clone());
        listings.spawn(async move {
            let containers = shared
                .state
                .records()
                .computer_containers(&shared.setup().config, &name);
            let records = directory
                .list_computers(&shared.setup().owner_id, &containers)
                .await;
            Listing::Records(name, records)
        });
    }
    let mut names = HashSet::new();
    while let Some(Ok(listing)) = listings.join_next().await {
        match listing {
            Listing::Vms(name, Ok(vms)) => {
                // Known servers' names are in the records; only the others are remembered.
                {
                    let records = shared.state.records();
                    names.extend(
                        vms.iter()
                            .filter(|v| !records.servers.contains_key(&v.owner.server_id))
                            .map(|v| hostname(v.owner.server_id)),
                    );
                }
                vms_listed(shared, &name, &vms, &before, began).await;
            }
            Listing::Records(name, Ok(list)) => {
                {
                    let records = shared.state.records();
                    names.extend(
                        list.iter()
                            .filter(|r| !records.servers.contains_key(&r.owner.server_id))
                            .map(|r| r.name.clone()),
                    );
                }
                records_listed(shared, &name, list, began).await;
            }
            Listing::Leftovers(name, Ok(parts)) => {
                leftovers_listed(shared, &name, parts, began).await;
            }
            Listing::Leftovers(name, Err(e)) => {
                shared.note_error(None, &name, format!("cannot list leftover VM parts: {e}"));
            }
            Listing::Vms(name, Err(e)) => {
                shared.note_error(None, &name, format!("cannot list VMs: {e}"));
            }
            Listing::Records(name, Err(e)) => {
                shared.note_error(None, &name, format!("cannot list computer records: {e}"));
            }
        }
    }
    names.extend(
        shared
            .state
            .conflicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    tracing::debug!(names = names.len(), "listings read");
    *shared
        .state
        .taken_names
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = names;
    let grace =
        SignedDuration::try_from(shared.setup().orphan_grace).unwrap_or(SignedDuration::MAX);
    let now = shared.clock.now();
    let fresh = |first: &Timestamp| now < *first + grace + grace;
    let recent = |at: &Timestamp| now < *at + grace + grace + VANISH_GRACE;
    let mut records = shared.state.records();
    if !records.orphans.values().all(fresh) {
        records.orphans.retain(|_, first| fresh(first));
    }
    if !records.removed.values().all(recent) {
        records.removed.retain(|_, at| recent(at));
    }
}

/// What one provider's listing says about our servers.
async fn vms_listed(
    shared: &Arc<Shared>,
    provider_name: &str,
    vms: &[Vm],
    before: &HashSet<ServerId>,
    began: Timestamp,
) {
    let setup = shared.setup();
    let Some(provider) = setup.providers.get(provider_name) else {
        return;
    };
    let mut listed: HashSet<&str> = HashSet::with_capacity(vms.len());
    for vm in vms {
        listed.insert(&vm.vm_id);
        if vm.state == VmState::Terminated {
            continue;
        }
        let id = vm.owner.server_id;
        match attribute(shared, provider_name, vm) {
            Attribution::Known => {}
            Attribution::Dead => {
                destroy::start(shared, id, None, "its VM was stopped".into());
            }
            Attribution::Orphan => {
                let key = format!("vm:{provider_name}:{}", vm.vm_id);
                if orphan_due(shared, &key, began) {
                    let gone = provider.destroy(&vm.vm_id).await;
                    settle_orphan(shared, &key, gone, provider_name);
                }
            }
        }
    }
    // Servers whose VM (known before the listing) is gone from it.
    let vanished: Vec<ServerId> = shared
        .state
        .records()
        .servers
        .values()
        .filter(|s| s.provider == provider_name && s.state != ServerState::Destroying)
        .filter(|s| s.created_at + VANISH_GRACE <= began)
        .filter(|s| {
            s.vm_id
                .as_deref()
                .is_some_and(|v| !listed.contains(v) && before.contains(&s.id))
        })
        .map(|s| s.id)
        .collect();
    for id in vanished {
        destroy::start(shared, id, None, "its VM no longer exists".into());
    }
}

enum Attribution {
    /// The VM of a server we know (its record now has the VM id).
    Known,
    /// The VM of a server we know, stopped: the server is dead.
    Dead,
    /// Ours by its marker, but no server's.
    Orphan,
}

/// Matches a listed VM with the records, adopting it when its server is unknown and its owner
/// names a config of this provider.
fn attribute(shared: &Shared, provider: &str, vm: &Vm) -> Attribution {
    let id = vm.owner.server_id;
    let stopped = vm.state.is_dead();
    let mut records = shared.state.records();
    if let Some(s) = records.servers.get(&id) {
        if s.vm_id.as_ref().is_some_and(|known| *known != vm.vm_id) {
            // A second VM for one server (a create repeated where the cloud ignored its
            // idempotency token): not the server's.
            return Attribution::Orphan;
        }
        let state = s.state;
        let woken = s.woken_at.is_some();
        if s.vm_id.is_none()
            && let Some(s) = records.servers.get_mut(&id)
        {
            // Created just before a restart: the record never learned its VM.
            s.vm_id = Some(vm.vm_id.clone());
            if s.state == ServerState::Provisioning && !shared.tasks.busy(&Work::Create(id)) {
                s.state = ServerState::Starting;
                // Its VM is known: the sealed join password kept for a resumed create goes.
                s.ad_join = None;
            }
        }
        // (ours) In the warm tier, or on its way in or out of it, a stopped VM is expected.
        let warm = state.is_warm() || (state == ServerState::Starting && woken);
        return match (stopped, state) {
            (true, ServerState::Destroying) => Attribution::Known,
            // A VM the cloud failed (to start) is dead, in the tier or not.
            (true, _) if warm && vm.state != VmState::Failed => Attribution::Known,
            (true, _) => Attribution::Dead,
            _ => Attribution::Known,
        };
    }
    let recently_removed = records.removed.contains_key(&id);
    if stopped || recently_removed {
        return Attribution::Orphan;
    }
    let setup = shared.setup();
    let Some((pool, config)) = setup.config.autoscale_configs().find(|(p, c)| {
        p.server_pool_name == vm.owner.pool && c.autoscale_config_name == vm.owner.config
    }) else {
        return Attribution::Orphan;
    };
    if config.vm_provider_config_id != provider {
        return Attribution::Orphan;
    }
    let now = shared.clock.now();
    let running = vm.state == VmState::Running;
    // Its name is not in its tags: the default one until its computer record, listed by the
    // same reconcile, says otherwise (see `records_listed`).
    let mut server = ServerInfo::new(
        id,
        hostname(id),
        &setup.config,
        pool,
        config,
        vm.created_at.unwrap_or(now),
    );
    server.vm_id = Some(vm.vm_id.clone());
    server.address.clone_from(&vm.private_ip);
    // A running VM found without a record is taken as ready (its guest will not check in
    // again), but nothing tells whether it has sessions: it is held as full and used until the
    // broker reports them. A VM still booting has had none.
    server.state = if running {
        ServerState::Running
    } else {
        ServerState::Starting
    };
    server.checked_in_at = running.then_some(now);
    server.sessions_unknown = running;
    server.sessions_unknown_since = running.then_some(now);
    server.last_error = Some("adopted without a saved record".into());
    records.servers.insert(id, server);
    drop(records);
    tracing::info!(server = %id, vm = %vm.vm_id, sessions_unknown = running, "VM adopted");
    shared.events.emit(Event::Adopted {
        server: id,
        sessions_unknown: running,
    });
    Attribution::Known
}

/// Parts whose VM is gone (a NIC, an IP, a disk) are removed once they have stayed so for the
/// grace period, unless their server is being created (its parts come before its VM) or
/// destroyed (its destroy removes them).
async fn leftovers_listed(
    shared: &Arc<Shared>,
    provider_name: &str,
    parts: Vec<Leftover>,
    began: Timestamp,
) {
    let setup = shared.setup();
    let Some(provider) = setup.providers.get(provider_name) else {
        return;
    };
    for part in parts {
        let busy = shared
            .state
            .records()
            .servers
            .get(&part.owner.server_id)
            .is_some_and(|s| {
                matches!(s.state, ServerState::Provisioning | ServerState::Destroying)
            });
        let key = format!("part:{provider_name}:{}", part.id);
        if busy {
            // Not an orphan now: the grace starts again if it becomes one.
            if shared.state.records().orphans.contains_key(&key) {
                shared.state.records().orphans.remove(&key);
            }
            continue;
        }
        if !orphan_due(shared, &key, began) {
            continue;
        }
        tracing::info!(provider = provider_name, part = %part.id, kind = %part.kind, server = %part.owner.server_id, "removing a leftover VM part");
        let gone = provider.remove_leftover(&part.id).await;
        settle_orphan(shared, &key, gone, provider_name);
    }
}

/// What one directory's listing says: records of no server are removed after the grace period.
async fn records_listed(
    shared: &Arc<Shared>,
    ldap: &str,
    records: Vec<ComputerRecord>,
    began: Timestamp,
) {
    let setup = shared.setup();
    let Some(directory) = setup.directories.get(ldap) else {
        return;
    };
    for record in records {
        let known = {
            let records = shared.state.records();
            records
                .servers
                .get(&record.owner.server_id)
                .map(|s| s.hostname.eq_ignore_ascii_case(&record.name))
        };
        match known {
            Some(true) => continue,
            Some(false) => {
                // Its own record names it (an adopted server got the default name: a naming
                // pattern's name is not in the VM's tags): the directory is right.
                if let Some(s) = shared
                    .state
                    .records()
                    .servers
                    .get_mut(&record.owner.server_id)
                {
                    tracing::info!(server = %s.id, was = %s.hostname, name = %record.name, "host name taken from its computer record");
                    s.hostname.clone_from(&record.name);
                }
                continue;
            }
            None => {}
        }
        let key = format!("ad:{ldap}:{}", record.dn);
        if !orphan_due(shared, &key, began) {
            continue;
        }
        let container = record.dn.split_once(',').map_or("", |(_, c)| c).to_owned();
        let recursive = shared.setup().config.autoscale_configs().any(|(_, c)| {
            c.autoscale_config_name == record.owner.config && c.ad_recursive_machine_record_cleanup
        });
        let gone = directory
            .delete_computer(&container, &record.name, recursive)
            .await;
        settle_orphan(shared, &key, gone, ldap);
    }
}

/// Whether the orphan `key` has been one for the grace period (it is remembered from now on).
fn orphan_due(shared: &Shared, key: &str, now: Timestamp) -> bool {
    let grace =
        SignedDuration::try_from(shared.setup().orphan_grace).unwrap_or(SignedDuration::MAX);
    let first = *shared
        .state
        .records()
        .orphans
        .entry(key.to_owned())
        .or_insert(now);
    now >= first + grace
}

fn settle_orphan(shared: &Shared, key: &str, gone: Result<(), BackendError>, backend: &str) {
    match gone {
        Ok(()) => {
            tracing::info!(orphan = key, "orphan removed");
            shared.state.records().orphans.remove(key);
        }
        Err(e) => shared.note_error(None, backend, format!("cannot remove orphan {key}: {e}")),
    }
}
