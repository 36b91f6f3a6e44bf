//! Step 4 of a tick: the plans become records and background work. Everything is decided under
//! the records' lock, against the records as they are now (not as the snapshot saw them):
//! a server that got a session since the snapshot is not destroyed, and a provider config's
//! `max_instances` caps the servers of every auto-scale config that uses it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use super::builder::Setup;
use super::records::{Records, ServerInfo};
use super::state::State;
use super::tasks::{self, Randomness, Tasks, Work};
use super::{Event, RolloutPhase, Shared, destroy, hostname, power, provision, queue, state};
use crate::engine::{Action, Cause, Plan, RolloutState, ServerId, ServerState};

/// What a plan asks of one server, after the checks.
enum Start {
    Create(ServerId, Cause),
    Destroy(ServerId, Cause, String),
    Stop(ServerId, Cause, String),
    Wake(ServerId, Cause, String),
    /// A server built for the warm tier serves at once: the pool's waiting requests are placed.
    HandedOver(ServerId, String),
}

/// What executing the plans did.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    /// Creates and destroys started in the background.
    pub started: usize,
}

/// Step 4: the plans' decisions go into the records, which are saved, and then their work
/// starts in the background.
pub(crate) async fn execute(
    shared: &Arc<Shared>,
    plans: Vec<(String, Plan)>,
    now: Timestamp,
) -> Executed {
    let (notes, starts) = decide(&shared.setup(), &shared.state, &shared.tasks, plans, now);
    for note in &notes {
        if let Event::Note { pool, text } = note {
            tracing::info!(pool, %text, "plan note");
        }
    }
    shared.events.tell(notes);
    start(shared, starts, now).await
}

