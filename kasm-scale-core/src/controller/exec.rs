//! Carrying plans out: provisioning, destroying, refreshing, and seating queued sessions.

use std::sync::Arc;

use rand::Rng;
use tokio::task::JoinSet;

use super::records::{AdRecord, Records, ServerInfo, SessionId};
use super::{Event, Shared};
use crate::config::{AutoScaleConfig, Pool};
use crate::engine::{
    Action, Bookkeeping, ConfigSnapshot, PoolSnapshot, ScalingPolicy, ServerId, ServerSnapshot,
    ServerState, SessionRequest, assign, plan,
};
use crate::secret::Secret;
use crate::template::{AdJoin, ScriptVariables};
use crate::traits::{ComputerSpec, Owner, VmSpec, VmState};

/// The engine's view of `pool`.
pub(crate) fn snapshot(shared: &Shared, records: &Records, pool_name: &str) -> PoolSnapshot {
    snapshots(shared, records, Some(pool_name))
        .pop()
        .unwrap_or_default()
}

/// The engine's view of every pool (or of one), reading the servers once.
pub(crate) fn snapshots(
    shared: &Shared,
    records: &Records,
    only: Option<&str>,
) -> Vec<PoolSnapshot> {
    let pools: Vec<&Pool> = shared
        .config
        .pools
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.server_pool_name))
        .collect();
    // (pool index, config index) by config name: config names are unique over all pools.
    let mut where_: std::collections::HashMap<&str, (usize, u32)> =
        std::collections::HashMap::new();
    let mut out: Vec<PoolSnapshot> = Vec::with_capacity(pools.len());
    for (p, pool) in pools.iter().enumerate() {
        let configs = pool
            .autoscale
            .iter()
            .enumerate()
            .map(|(c, a)| {
                where_.insert(a.autoscale_config_name.as_str(), (p, c as u32));
                ConfigSnapshot {
                    policy: ScalingPolicy::in_config(&shared.config, a),
                    bookkeeping: records
                        .bookkeeping
                        .get(&a.autoscale_config_name)
                        .cloned()
                        .unwrap_or_default(),
                }
            })
            .collect();
        out.push(PoolSnapshot {
            pool: pool.server_pool_name.clone(),
            configs,
            servers: Vec::new(),
            pending_requests: records
                .queued
                .get(&pool.server_pool_name)
                .map_or(0, |q| q.len() as u32),
            placement: pool.session_placement,
        });
    }
    for s in records.servers.values() {
        if let Some(&(p, config)) = where_.get(s.config.as_str()) {
            out[p].servers.push(ServerSnapshot {
                id: s.id,
                config,
                state: s.state,
                sessions: s.sessions,
                capacity: s.capacity,
                reusable: s.reusable,
                used: s.used,
                created_at: s.created_at,
                checked_in_at: s.checked_in_at,
            });
        }
    }
    out
}

/// Puts `session` on `server`.
pub(crate) fn seat(records: &mut Records, session: SessionId, server: ServerId) {
    if let Some(s) = records.servers.get_mut(&server) {
        s.sessions += 1;
        s.used = true;
    }
    records.sessions.insert(session, server);
}

/// Seats queued requests on servers that have room, oldest request first.
pub(crate) fn serve_queue(shared: &Shared) {
    let mut assigned = Vec::new();
    {
        let mut records = shared.records();
        let pools: Vec<String> = records.queued.keys().cloned().collect();
        for pool in pools {
            if records.queued.get(&pool).is_none_or(|q| q.is_empty()) {
                continue;
            }
            // One snapshot per pool, kept in step with each seat (not one per request).
            let mut snap = snapshot(shared, &records, &pool);
            while records.queued.get(&pool).is_some_and(|q| !q.is_empty()) {
                let Some(server) = assign(&snap, &SessionRequest::default()) else {
                    break;
                };
                let Some(session) = records.queued.get_mut(&pool).and_then(|q| q.pop_front())
                else {
                    break;
                };
                seat(&mut records, session, server);
                if let Some(s) = snap.servers.iter_mut().find(|s| s.id == server) {
                    s.sessions += 1;
                    s.used = true;
                }
                assigned.push(Event::SessionAssigned { session, server });
            }
        }
    }
    for event in assigned {
        shared.emit(event);
    }
}

