//! Creating one server in the background: AD computer record (its join password sealed into
//! the server's record and saved) → startup script rendered with every variable → VM with the
//! owner tags. Its record exists (state `provisioning`) before this starts and stays so until
//! it ends; a create resumed after a restart renders the same script (see `create`).

use std::sync::Arc;

use jiff::Timestamp;
use tracing::Instrument;

use super::builder::Setup;
use super::events::ProvisionError;
use super::records::ServerInfo;
use super::{Event, Shared, queue, state};
use crate::config::AutoScaleConfig;
use crate::engine::{ServerId, ServerState};
use crate::secret::Secret;
use crate::template::{AdJoin, ScriptVariables};
use crate::traits::{BackendError, ComputerSpec, Owner, Vm, VmSpec, VmState};

/// Creates server `id` (asked for by the tick of `batch`). A failure removes its record, undoes
/// its AD record and counts once per batch on its config's failure backoff.
pub(crate) async fn provision(shared: &Arc<Shared>, id: ServerId, batch: Timestamp) {
    let Some(server) = shared.state.records().servers.get(&id).cloned() else {
        return;
    };
    let span = tracing::info_span!(
        "provision",
        server = %id,
        config = %server.config,
        provider = %server.provider
    );
    async {
        let began = tokio::time::Instant::now();
        let setup = shared.setup();
        let config = setup
            .config
            .autoscale_configs()
            .find(|(p, c)| {
                p.server_pool_name == server.pool && c.autoscale_config_name == server.config
            })
            .map(|(_, c)| c);
        // The whole create uses this one setup (a reload meanwhile does not mix two
        // configurations in one VM), and the server records the generation it is built from.
        let mut server = server.clone();
        let generation = setup.generations.get(&server.config).copied();
        if server.generation != generation {
            server.generation = generation;
            if let Some(s) = shared.state.records().servers.get_mut(&id) {
                s.generation = generation;
            }
        }
        let result = match config {
            Some(config) => create(shared, &setup, &mut server, config).await,
            None => Err(ProvisionError::Vm(BackendError::InvalidRequest(
                "its auto-scale config was removed".into(),
            ))),
        };
        let elapsed_ms = began.elapsed().as_millis() as u64;
        match result {
            Ok(vm) => created(shared, id, &vm),
            Err(error) => {
                tracing::warn!(%error, elapsed_ms, "provisioning failed");
                failed(shared, &server, batch, error.to_string());
            }
        }
    }
    .instrument(span)
    .await;
}

/// The VM exists: the server starts, or is ready at once when its guest checked in already (or
/// needs no check-in and runs).
fn created(shared: &Shared, id: ServerId, vm: &Vm) {
    let now = shared.clock.now();
    let outcome = {
        let mut records = shared.state.records();
        let Some(s) = records.servers.get_mut(&id) else {
            return;
        };
        s.vm_id = Some(vm.vm_id.clone());
        // No create is resumed once the VM id is known (saved with it, in the same save): the
        // sealed join password is not kept longer than needed.
        s.ad_join = None;
        if vm.private_ip.is_some() {
            s.address.clone_from(&vm.private_ip);
        }
        if s.state != ServerState::Provisioning {
            // Being destroyed meanwhile: the destroy finds the VM by its id now.
            return;
        }
        let ready =
            s.checked_in_at.is_some() || (!s.requires_checkin && vm.state == VmState::Running);
        if ready {
            s.checked_in_at.get_or_insert(now);
            s.state = ServerState::Running;
        } else {
            s.state = ServerState::Starting;
        }
        (ready, s.pool.clone(), s.config.clone(), s.created_at)
    };
    let (ready, pool, config, created_at) = outcome;
    tracing::info!(vm = %vm.vm_id, ready, "VM created");
    shared.events.emit(Event::Starting { server: id });
    if ready {
        shared.ready(id, &config, created_at);
        shared
            .events
            .tell(queue::serve(&shared.setup(), &shared.state, Some(&pool)));
    }
}

fn failed(shared: &Shared, server: &ServerInfo, batch: Timestamp, error: String) {
    let now = shared.clock.now();
    {
        let mut records = shared.state.records();
        if records
            .servers
            .get(&server.id)
            .is_some_and(|s| s.state == ServerState::Provisioning)
        {
            records.servers.remove(&server.id);
            records.failure(&server.config, now, batch);
        }
        records.tombstone(server.id, now);
    }
    shared.events.emit(Event::Failed {
        server: Some(server.id),
        config: server.config.clone(),
        error,
    });
}