/// The plans' decisions, taken under the records' lock: the records of new and doomed
/// servers, and what the plans noted.
fn decide(
    setup: &Setup,
    state: &State,
    tasks: &Tasks,
    plans: Vec<(String, Plan)>,
    now: Timestamp,
) -> (Vec<Event>, Vec<Start>) {
    let mut notes: Vec<Event> = Vec::new();
    let mut starts: Vec<Start> = Vec::new();
    {
        let mut records = state.records();
        // Counted only when a plan provisions (a steady tick reads no server here).
        let mut live: Option<HashMap<String, u32>> = None;
        let mut names: Option<HashSet<String>> = None;
        for (pool, plan) in plans {
            for (config, bookkeeping) in plan.bookkeeping {
                // Only a change touches the records (and makes a save).
                let before = records.bookkeeping.get(&config);
                if before != Some(&bookkeeping) {
                    let before = before.and_then(|b| b.rollout.as_ref());
                    notes.extend(rollout_events(
                        &config,
                        before,
                        bookkeeping.rollout.as_ref(),
                    ));
                    records.bookkeeping.insert(config, bookkeeping);
                }
            }
            notes.extend(plan.notes.into_iter().map(|text| Event::Note {
                pool: pool.clone(),
                text,
            }));
            for action in plan.actions {
                match action {
                    Action::Destroy {
                        server,
                        cause,
                        reason,
                        ..
                    } => match doom(&mut records, server) {
                        Ok(true) => starts.push(Start::Destroy(server, cause, reason)),
                        Ok(false) => {}
                        Err(sessions) => notes.push(Event::Note {
                            pool: pool.clone(),
                            text: format!(
                                "kept {server}: it took {sessions} session(s) after the plan chose to destroy it ({reason})"
                            ),
                        }),
                    },
                    Action::Stop {
                        server,
                        cause,
                        reason,
                        ..
                    } => {
                        if power::decide_stop(&mut records, server) {
                            tracing::info!(%server, ?cause, %reason, "stop");
                            starts.push(Start::Stop(server, cause, reason));
                        } else {
                            notes.push(Event::Note {
                                pool: pool.clone(),
                                text: format!(
                                    "kept {server} running: it is no longer ready and idle ({reason})"
                                ),
                            });
                        }
                    }
                    Action::Start {
                        server,
                        cause,
                        queue_slots,
                        reason,
                        ..
                    } => {
                        match power::decide_start(&mut records, server, queue_slots, now) {
                            power::Wake::Start => {
                                tracing::info!(%server, ?cause, %reason, "start");
                                starts.push(Start::Wake(server, cause, reason));
                            }
                            power::Wake::HandedOver => {
                                tracing::info!(%server, ?cause, %reason, "handed over to serve");
                                starts.push(Start::HandedOver(server, pool.clone()));
                            }
                            power::Wake::No => {}
                        }
                    }
                    Action::Provision {
                        config,
                        count,
                        cause,
                        queue_slots,
                        reason,
                    } => {
                        let Some((p, c)) = setup.config.autoscale_configs().find(|(p, c)| {
                            p.server_pool_name == pool && c.autoscale_config_name == config
                        }) else {
                            continue;
                        };
                        let provider = &c.vm_provider_config_id;
                        let cap = setup.config
                            .vm_provider(provider)
                            .map_or(0, |v| v.max_instances());
                        let used = live
                            .get_or_insert_with(|| live_per_provider(&records))
                            .entry(provider.clone())
                            .or_default();
                        let allowed = count.min(cap.saturating_sub(*used));
                        if allowed < count {
                            notes.push(Event::Note {
                                pool: pool.clone(),
                                text: format!(
                                    "{config}: {allowed} of {count} server(s) provisioned: VM provider config `{provider}` allows {cap} (max_instances, shared by every auto-scale config that uses it) and has {used}"
                                ),
                            });
                        }
                        tracing::info!(config, count = allowed, ?cause, %reason, "provision");
                        let names = names.get_or_insert_with(|| taken_names(&state.taken_names, &records));
                        let mut queue_slots = queue_slots;
                        for _ in 0..allowed {
                            let pattern = c.server_hostname_pattern.as_ref();
                            let Some((id, name)) = new_server(&setup.rng, names, pattern) else {
                                notes.push(Event::Note {
                                    pool: pool.clone(),
                                    text: format!(
                                        "{config}: no free host name left in server_hostname_pattern `{}`: no server made",
                                        pattern.map_or("", |p| p.as_str())
                                    ),
                                });
                                break;
                            };
                            let mut server = ServerInfo::new(id, name, &setup.config, p, c, now);
                            server.generation = setup.generations.get(&config).copied();
                            // Built for the warm tier: stopped once ready.
                            server.for_warm = cause == Cause::WarmTier;
                            // Server by server, as the plan counted them.
                            server.queue_slots = queue_slots.min(server.capacity);
                            queue_slots -= server.queue_slots;
                            records.servers.insert(id, server);
                            *used += 1;
                            starts.push(Start::Create(id, cause));
                        }
                    }
                }
            }
        }
        // Work an earlier run or tick left unfinished: creates after a restart (the record was
        // saved before the VM was asked for; create is idempotent on the server id) and
        // destroys that failed.
        // Not the servers this plan just made (already in `starts`): a create that ends at
        // once would otherwise be started a second time.
        let planned: HashSet<ServerId> = starts
            .iter()
            .filter_map(|s| match s {
                Start::Create(id, _) => Some(*id),
                _ => None,
            })
            .collect();
        for s in records.servers.values() {
            match s.state {
                ServerState::Provisioning
                    if !planned.contains(&s.id) && !tasks.busy(&Work::Create(s.id)) =>
                {
                    let cause = if s.queue_slots > 0 {
                        Cause::QueuedRequests
                    } else {
                        Cause::BelowMinimum
                    };
                    starts.push(Start::Create(s.id, cause));
                }
                ServerState::Destroying if !tasks.busy(&Work::Destroy(s.id)) => {
                    starts.push(Start::Destroy(
                        s.id,
                        Cause::Surplus,
                        "retrying an unfinished destroy".into(),
                    ));
                }
                _ => {}
            }
        }
    }
    (notes, starts)
}

/// Saves the decisions, then starts their work; returns how much started.
async fn start(shared: &Arc<Shared>, mut starts: Vec<Start>, now: Timestamp) -> Executed {
    // The records of new and doomed servers are saved before their VMs are asked for or
    // destroyed, so a restart (or the next leader) finds them and resumes the work instead of
    // adopting VMs as unknown; on a shared store this save also carries the leader's epoch.
    // (A tick that starts nothing saves once, at its end.)
    if !starts.is_empty()
        && let Err(e) = state::persist(shared).await
    {
        // No VM created or destroyed on a decision that is not saved (a replica that lost its
        // lease, or a store that cannot be reached): the next tick tries again from the records.
        tracing::warn!(error = %e, "work not started: the plan's records are not saved");
        starts.clear();
    }
    let mut executed = Executed::default();
    for start in starts {
        match start {
            Start::Create(id, cause) => {
                let config = config_of(shared, id);
                let fresh = tasks::spawn(shared, Work::Create(id), |s| async move {
                    provision::provision(&s, id, now).await;
                });
                if fresh {
                    executed.started += 1;
                    shared.events.emit(Event::Provisioning {
                        server: id,
                        config,
                        cause,
                    });
                }
            }
            Start::Destroy(id, cause, reason) => {
                // Marked destroying when it was decided.
                let fresh = tasks::spawn(shared, Work::Destroy(id), |s| async move {
                    destroy::destroy(&s, id, Some(cause), reason).await;
                });
                executed.started += usize::from(fresh);
            }
            Start::Stop(id, cause, reason) => {
                executed.started += usize::from(power::spawn_stop(shared, id, cause, reason));
            }
            Start::Wake(id, cause, reason) => {
                executed.started += usize::from(power::spawn_start(shared, id, cause, reason));
            }
            Start::HandedOver(id, pool) => {
                let config = config_of(shared, id);
                metrics::counter!("kasm_scale_warm_handovers_total", "config" => config)
                    .increment(1);
                shared
                    .events
                    .tell(queue::serve(&shared.setup(), &shared.state, Some(&pool)));
            }
        }
    }
    executed
}