/// One reconcile cycle.
pub(crate) async fn tick(shared: &Arc<Shared>) {
    let n = shared
        .ticks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n == 0 {
        match shared.store.load().await {
            Ok(Some(saved)) => *shared.records() = saved,
            Ok(None) => {}
            Err(e) => shared.emit(Event::Failed {
                server: None,
                config: String::new(),
                error: format!("cannot load the saved state: {e}"),
            }),
        }
    }
    if n % shared.reconcile_every == 0 {
        super::reconcile::reconcile(shared).await;
    }
    refresh(shared).await;
    let now = shared.now();
    let mut work = JoinSet::new();
    // Destroys left unfinished by an earlier tick.
    let unfinished: Vec<ServerId> = shared
        .records()
        .servers
        .values()
        .filter(|s| s.state == ServerState::Destroying)
        .map(|s| s.id)
        .collect();
    for id in unfinished {
        let shared = shared.clone();
        work.spawn(
            async move { destroy(&shared, id, "retrying an unfinished destroy".into()).await },
        );
    }
    let all = snapshots(shared, &shared.records(), None);
    for (pool, snap) in shared.config.pools.iter().zip(all) {
        let plan = {
            let mut records = shared.records();
            let plan = plan(&snap, now);
            for (config, bk) in &plan.bookkeeping {
                records.bookkeeping.insert(config.clone(), bk.clone());
            }
            // Servers planned for destruction stop taking sessions at once.
            for action in &plan.actions {
                if let Action::Destroy { server, .. } = action
                    && let Some(s) = records.servers.get_mut(server)
                {
                    s.state = ServerState::Destroying;
                }
            }
            plan
        };
        for action in plan.actions {
            match action {
                Action::Provision { config, count, .. } => {
                    for _ in 0..count {
                        let (shared, pool, config) = (shared.clone(), pool.clone(), config.clone());
                        work.spawn(async move { provision(&shared, &pool, &config).await });
                    }
                }
                Action::Destroy { server, reason, .. } => {
                    let shared = shared.clone();
                    work.spawn(async move { destroy(&shared, server, reason).await });
                }
            }
        }
    }
    while work.join_next().await.is_some() {}
    serve_queue(shared);
    persist(shared).await;
}

/// Saves the records to the state store when they changed since the last save.
pub(crate) async fn persist(shared: &Shared) {
    let records = {
        let now = shared.records();
        let mut saved = shared.saved.lock().unwrap_or_else(|e| e.into_inner());
        if saved.as_ref() == Some(&*now) {
            return;
        }
        let copy = now.clone();
        *saved = Some(copy.clone());
        copy
    };
    if let Err(e) = shared.store.save(&records).await {
        shared.emit(Event::Failed {
            server: None,
            config: String::new(),
            error: format!("cannot save the state: {e}"),
        });
    }
}

/// Asks the providers about servers whose VMs are booting: a VM that runs makes a server that
/// needs no check-in ready; a VM that vanished makes its server go (with its AD record).
async fn refresh(shared: &Arc<Shared>) {
    let waiting: Vec<(ServerId, String, String, bool)> = shared
        .records()
        .servers
        .values()
        .filter(|s| s.state == ServerState::Starting)
        .filter_map(|s| {
            Some((
                s.id,
                s.provider.clone(),
                s.vm_id.clone()?,
                s.requires_checkin,
            ))
        })
        .collect();
    for (id, provider, vm_id, requires_checkin) in waiting {
        let Some(p) = shared.providers.get(&provider) else {
            continue;
        };
        let limits = &shared.limits[&provider];
        match super::limits::retry(limits, shared.retry, &shared.rng, || p.get(&vm_id)).await {
            Ok(Some(vm)) if vm.state == VmState::Running && !requires_checkin => {
                let now = shared.now();
                let ready = shared.records().servers.get_mut(&id).is_some_and(|s| {
                    let first = s.state == ServerState::Starting;
                    s.state = ServerState::Running;
                    s.checked_in_at.get_or_insert(now);
                    first
                });
                if ready {
                    shared.emit(Event::Ready { server: id });
                }
            }
            Ok(Some(vm)) if matches!(vm.state, VmState::Stopping | VmState::Terminated) => {
                destroy(shared, id, "its VM stopped".into()).await;
            }
            Ok(None) => destroy(shared, id, "its VM vanished".into()).await,
            Ok(Some(_)) => {}
            Err(e) => note_error(
                shared,
                Some(id),
                &provider,
                format!("cannot read the VM's state: {e}"),
            ),
        }
    }
}

