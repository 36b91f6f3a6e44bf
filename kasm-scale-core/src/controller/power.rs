//! (ours) The warm tier's work in the background: stopping a ready, idle server into its
//! config's warm tier, starting a stopped one again, and proving that a started server is up
//! before it takes a session.
//!
//! A stop marks the server `stopping` (decided under the records' lock, so a server that took
//! a session since the plan is not stopped) and asks its provider; the refresh of step 1 makes
//! it `stopped` once its VM is. A start marks it `starting` with `woken_at` and no
//! `checked_in_at`, and asks its provider: it takes sessions only once it proved it is up
//! (its guest checked in again, or a TCP connection to its connection port succeeded, as its
//! config's warm tier says). A start refused for capacity skips its offering for
//! `capacity_skip_seconds` and, where its provider can move a stopped VM, moves it to the next
//! offering in its placement (another instance type or size) and starts it there, in the same
//! call; when none is left it goes back `stopped` and the controller plans again at once (the
//! engine then builds on an offering that is not short). The next start of a server moved to a
//! dearer offering tries the first one again. A VM deleted meanwhile makes its server (and AD
//! record) go.
//!
//! Failures: a stop or start refused outright puts the server back where it was; one whose
//! outcome is unknown (a timeout, a transient fault, a rate limit: the cloud may have taken it)
//! leaves it `stopping` or `starting`, and the refresh decides from the VM's real state. Every
//! failure counts for the config's backoff (as a failed build does, so a broken start is not
//! asked again every tick) and for the server: after [`MAX_POWER_FAILURES`] a server that
//! cannot be stopped serves as a running one, and one that cannot be started is destroyed.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument;

use super::records::{MAX_POWER_FAILURES, Records, ServerInfo};
use super::tasks::{self, Work};
use super::{Event, Shared, destroy, offerings, queue};
use crate::config::Readiness;
use crate::engine::{Cause, ServerId, ServerState};
use crate::traits::{BackendError, StopMode, Vm, VmState};

/// How long one TCP readiness probe may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Marks `server` stopping if it is still ready and idle: `true` when it now is.
pub(crate) fn decide_stop(records: &mut Records, server: ServerId) -> bool {
    let Some(s) = records.servers.get(&server) else {
        return false;
    };
    if s.state != ServerState::Running || s.sessions > 0 || s.sessions_unknown || s.vm_id.is_none()
    {
        return false;
    }
    if let Some(s) = records.servers.get_mut(&server) {
        s.state = ServerState::Stopping;
    }
    true
}

/// What [`decide_start`] made of a start the plan asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A stopped server is now starting: its provider is to start it.
    Start,
    /// A server built for the tier and still running serves at once: no call to make.
    HandedOver,
    /// Neither any more (it changed since the plan).
    No,
}

/// Marks a stopped `server` starting at `now` (it must prove it is up again), or hands a
/// running server built for the tier over to serve (it was never stopped, so it proved
/// nothing less than a new server does).
pub(crate) fn decide_start(
    records: &mut Records,
    server: ServerId,
    queue_slots: u32,
    now: Timestamp,
) -> Wake {
    let Some(s) = records.servers.get_mut(&server) else {
        return Wake::No;
    };
    if s.state == ServerState::Running && s.for_warm && s.sessions == 0 && !s.sessions_unknown {
        s.for_warm = false;
        s.queue_slots = queue_slots;
        return Wake::HandedOver;
    }
    if s.state != ServerState::Stopped || s.vm_id.is_none() {
        return Wake::No;
    }
    s.state = ServerState::Starting;
    s.woken_at = Some(now);
    s.for_warm = false;
    s.checked_in_at = None;
    s.queue_slots = queue_slots;
    Wake::Start
}

/// Starts the stop of `id` (marked stopping) in the background, unless one runs.
pub(crate) fn spawn_stop(shared: &Arc<Shared>, id: ServerId, cause: Cause, reason: String) -> bool {
    tasks::spawn(shared, Work::Power(id), |s| async move {
        stop(&s, id, cause, reason).await;
    })
}

