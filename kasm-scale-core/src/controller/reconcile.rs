//! Crash safety: the clouds and the directory are the source of truth. The controller lists what
//! carries its owner marker, adopts VMs it can attribute to a config, forgets servers whose VM
//! vanished, and removes what belongs to no server once it has stayed so for a grace period.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::records::{AdRecord, ServerInfo};
use super::{Event, Shared, exec};
use crate::engine::{ServerId, ServerState};
use crate::traits::{Vm, VmState};

/// The host name of server `id` (`KASM-` and the first ten hex digits of its id).
pub(crate) fn hostname(id: ServerId) -> String {
    format!("KASM-{}", &id.0.simple().to_string()[..10]).to_ascii_uppercase()
}

pub(crate) async fn reconcile(shared: &Arc<Shared>) {
    let now = shared.now();
    let mut seen_vms: HashSet<ServerId> = HashSet::new();
    let mut listed_providers = HashSet::new();
    for (name, provider) in &shared.providers {
        let limits = &shared.limits[name];
        let vms = match super::limits::retry(limits, shared.retry, &shared.rng, || {
            provider.list(&shared.owner_id)
        })
        .await
        {
            Ok(vms) => vms,
            Err(e) => {
                shared.emit(Event::Failed {
                    server: None,
                    config: name.clone(),
                    error: format!("cannot list VMs: {e}"),
                });
                continue;
            }
        };
        listed_providers.insert(name.clone());
        for vm in vms {
            if matches!(vm.state, VmState::Stopping | VmState::Terminated) {
                continue;
            }
            seen_vms.insert(vm.owner.server_id);
            if !adopt(shared, name, &vm, now) {
                orphan(shared, format!("vm:{name}:{}", vm.vm_id), now, || async {
                    let _ = super::limits::retry(limits, shared.retry, &shared.rng, || {
                        provider.destroy(&vm.vm_id)
                    })
                    .await;
                })
                .await;
            }
        }
    }
    // Servers whose VM is gone from a listing that worked: forget them (and their AD record).
    let vanished: Vec<ServerId> = shared
        .records()
        .servers
        .values()
        .filter(|s| listed_providers.contains(&s.provider) && !seen_vms.contains(&s.id))
        .filter(|s| s.vm_id.is_some() || s.created_at + SignedDuration::from_secs(600) < now)
        .filter(|s| s.state != ServerState::Destroying)
        .map(|s| s.id)
        .collect();
    for id in vanished {
        if let Some(s) = shared.records().servers.get_mut(&id) {
            s.vm_id = None;
        }
        exec::destroy(shared, id, "its VM no longer exists".into()).await;
    }
    // Servers of an auto-scale config that is no longer configured go once idle.
    let retired: Vec<ServerId> = shared
        .records()
        .servers
        .values()
        .filter(|s| s.sessions == 0 && s.state != ServerState::Destroying)
        .filter(|s| {
            !shared
                .config
                .autoscale_configs()
                .any(|(p, c)| p.server_pool_name == s.pool && c.autoscale_config_name == s.config)
        })
        .map(|s| s.id)
        .collect();
    for id in retired {
        exec::destroy(shared, id, "its auto-scale config was removed".into()).await;
    }
    // AD records of no server.
    for (ldap, directory) in &shared.directories {
        let limits = &shared.limits[ldap];
        let Ok(records) = super::limits::retry(limits, shared.retry, &shared.rng, || {
            directory.list_computers(&shared.owner_id)
        })
        .await
        else {
            continue;
        };
        for record in records {
            let known = shared
                .records()
                .servers
                .contains_key(&record.owner.server_id);
            if known {
                continue;
            }
            let container = record.dn.split_once(',').map_or("", |(_, c)| c).to_owned();
            let recursive = shared.config.autoscale_configs().any(|(_, c)| {
                c.autoscale_config_name == record.owner.config
                    && c.ad_recursive_machine_record_cleanup
            });
            orphan(shared, format!("ad:{ldap}:{}", record.dn), now, || async {
                let _ = super::limits::retry(limits, shared.retry, &shared.rng, || {
                    directory.delete_computer(&container, &record.name, recursive)
                })
                .await;
            })
            .await;
        }
    }
    // Forget orphans that are gone.
    let grace = SignedDuration::try_from(shared.orphan_grace).unwrap_or(SignedDuration::MAX);
    shared
        .records()
        .orphans
        .retain(|_, first| now < *first + grace + grace);
}

/// Takes a VM into the records when it carries our owner marker and names a config that uses
/// its provider; returns whether it is (now) known.
fn adopt(shared: &Shared, provider: &str, vm: &Vm, now: Timestamp) -> bool {
    let mut records = shared.records();
    if let Some(s) = records.servers.get_mut(&vm.owner.server_id) {
        if s.vm_id.is_none() {
            // Created just before a crash: the record never learned its VM.
            s.vm_id = Some(vm.vm_id.clone());
            if s.state == ServerState::Provisioning {
                s.state = ServerState::Starting;
            }
        }
        return true;
    }
    let Some(pool) = shared.config.pool(&vm.owner.pool) else {
        return false;
    };
    let Some(config) = pool
        .autoscale
        .iter()
        .find(|c| c.autoscale_config_name == vm.owner.config)
    else {
        return false;
    };
    if config.vm_provider_config_id != provider {
        return false;
    }
    let running = vm.state == VmState::Running;
    let id = vm.owner.server_id;
    records.servers.insert(
        id,
        ServerInfo {
            id,
            hostname: hostname(id),
            pool: pool.server_pool_name.clone(),
            config: config.autoscale_config_name.clone(),
            provider: provider.into(),
            // A running VM found without a record is taken as ready: nothing says it is not,
            // and its guest will not check in again.
            state: if running {
                ServerState::Running
            } else {
                ServerState::Starting
            },
            vm_id: Some(vm.vm_id.clone()),
            sessions: 0,
            capacity: config.max_simultaneous_sessions_per_server.max(1),
            reusable: config.reusable,
            requires_checkin: config.requires_checkin(),
            used: false,
            created_at: vm.created_at.unwrap_or(now),
            checked_in_at: running.then_some(now),
            ad: config.ad_create_machine_record.then(|| AdRecord {
                ldap: config.ldap_id.clone().unwrap_or_default(),
                container_dn: config.ad_computer_container_dn.clone().unwrap_or_default(),
                recursive: config.ad_recursive_machine_record_cleanup,
            }),
            last_error: Some("adopted after a restart".into()),
            reported_status: None,
        },
    );
    drop(records);
    shared.emit(Event::Starting { server: id });
    true
}

/// Removes an orphan once it has been one for the grace period.
async fn orphan<F, Fut>(shared: &Shared, key: String, now: Timestamp, remove: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let grace = SignedDuration::try_from(shared.orphan_grace).unwrap_or(SignedDuration::MAX);
    let first = *shared.records().orphans.entry(key.clone()).or_insert(now);
    if now >= first + grace {
        remove().await;
        shared.records().orphans.remove(&key);
    }
}