fn note_error(shared: &Shared, server: Option<ServerId>, config: &str, error: String) {
    if let Some(id) = server
        && let Some(s) = shared.records().servers.get_mut(&id)
    {
        s.last_error = Some(error.clone());
    }
    shared.emit(Event::Failed {
        server,
        config: config.into(),
        error,
    });
}

/// A new server id and host name (`KASM-` and ten hex digits: 15 characters, NetBIOS-safe),
/// unique among the servers the controller knows.
fn new_server(shared: &Shared, records: &Records) -> (ServerId, String) {
    loop {
        let bytes: [u8; 16] = shared
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random();
        let id = ServerId(uuid::Builder::from_random_bytes(bytes).into_uuid());
        let hostname = super::reconcile::hostname(id);
        if !records.servers.values().any(|s| s.hostname == hostname) {
            return (id, hostname);
        }
    }
}

/// Creates one server of `config_name` in `pool`. Failures are recorded on the config (they feed
/// the failure backoff) and leave nothing behind.
async fn provision(shared: &Arc<Shared>, pool: &Pool, config_name: &str) {
    let Some(config) = pool
        .autoscale
        .iter()
        .find(|c| c.autoscale_config_name == config_name)
    else {
        return;
    };
    let now = shared.now();
    let (id, hostname) = {
        let mut records = shared.records();
        let (id, hostname) = new_server(shared, &records);
        let ad = config.ad_create_machine_record.then(|| AdRecord {
            ldap: config.ldap_id.clone().unwrap_or_default(),
            container_dn: config.ad_computer_container_dn.clone().unwrap_or_default(),
            recursive: config.ad_recursive_machine_record_cleanup,
        });
        records.servers.insert(
            id,
            ServerInfo {
                id,
                hostname: hostname.clone(),
                pool: pool.server_pool_name.clone(),
                config: config_name.into(),
                provider: config.vm_provider_config_id.clone(),
                state: ServerState::Provisioning,
                vm_id: None,
                sessions: 0,
                capacity: config.max_simultaneous_sessions_per_server.max(1),
                reusable: config.reusable,
                requires_checkin: config.requires_checkin(),
                used: false,
                created_at: now,
                checked_in_at: None,
                ad,
                last_error: None,
                reported_status: None,
            },
        );
        (id, hostname)
    };
    shared.emit(Event::Provisioning {
        server: id,
        config: config_name.into(),
    });
    let owner = Owner {
        owner_id: shared.owner_id.clone(),
        pool: pool.server_pool_name.clone(),
        config: config_name.into(),
        server_id: id,
    };
    match create(shared, config, &owner, &hostname).await {
        Ok(vm_id) => {
            if let Some(s) = shared.records().servers.get_mut(&id) {
                s.vm_id = Some(vm_id);
                s.state = ServerState::Starting;
            }
            shared.emit(Event::Starting { server: id });
        }
        Err(error) => {
            let mut records = shared.records();
            records.servers.remove(&id);
            records.failure(config_name, shared.now());
            drop(records);
            shared.emit(Event::Failed {
                server: Some(id),
                config: config_name.into(),
                error,
            });
        }
    }
}