/// Starts the start of `id` (marked starting) in the background, unless one runs.
pub(crate) fn spawn_start(
    shared: &Arc<Shared>,
    id: ServerId,
    cause: Cause,
    reason: String,
) -> bool {
    tasks::spawn(shared, Work::Power(id), |s| async move {
        start(&s, id, cause, reason).await;
    })
}

fn server_and_vm(shared: &Shared, id: ServerId) -> Option<(ServerInfo, String)> {
    let s = shared.state.records().servers.get(&id).cloned()?;
    let vm = s.vm_id.clone()?;
    Some((s, vm))
}

/// How `server` is stopped: hibernated when its config's warm tier asks and its provider can.
fn stop_mode(shared: &Shared, server: &ServerInfo) -> StopMode {
    let setup = shared.setup();
    let hibernate = setup
        .config
        .autoscale_configs()
        .find(|(_, c)| c.autoscale_config_name == server.config)
        .and_then(|(_, c)| c.warm_pool)
        .is_some_and(|w| w.hibernate);
    let can = setup
        .providers
        .get(&server.provider)
        .is_some_and(|p| p.capabilities().hibernate);
    if hibernate && can {
        StopMode::Hibernate
    } else {
        StopMode::Stop
    }
}

async fn stop(shared: &Arc<Shared>, id: ServerId, cause: Cause, reason: String) {
    let Some((server, vm_id)) = server_and_vm(shared, id) else {
        return;
    };
    let span = tracing::info_span!("stop", server = %id, config = %server.config, provider = %server.provider, vm = %vm_id, cause = ?cause);
    async {
        let Some(provider) = shared.setup().providers.get(&server.provider).cloned() else {
            return back_to(shared, id, ServerState::Stopping, ServerState::Running, "its VM provider config is gone".into());
        };
        let mode = stop_mode(shared, &server);
        tracing::info!(?mode, %reason, "stopping into the warm tier");
        let result = provider.stop(&vm_id, mode).await;
        let label = result.as_ref().map_or_else(BackendError::class, |()| "ok");
        metrics::counter!("kasm_scale_warm_stops_total", "config" => server.config.clone(), "result" => label)
            .increment(1);
        match result {
            Ok(()) => {}
            Err(BackendError::NotFound(_)) => {
                destroy::start(shared, id, None, "its VM was deleted while it was being stopped".into());
            }
            Err(e) if e.is_retryable() => {
                // The cloud may have taken it: the refresh sees where the VM is and resumes
                // the stop (or gives up after MAX_POWER_FAILURES).
                tracing::warn!(error = %e, "stop not confirmed: the refresh decides from the VM's state");
                shared.note_error(Some(id), &server.config, format!("stop not confirmed: {e}"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "stop refused: the server serves as a running one");
                stop_failed(shared, id, format!("stop refused: {e}"), false);
            }
        }
    }
    .instrument(span)
    .await;
}

/// Counts a failed stop or start of `id` (for its config's backoff too): how many it has had
/// since its last successful one.
fn power_failed(shared: &Shared, id: ServerId, config: &str, error: String) -> u32 {
    let now = shared.clock.now();
    let failures = {
        let mut records = shared.state.records();
        records.failure(config, now, now);
        records.servers.get_mut(&id).map_or(0, |s| {
            s.power_failures = s.power_failures.saturating_add(1);
            s.power_failures
        })
    };
    metrics::counter!("kasm_scale_warm_power_failures_total", "config" => config.to_owned())
        .increment(1);
    shared.note_error(Some(id), config, error);
    failures
}

/// A stop that did not happen: the server is running, and no longer a build for the tier (so
/// that it is not asked to stop again every tick; the tier refills with another build). The
/// failure counts unless `counted` already.
fn stop_failed(shared: &Shared, id: ServerId, error: String, counted: bool) {
    let config = {
        let mut records = shared.state.records();
        let Some(s) = records.servers.get_mut(&id) else {
            return;
        };
        if s.state == ServerState::Stopping {
            s.state = ServerState::Running;
        }
        s.for_warm = false;
        s.config.clone()
    };
    if counted {
        shared.note_error(Some(id), &config, error);
    } else {
        power_failed(shared, id, &config, error);
    }
}

/// A start that did not happen (refused, or its VM did not stay up): back in the tier, or
/// destroyed after [`MAX_POWER_FAILURES`].
fn start_failed(shared: &Arc<Shared>, id: ServerId, error: String) {
    let Some(config) = shared.state.records().servers.get_mut(&id).map(|s| {
        if s.state == ServerState::Starting && s.woken_at.is_some() {
            s.state = ServerState::Stopped;
            s.woken_at = None;
            s.queue_slots = 0;
        }
        s.config.clone()
    }) else {
        return;
    };
    let failures = power_failed(shared, id, &config, error);
    if failures >= MAX_POWER_FAILURES {
        tracing::warn!(server = %id, failures, "a warm server that does not start: destroyed");
        destroy::start(
            shared,
            id,
            None,
            format!("its VM failed to start {failures} times"),
        );
    }
}

async fn start(shared: &Arc<Shared>, id: ServerId, cause: Cause, reason: String) {
    let Some((server, vm_id)) = server_and_vm(shared, id) else {
        return;
    };
    let span = tracing::info_span!("start", server = %id, config = %server.config, provider = %server.provider, vm = %vm_id, cause = ?cause);
    async {
        let setup = shared.setup();
        let (Some(provider), Some(config)) = (
            setup.providers.get(&server.provider).cloned(),
            setup.config.vm_provider(&server.provider),
        ) else {
            return back_to(shared, id, ServerState::Starting, ServerState::Stopped, "its VM provider config is gone".into());
        };
        tracing::info!(%reason, "starting from the warm tier");
        let resize = provider.capabilities().resize_stopped;
        let order = offerings::start_order(&shared.state.skipped, config, resize, server.offering, shared.clock.now());
        let labels = config.offerings();
        let label = |i: u32| labels.get(i as usize).map_or_else(|| i.to_string(), |o| o.label.clone());
        let mut on = server.offering;
        // With other offerings in its placement, the VM is moved to the one it starts on before
        // every start, even the one its record names: a move whose outcome was lost (a timeout,
        // a restart) may have left it elsewhere, and the move is idempotent.
        let movable = resize
            && (0..labels.len() as u32).any(|i| i != on && config.same_placement(on, i));
        let mut refused: Vec<String> = Vec::new();
        let mut cannot: Option<String> = None;
        for target in order {
            if movable {
                match provider.resize(&vm_id, target).await {
                    Ok(()) => {
                        if let Some(s) = shared.state.records().servers.get_mut(&id) {
                            s.offering = target;
                        }
                        if target != on {
                            tracing::info!(from = %label(on), to = %label(target), "stopped VM moved to another offering");
                        }
                        on = target;
                    }
                    Err(BackendError::NotFound(_)) => {
                        destroy::start(shared, id, None, "its VM was deleted while it was stopped".into());
                        return;
                    }
                    Err(BackendError::Capacity(why)) => {
                        // The cloud cannot give that size at all now (Azure `SkuNotAvailable`):
                        // skipped as a refused start would be, and the next one tried.
                        let now = shared.clock.now();
                        metrics::counter!("kasm_scale_offering_capacity_errors_total", "provider" => server.provider.clone(), "offering" => label(target))
                            .increment(1);
                        shared.state.skipped.skip(&server.provider, target, now, config.capacity_skip(), &why);
                        tracing::warn!(offering = %label(target), reason = %why, "moving the stopped VM refused for capacity: trying the next offering");
                        refused.push(label(target));
                        continue;
                    }
                    Err(BackendError::InvalidRequest(why)) => {
                        // This VM cannot take that offering (the cloud says so): the next one.
                        tracing::warn!(offering = %label(target), reason = %why, "the stopped VM cannot move to this offering: trying the next one");
                        cannot = Some(format!("cannot move it to offering `{}`: {why}", label(target)));
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, to = %label(target), "moving the stopped VM to another offering failed: it stays stopped");
                        return start_failed(shared, id, format!("moving it to offering `{}` failed: {e}", label(target)));
                    }
                }
            }
            let result = provider.start(&vm_id).await;
            let class = result.as_ref().map_or_else(BackendError::class, |()| "ok");
            metrics::counter!("kasm_scale_warm_starts_total", "config" => server.config.clone(), "offering" => label(on), "result" => class)
                .increment(1);
            match result {
                Ok(()) => {
                    if !refused.is_empty() {
                        let text = format!(
                            "{}: started {id} on offering `{}` after {} answered \"insufficient capacity\"",
                            server.provider,
                            label(on),
                            refused.join(", ")
                        );
                        tracing::info!(offering = %label(on), "capacity fallback of a start");
                        shared.events.emit(Event::Note { pool: server.pool.clone(), text });
                    }
                    return;
                }
                Err(BackendError::NotFound(_)) => {
                    destroy::start(shared, id, None, "its VM was deleted while it was stopped".into());
                    return;
                }
                Err(BackendError::Capacity(why)) => {
                    let now = shared.clock.now();
                    metrics::counter!("kasm_scale_offering_capacity_errors_total", "provider" => server.provider.clone(), "offering" => label(on))
                        .increment(1);
                    shared.state.skipped.skip(&server.provider, on, now, config.capacity_skip(), &why);
                    tracing::warn!(offering = %label(on), reason = %why, "start refused for capacity: its offering is skipped, trying the next one");
                    refused.push(label(on));
                }
                Err(e) if e.is_retryable() => {
                    // The cloud may have taken it: the refresh sees whether the VM comes up (its
                    // check-in or probe then makes it ready) or stays stopped (a failed start).
                    tracing::warn!(error = %e, "start not confirmed: the refresh decides from the VM's state");
                    return shared.note_error(Some(id), &server.config, format!("start not confirmed: {e}"));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "start refused: the server stays stopped");
                    return start_failed(shared, id, format!("start refused: {e}"));
                }
            }
        }
        if let (true, Some(why)) = (refused.is_empty(), cannot) {
            // No offering it could be moved to, none refused for capacity: a failed start
            // (counted, so that it is not asked again every tick).
            return start_failed(shared, id, why);
        }
        // Every offering it can start on is short (or skipped): it stays stopped, and the
        // plan that follows at once builds the free slots it was to give on an offering that
        // is not.
        let why = if refused.is_empty() {
            "every offering it can start on is skipped for capacity".to_owned()
        } else {
            format!("start refused for capacity on {}", refused.join(", "))
        };
        tracing::warn!(reason = %why, "the server stays stopped; the next plan builds instead");
        back_to(shared, id, ServerState::Starting, ServerState::Stopped, why);
        if !refused.is_empty() {
            shared.clock.wake.notify_one();
        }
    }
    .instrument(span)
    .await;
}