/// AD record → script → VM. On failure, undoes the AD record.
///
/// A create resumed after a restart or a failover (its record was saved before its VM was asked
/// for, and the VM may exist) sends the same request as its first attempt: the token is issued
/// at the record's creation time, and the AD join password was sealed into the record and saved
/// before the VM was asked for. So the AD record is not reset under a VM that may hold its
/// password, and EC2's client token (or ARM's PUT) sees the same parameters again.
async fn create(
    shared: &Shared,
    setup: &Setup,
    server: &mut ServerInfo,
    config: &AutoScaleConfig,
) -> Result<Vm, ProvisionError> {
    let owner = Owner {
        owner_id: setup.owner_id.clone(),
        pool: server.pool.clone(),
        config: server.config.clone(),
        server_id: server.id,
    };
    let Some(ad) = server.ad.clone() else {
        return script_and_vm(shared, setup, server, config, &owner, None).await;
    };
    let ad = &ad;
    let result = match &server.ad_join {
        Some(sealed) => match (
            setup.tokens.unseal(server.id, sealed),
            setup.directories.get(&ad.ldap),
        ) {
            (Ok(password), Some(directory)) => {
                tracing::info!(
                    "resumed: the AD record's saved join password is used, the record is not reset"
                );
                let join = AdJoin {
                    domain: directory.domain().into(),
                    ad_join_credential: password,
                };
                script_and_vm(shared, setup, server, config, &owner, Some(join)).await
            }
            (Ok(_), None) => Err(ProvisionError::Directory(BackendError::InvalidRequest(
                format!("no directory for `{}`", ad.ldap),
            ))),
            (Err(why), _) => first_attempts_vm(setup, server, why).await,
        },
        None => {
            let join = computer_record(shared, setup, server, config, ad, &owner).await?;
            match keep_join(shared, setup, server.id, &join).await {
                Ok(()) => script_and_vm(shared, setup, server, config, &owner, Some(join)).await,
                Err(e) => Err(e),
            }
        }
    };
    if result.is_err()
        && let Err(e) = super::destroy::delete_ad(shared, ad, &server.hostname).await
    {
        tracing::warn!(error = %e, "cannot undo the AD record of a failed server (reconcile removes it)");
    }
    result
}

/// Seals the join password into the server's record and saves it, before the VM is asked for.
async fn keep_join(
    shared: &Shared,
    setup: &Setup,
    id: ServerId,
    join: &AdJoin,
) -> Result<(), ProvisionError> {
    let sealed = setup
        .tokens
        .seal(id, &join.ad_join_credential)
        .map_err(ProvisionError::Token)?;
    match shared.state.records().servers.get_mut(&id) {
        Some(s) => s.ad_join = Some(sealed),
        None => {
            return Err(ProvisionError::Vm(BackendError::InvalidRequest(
                "its record was removed meanwhile".into(),
            )));
        }
    }
    state::persist(shared).await.map_err(ProvisionError::Save)?;
    tracing::debug!("AD join password sealed and saved");
    Ok(())
}

/// A resumed create whose saved join password this controller cannot open (the check-in key
/// was rotated without the old private key): the first attempt's VM, if the provider lists
/// one, is the server's (it holds the first password); without one the server is given up.
/// The AD record is never reset under a VM that may exist.
async fn first_attempts_vm(
    setup: &Setup,
    server: &ServerInfo,
    why: crate::token::TokenError,
) -> Result<Vm, ProvisionError> {
    tracing::warn!(error = %why, "the saved AD join password cannot be opened: looking for the first attempt's VM");
    let Some(provider) = setup.providers.get(&server.provider) else {
        return Err(ProvisionError::Resume(why));
    };
    let vms = provider
        .list(&setup.owner_id)
        .await
        .map_err(ProvisionError::Vm)?;
    match vms
        .into_iter()
        .find(|v| v.owner.server_id == server.id && !v.state.is_dead())
    {
        Some(vm) => {
            tracing::info!(vm = %vm.vm_id, "the first attempt's VM is the server's");
            Ok(vm)
        }
        None => Err(ProvisionError::Resume(why)),
    }
}