/// AD record → script → VM. On failure, undoes the AD record and says what went wrong.
async fn create(
    shared: &Arc<Shared>,
    config: &AutoScaleConfig,
    owner: &Owner,
    hostname: &str,
) -> Result<String, String> {
    let provider_name = &config.vm_provider_config_id;
    let provider = shared.providers.get(provider_name).ok_or("no provider")?;
    let provider_config = shared
        .config
        .vm_provider(provider_name)
        .ok_or("no provider config")?;
    let zone = shared.config.zone(&config.zone_id);
    let mut active_directory = None;
    if config.ad_create_machine_record {
        let ldap = config.ldap_id.as_deref().unwrap_or_default();
        let directory = shared.directories.get(ldap).ok_or("no directory")?;
        let spec = ComputerSpec {
            name: hostname.into(),
            container_dn: config.ad_computer_container_dn.clone().unwrap_or_default(),
            owner: owner.clone(),
        };
        let password =
            super::limits::retry(&shared.limits[ldap], shared.retry, &shared.rng, || {
                directory.create_computer(&spec)
            })
            .await
            .map_err(|e| format!("cannot create the AD computer record: {e}"))?;
        active_directory = Some(AdJoin {
            domain: directory.domain().into(),
            ad_join_credential: password,
        });
    }
    let made_ad = active_directory.is_some();
    let undo_ad = |reason: String| async move {
        if made_ad {
            delete_ad(
                shared,
                config.ldap_id.as_deref().unwrap_or_default(),
                config
                    .ad_computer_container_dn
                    .as_deref()
                    .unwrap_or_default(),
                hostname,
                config.ad_recursive_machine_record_cleanup,
            )
            .await;
        }
        reason
    };
    let token = match shared.tokens.issue(
        owner.server_id,
        &config.autoscale_config_name,
        &config.zone_id,
        shared.now(),
    ) {
        Ok(t) => t,
        Err(e) => return Err(undo_ad(format!("cannot issue the check-in token: {e}")).await),
    };
    let vars = ScriptVariables {
        server_id: owner.server_id.to_string(),
        server_hostname: hostname.into(),
        upstream_auth_address: zone
            .map(|z| z.upstream_auth_address.clone())
            .unwrap_or_default(),
        checkin_jwt: token,
        connection_username: config.connection_username.clone(),
        connection_password: config.connection_password.clone(),
        active_directory,
        provider_name: provider_config.kind().into(),
        extra: provider_config.script_extras(),
        ..ScriptVariables::default()
    };
    let script = match shared.templates.get(provider_name).map(|t| t.render(&vars)) {
        None => Secret::default(),
        Some(Ok(s)) => Secret::new(provider_config.delivered_script(s.expose()).into_owned()),
        Some(Err(e)) => return Err(undo_ad(format!("startup script: {e}")).await),
    };
    let spec = VmSpec {
        owner: owner.clone(),
        hostname: hostname.into(),
        startup_script: script,
    };
    match super::limits::retry(
        &shared.limits[provider_name],
        shared.retry,
        &shared.rng,
        || provider.create(&spec),
    )
    .await
    {
        Ok(vm) => Ok(vm.vm_id),
        Err(e) => Err(undo_ad(format!("cannot create the VM: {e}")).await),
    }
}

async fn delete_ad(
    shared: &Shared,
    ldap: &str,
    container_dn: &str,
    name: &str,
    recursive: bool,
) -> Option<String> {
    let directory = shared.directories.get(ldap)?;
    let limits = shared.limits.get(ldap)?;
    super::limits::retry(limits, shared.retry, &shared.rng, || {
        directory.delete_computer(container_dn, name, recursive)
    })
    .await
    .err()
    .map(|e| format!("cannot delete the AD computer record: {e}"))
}

/// Destroys a server: VM, then AD record, then the record itself. What fails stays on the
/// server as its last error, and the next tick tries again.
pub(crate) async fn destroy(shared: &Arc<Shared>, id: ServerId, reason: String) {
    let Some(server) = shared.records().servers.get_mut(&id).map(|s| {
        s.state = ServerState::Destroying;
        s.clone()
    }) else {
        return;
    };
    if let (Some(vm_id), Some(provider)) = (&server.vm_id, shared.providers.get(&server.provider)) {
        let limits = &shared.limits[&server.provider];
        if let Err(e) = super::limits::retry(limits, shared.retry, &shared.rng, || {
            provider.destroy(vm_id)
        })
        .await
        {
            return note_error(
                shared,
                Some(id),
                &server.config,
                format!("cannot destroy the VM: {e}"),
            );
        }
    }
    if let Some(ad) = &server.ad
        && let Some(error) = delete_ad(
            shared,
            &ad.ldap,
            &ad.container_dn,
            &server.hostname,
            ad.recursive,
        )
        .await
    {
        if let Some(s) = shared.records().servers.get_mut(&id) {
            s.vm_id = None;
        }
        return note_error(shared, Some(id), &server.config, error);
    }
    shared.records().servers.remove(&id);
    shared.emit(Event::Destroyed { server: id, reason });
}

/// The bookkeeping the controller keeps for `config` (for tests and dashboards).
pub(crate) fn bookkeeping(shared: &Shared, config: &str) -> Bookkeeping {
    shared
        .records()
        .bookkeeping
        .get(config)
        .cloned()
        .unwrap_or_default()
}