/// Puts `id` back from `from` to `to` (a stop or start that did not happen), with the reason.
fn back_to(shared: &Shared, id: ServerId, from: ServerState, to: ServerState, error: String) {
    let config = {
        let mut records = shared.state.records();
        let Some(s) = records.servers.get_mut(&id) else {
            return;
        };
        if s.state == from {
            s.state = to;
            if to == ServerState::Stopped {
                s.woken_at = None;
                s.queue_slots = 0;
            }
        }
        s.config.clone()
    };
    shared.note_error(Some(id), &config, error);
}

/// What the refresh of step 1 makes of the VM of a server in the warm tier's states
/// (`stopping`, or `starting` after a start): `true` when it handled it.
pub(crate) fn refreshed(
    shared: &Arc<Shared>,
    server: &ServerInfo,
    answer: &Result<Option<Vm>, BackendError>,
) -> bool {
    let woken = server.state == ServerState::Starting && server.woken_at.is_some();
    if server.state != ServerState::Stopping && !woken {
        return false;
    }
    let Ok(vm) = answer else {
        return false;
    };
    let id = server.id;
    let busy = shared.tasks.busy(&Work::Power(id));
    match vm.as_ref().map(|v| v.state) {
        Some(VmState::Stopped) if server.state == ServerState::Stopping => {
            let now = shared.clock.now();
            if let Some(s) = shared.state.records().servers.get_mut(&id)
                && s.state == ServerState::Stopping
            {
                s.state = ServerState::Stopped;
                s.stopped_at = Some(now);
                s.for_warm = false;
                s.power_failures = 0;
                s.checked_in_at = None;
                s.queue_slots = 0;
            }
            tracing::info!(server = %id, "server stopped into the warm tier");
            metrics::counter!("kasm_scale_warm_stopped_total", "config" => server.config.clone())
                .increment(1);
        }
        Some(VmState::Running | VmState::Pending)
            if server.state == ServerState::Stopping && !busy =>
        {
            // The stop was cut short (a restart mid-call) or not confirmed: ask again, up to
            // MAX_POWER_FAILURES times.
            let failures = power_failed(
                shared,
                id,
                &server.config,
                "its VM still runs after a stop".into(),
            );
            if failures >= MAX_POWER_FAILURES {
                stop_failed(
                    shared,
                    id,
                    format!("its VM still runs after {failures} stops"),
                    true,
                );
            } else {
                spawn_stop(
                    shared,
                    id,
                    Cause::WarmTier,
                    "resuming an unfinished stop".into(),
                );
            }
        }
        Some(VmState::Stopped | VmState::Stopping) if woken && !busy => {
            // Started, then down again (or the start never took): back in the tier.
            start_failed(shared, id, "its VM did not stay up after the start".into());
        }
        // With `checkin`, a woken server's guest check-in makes it ready; with `tcp`, its
        // connection port answering does.
        Some(VmState::Running)
            if woken && !busy && readiness(shared, server) == Some(Readiness::Tcp) =>
        {
            // One probe at a time per server, as the controller's task (aborted on step-down).
            let (address, port) = (server.address.clone(), port(shared, server));
            let server = server.clone();
            tasks::spawn(shared, Work::Power(id), |shared| async move {
                if let (Some(address), Some(port)) = (address, port)
                    && probe(&address, port).await
                {
                    proved_up(&shared, &server, "its connection port answers");
                }
            });
        }
        Some(VmState::Failed | VmState::Terminated) | None => {
            destroy::start(shared, id, None, "its VM is gone".into());
        }
        _ => {}
    }
    true
}