/// The auto-scale config of server `id` (empty when it is gone).
fn config_of(shared: &Shared, id: ServerId) -> String {
    shared
        .state
        .records()
        .servers
        .get(&id)
        .map(|s| s.config.clone())
        .unwrap_or_default()
}

/// Live servers (every state: a VM being destroyed still exists) per VM provider config.
fn live_per_provider(records: &Records) -> HashMap<String, u32> {
    let mut live: HashMap<String, u32> = HashMap::new();
    for s in records.servers.values() {
        *live.entry(s.provider.clone()).or_default() += 1;
    }
    live
}

/// Marks `server` for destruction if it still has no session: `Ok(true)` when it is now
/// destroying, `Ok(false)` when it is gone or already going, `Err(sessions)` when it took
/// sessions since the snapshot (it stays).
fn doom(records: &mut Records, server: ServerId) -> Result<bool, u32> {
    let Some(s) = records.servers.get_mut(&server) else {
        return Ok(false);
    };
    if s.state == ServerState::Destroying {
        return Ok(false);
    }
    if s.sessions > 0 || s.sessions_unknown {
        return Err(s.sessions);
    }
    s.state = ServerState::Destroying;
    Ok(true)
}

/// Host names in use, in capitals: the records' and those the last listings of the clouds and
/// directories showed (`listed`).
pub(crate) fn taken_names(listed: &Mutex<HashSet<String>>, records: &Records) -> HashSet<String> {
    let listed = listed.lock().unwrap_or_else(|e| e.into_inner());
    listed
        .iter()
        .chain(records.servers.values().map(|s| &s.hostname))
        .map(|n| n.to_ascii_uppercase())
        .collect()
}

/// A new server id and a host name nobody uses (`taken`, in capitals, gets it): by `pattern`
/// (the lowest free counter value; random hex digits from the id), else `KASM-` and ten hex
/// digits of the id. `None` when the pattern has no free name left.
fn new_server(
    rng: &Randomness,
    taken: &mut HashSet<String>,
    pattern: Option<&crate::config::HostnamePattern>,
) -> Option<(ServerId, String)> {
    // Names from the id's digits collide rarely: another id is drawn (a few times at most
    // while the pattern has room: validation keeps 15 of 16 of its names free).
    for _ in 0..64 {
        let id = rng.server_id();
        let name = match pattern {
            Some(p) => match p.pick(id, |n| taken.contains(&n.to_ascii_uppercase())) {
                Some(name) => name,
                None if p.has_counter() => return None,
                None => continue,
            },
            None => hostname(id),
        };
        if taken.insert(name.to_ascii_uppercase()) {
            return Some((id, name));
        }
    }
    None
}

/// What changed in a config's rollout between two plans, as events.
fn rollout_events(
    config: &str,
    before: Option<&RolloutState>,
    after: Option<&RolloutState>,
) -> Vec<Event> {
    let Some(after) = after else {
        return Vec::new();
    };
    let event = |phase: RolloutPhase, reason: String| {
        tracing::info!(config, generation = %after.generation, ?phase, %reason, "rollout");
        Event::Rollout {
            config: config.to_owned(),
            generation: after.generation,
            phase,
            reason,
        }
    };
    let same =
        before.filter(|b| b.generation == after.generation && b.started_at == after.started_at);
    let mut events = Vec::new();
    if same.is_none() {
        events.push(event(
            RolloutPhase::Started,
            format!(
                "servers of an older generation than {} found",
                after.generation
            ),
        ));
    }
    let had = |f: fn(&RolloutState) -> bool| same.is_some_and(f);
    if after.canary_ready_at.is_some() && !had(|b| b.canary_ready_at.is_some()) {
        events.push(event(
            RolloutPhase::CanaryReady,
            "the canary servers are ready".into(),
        ));
    }
    if let Some(pause) = &after.paused
        && !had(|b| b.paused.is_some())
    {
        events.push(event(RolloutPhase::Paused, pause.reason.clone()));
    }
    if after.finished_at.is_some() && !had(|b| b.finished_at.is_some()) {
        events.push(event(
            RolloutPhase::Finished,
            "no outdated server is left".into(),
        ));
    }
    events
}