/// Makes the server's computer record. A name someone else's record holds is remembered as
/// taken, and with a counter in the config's host name pattern the next free name is tried at
/// once (the server takes it), so a hand-made computer costs no failed attempt.
async fn computer_record(
    shared: &Shared,
    setup: &Setup,
    server: &mut ServerInfo,
    config: &AutoScaleConfig,
    ad: &super::AdRecord,
    owner: &Owner,
) -> Result<AdJoin, ProvisionError> {
    let Some(directory) = setup.directories.get(&ad.ldap) else {
        return Err(ProvisionError::Directory(BackendError::InvalidRequest(
            format!("no directory for `{}`", ad.ldap),
        )));
    };
    let counter = config
        .server_hostname_pattern
        .as_ref()
        .filter(|p| p.has_counter());
    let mut tries = 0;
    loop {
        let spec = ComputerSpec {
            name: server.hostname.clone(),
            container_dn: ad.container_dn.clone(),
            owner: owner.clone(),
        };
        match directory.create_computer(&spec).await {
            Ok(password) => {
                return Ok(AdJoin {
                    domain: directory.domain().into(),
                    ad_join_credential: password,
                });
            }
            Err(BackendError::Conflict(why)) => {
                // Someone else holds the name: no new server takes it, now or after a listing.
                let name = server.hostname.to_ascii_uppercase();
                for names in [&shared.state.taken_names, &shared.state.conflicts] {
                    names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone());
                }
                tries += 1;
                let next = counter
                    .filter(|_| tries < MAX_NAME_TRIES)
                    .and_then(|pattern| {
                        let mut records = shared.state.records();
                        let taken =
                            super::execute::taken_names(&shared.state.taken_names, &records);
                        let next =
                            pattern.pick(server.id, |n| taken.contains(&n.to_ascii_uppercase()))?;
                        if let Some(s) = records.servers.get_mut(&server.id) {
                            s.hostname.clone_from(&next);
                        }
                        Some(next)
                    });
                let Some(next) = next else {
                    return Err(ProvisionError::Directory(BackendError::Conflict(why)));
                };
                tracing::info!(taken = %server.hostname, next = %next, "computer name held by another record: the next one");
                server.hostname = next;
            }
            Err(e) => return Err(ProvisionError::Directory(e)),
        }
    }
}

/// Names tried for one server whose names other records hold, before the create fails.
const MAX_NAME_TRIES: u32 = 8;

async fn script_and_vm(
    shared: &Shared,
    setup: &Setup,
    server: &ServerInfo,
    config: &AutoScaleConfig,
    owner: &Owner,
    active_directory: Option<AdJoin>,
) -> Result<Vm, ProvisionError> {
    let provider_name = &server.provider;
    let (Some(provider), Some(provider_config)) = (
        setup.providers.get(provider_name),
        setup.config.vm_provider(provider_name),
    ) else {
        return Err(ProvisionError::Vm(BackendError::InvalidRequest(format!(
            "no provider for `{provider_name}`"
        ))));
    };
    // Issued at the record's creation, not now: a resumed create renders the same token.
    let token = setup
        .tokens
        .issue_lasting(
            server.id,
            &server.config,
            &config.zone_id,
            server.created_at,
            crate::token::lifetime_for_config(config),
        )
        .map_err(ProvisionError::Token)?;
    let vars = ScriptVariables {
        server_id: server.id.to_string(),
        server_hostname: server.hostname.clone(),
        upstream_auth_address: setup
            .config
            .zone(&config.zone_id)
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
    let script = match setup
        .templates
        .get(provider_name)
        .map(|t| provider_config.render_script(t, &vars))
    {
        None => Secret::default(),
        Some(Ok(s)) => Secret::new(provider_config.delivered_script(s.expose()).into_owned()),
        Some(Err(e)) => return Err(ProvisionError::Script(e)),
    };
    if let Some(limit) = provider.capabilities().max_startup_script_bytes
        && script.expose().len() > limit
    {
        return Err(ProvisionError::ScriptTooLarge {
            size: script.expose().len(),
            limit,
        });
    }
    let spec = VmSpec {
        owner: owner.clone(),
        hostname: server.hostname.clone(),
        startup_script: script,
        offering: server.offering,
    };
    let id = server.id;
    let chose = |index: u32| {
        let changed = shared
            .state
            .records()
            .servers
            .get(&id)
            .is_some_and(|s| s.offering != index);
        if changed && let Some(s) = shared.state.records().servers.get_mut(&id) {
            s.offering = index;
        }
    };
    super::offerings::create(shared, provider.as_ref(), provider_config, spec, chose)
        .await
        .map(|(vm, _)| vm)
}