fn readiness(shared: &Shared, server: &ServerInfo) -> Option<Readiness> {
    shared
        .setup()
        .config
        .autoscale_configs()
        .find(|(_, c)| c.autoscale_config_name == server.config)
        .and_then(|(_, c)| c.warm_readiness())
}

fn port(shared: &Shared, server: &ServerInfo) -> Option<u16> {
    shared
        .setup()
        .config
        .autoscale_configs()
        .find(|(_, c)| c.autoscale_config_name == server.config)
        .and_then(|(_, c)| c.effective_port())
}

/// Whether a TCP connection to `address:port` succeeds within [`PROBE_TIMEOUT`].
pub(crate) async fn probe(address: &str, port: u16) -> bool {
    let target = match address.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port),
        Err(_) => return false,
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(target)).await,
        Ok(Ok(_))
    )
}

/// A started server proved it is up (`how`): it takes sessions.
pub(crate) fn proved_up(shared: &Shared, server: &ServerInfo, how: &str) {
    let now = shared.clock.now();
    let ready = shared
        .state
        .records()
        .servers
        .get_mut(&server.id)
        .is_some_and(|s| {
            let first = s.state == ServerState::Starting && s.woken_at.is_some();
            if first {
                s.state = ServerState::Running;
                s.checked_in_at = Some(now);
                s.power_failures = 0;
            }
            first
        });
    if ready {
        started(
            shared,
            server.id,
            &server.config,
            &server.pool,
            server.woken_at,
            how,
        );
    }
}

/// A server started from the warm tier is ready: its start time for metrics, the event, and
/// the waiting requests.
pub(crate) fn started(
    shared: &Shared,
    id: ServerId,
    config: &str,
    pool: &str,
    woken_at: Option<Timestamp>,
    how: &str,
) {
    let took = woken_at.map_or(0.0, |t| {
        shared.clock.now().duration_since(t).as_secs_f64().max(0.0)
    });
    tracing::info!(server = %id, took_s = took, how, "started server ready");
    metrics::histogram!("kasm_scale_time_to_start_seconds", "config" => config.to_owned())
        .record(took);
    // Its start time for the demand history, and the event.
    shared.ready(id, config, woken_at.unwrap_or_else(|| shared.clock.now()));
    shared
        .events
        .tell(queue::serve(&shared.setup(), &shared.state, Some(pool)));
}
