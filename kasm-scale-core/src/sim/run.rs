//! Running a trace through the real controller on tokio's paused clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use serde::Serialize;

use super::change::{ChangeMetrics, Clouds, reload, with_stand_ins};
use super::cost::Prices;
// Where the stand-in was defined before it had a file of its own (`sim/change.rs` imports it).
use super::days::{DayMetrics, Ledger, pct, percentile};
use super::effects::{Minutes, Tracker, minutes_below};
use super::options::{Progress, SimOptions};
use super::oracle::{Served, oracle_cost_within, oracle_vm_hours_within};
use super::reconnect::Reconnects;
pub(crate) use super::stand_in::memory_stand_in;
use super::trace::{Kind, TraceEvent};
use crate::config::Config;
use crate::controller::{
    Autoscaler, CheckinStatus, ControllerError, Event, SessionId, SessionOutcome,
};
use crate::engine::{Cause, ServerState, SessionRequest};
use crate::memory::token_in;
use crate::memory::{MemoryCloud, MemoryDirectory};

/// One run's figures, series and, when asked for, free slots minute by minute.
type RunResult = Result<(Metrics, Series, Minutes), SimError>;

/// What a simulation measured. The whole-run figures leave out the warm-up days
/// ([`SimOptions::warmup_days`]): the requests that arrive in them and their waits, the VM time
/// in them, the oracle within them, the servers made, destroyed, timed out and at their peak in
/// them. [`Metrics::days`] has every day, warm-up included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Session requests.
    pub requests: u64,
    /// Requests that got a server at once.
    pub served_immediately: u64,
    /// The same, in percent of all requests.
    pub served_immediately_pct: f64,
    /// Requests that ended before they got a server.
    pub never_served: u64,
    /// Median wait of the requests that got a server, in seconds.
    pub wait_p50_s: f64,
    /// 95th percentile wait.
    pub wait_p95_s: f64,
    /// 99th percentile wait.
    pub wait_p99_s: f64,
    /// Longest wait.
    pub wait_max_s: f64,
    /// VM-hours in all (after the warm-up): VMs pending, running or stopping, which the
    /// clouds bill as running.
    pub vm_hours: f64,
    /// VM-hours per VM provider config.
    pub vm_hours_by_provider: BTreeMap<String, f64>,
    /// (ours) Hours of stopped VMs (after the warm-up): the warm tier's, billed for their
    /// disks only.
    pub stopped_vm_hours: f64,
    /// (ours) What the VM time cost (after the warm-up): running VM-hours × `price_per_hour`
    /// plus stopped ones × `stopped_price_per_hour`, each at the prices of the offering the VM
    /// was made from. Left out (not 0) when any of that time is unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// (ours) The running VM-hours' part of [`Metrics::cost`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_cost: Option<f64>,
    /// (ours) The stopped VM-hours' part of [`Metrics::cost`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_cost: Option<f64>,
    /// (ours) Cost per VM provider config, for those whose time is all priced.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cost_by_provider: BTreeMap<String, f64>,
    /// (ours) The oracle's VM-hours at offering 0's price (see [`super::oracle_cost_within`]);
    /// left out when unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_cost: Option<f64>,
    /// The lower bound on VM-hours with perfect foresight and the same boot latency, for the
    /// sessions served as long as they were served (see [`super::oracle_vm_hours`]), after
    /// the warm-up (see [`super::oracle_vm_hours_within`]).
    pub oracle_vm_hours: f64,
    /// `vm_hours / oracle_vm_hours`.
    pub ratio_to_oracle: f64,
    /// Most VMs at one time.
    pub peak_servers: u64,
    /// VMs created.
    pub provisioned: u64,
    /// VMs destroyed.
    pub destroyed: u64,
    /// Servers destroyed because they did not check in in time.
    pub checkin_timeouts: u64,
    /// Sessions the trace's pools can hold at once: over their enabled auto-scale configs,
    /// `max_instances` × sessions per server (see [`super::pool_capacity`]).
    pub capacity_sessions: u64,
    /// Requests that arrived while their pool already had as many sessions (running or
    /// waiting) as it can hold: no policy could seat them on arrival (see
    /// [`super::beyond_capacity`]).
    pub beyond_capacity: u64,
    /// Controller ticks run, warm-up included; idle ticks skipped (see
    /// [`SimOptions::skip_idle`]) are not counted. Everything else is the same with and without
    /// skipping.
    pub controller_ticks: u64,
    /// Warm-up days left out of the figures above.
    pub warmup_days: u32,
    /// Every simulated day of 24 hours from the start (the last maybe partial), warm-up days
    /// included.
    pub days: Vec<DayMetrics>,
    /// (ours) What each configuration change ([`SimOptions::changes`]) did, in order; none
    /// without changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeMetrics>,
    /// (ours) With changes: the same run without them (the same trace, seed and options), to
    /// compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Box<Metrics>>,
    /// (ours) How the trace's reconnects landed (trace events `reconnect`); left out of the
    /// JSON without reconnects.
    #[serde(skip_serializing_if = "Reconnects::is_empty")]
    pub reconnects: Reconnects,
}

/// Time series for the chart, one point per sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Minutes from the start.
    pub minutes: Vec<f64>,
    /// Sessions running or waiting.
    pub demand: Vec<u32>,
    /// Free session slots on ready servers.
    pub free: Vec<u32>,
    /// VMs per VM provider config.
    pub servers: BTreeMap<String, Vec<u32>>,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The trace names a pool the configuration does not have.
    #[error(
        "{}the trace uses pool `{pool}`, which the configuration does not define{}",
        if *line > 0 { format!("line {line}: ") } else { String::new() },
        if known.is_empty() { String::new() } else { format!(" (its pools: {known})") }
    )]
    UnknownPool {
        /// The pool.
        pool: String,
        /// The first trace line that names it (0 for a generated trace).
        line: u64,
        /// The configuration's pools, comma-separated.
        known: String,
    },
    /// The controller could not be set up.
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerError),
    /// The runtime could not be made.
    #[error("cannot start the simulation runtime: {0}")]
    Runtime(String),
    /// An option or a trace time is outside its range (see [`super::MAX_SIM_DURATION`]).
    #[error("cannot simulate: {0}")]
    Input(String),
    /// The controller refused a configuration change when it applied.
    #[error("change {index} ({label}): the controller refused the configuration: {error}")]
    Change {
        /// The change, from 1.
        index: usize,
        /// Its label.
        label: String,
        /// Why.
        error: crate::controller::ControllerError,
    },
}

/// Runs `trace` through a controller for `config`, with in-memory stand-ins for its clouds and
/// directories. With [`SimOptions::changes`] it runs the same trace without them first (the
/// baseline, in [`Metrics::baseline`]) and compares the free slots of both minute by minute
/// ([`ChangeMetrics::minutes_below_baseline`]).
pub fn simulate(
    config: &Config,
    trace: &[TraceEvent],
    options: &SimOptions,
) -> Result<(Metrics, Series), SimError> {
    if let Some(message) = super::options::problem(config, trace, options) {
        return Err(SimError::Input(message));
    }
    // The first line in the file that names an unknown pool (events are sorted by time).
    if let Some(e) = trace
        .iter()
        .filter(|e| config.pool(&e.pool).is_none())
        .min_by_key(|e| e.line)
    {
        let known: Vec<&str> = config
            .pools
            .iter()
            .map(|p| p.server_pool_name.as_str())
            .collect();
        return Err(SimError::UnknownPool {
            pool: e.pool.clone(),
            line: e.line,
            known: known.join(", "),
        });
    }
    if options.changes.is_empty() {
        let (metrics, series, _) = paused(run(config, trace, options, false))?;
        return Ok((metrics, series));
    }
    // The baseline first, then the run with the changes: each half of the progress.
    let half = |from: f64| {
        options
            .progress
            .clone()
            .map(|p| Progress(Arc::new(move |done: f64| (p.0)(from + done / 2.0))))
    };
    let baseline = SimOptions {
        changes: Vec::new(),
        progress: half(0.0),
        ..options.clone()
    };
    let (base, _, base_minutes) = paused(run(config, trace, &baseline, true))?;
    let changed = SimOptions {
        progress: half(0.5),
        ..options.clone()
    };
    let (mut metrics, series, minutes) = paused(run(config, trace, &changed, true))?;
    let finish = Duration::try_from(super::options::end_of(trace, options))
        .unwrap_or_default()
        .as_secs_f64();
    let ends: Vec<f64> = metrics
        .changes
        .iter()
        .skip(1)
        .map(|c| c.at_s)
        .chain([finish])
        .collect();
    for (c, to) in metrics.changes.iter_mut().zip(ends) {
        // Its rollout ends when its last outdated server went (within its stretch).
        let rollout_end = c
            .last_outdated_gone_after_s
            .map_or(to, |after| (c.at_s + after).min(to));
        c.minutes_below_baseline = minutes_below(&minutes, &base_minutes, c.at_s, rollout_end);
        c.minutes_below_baseline_after = minutes_below(&minutes, &base_minutes, rollout_end, to);
    }
    metrics.baseline = Some(Box::new(base));
    Ok((metrics, series))
}

/// Runs `run` on a fresh runtime whose clock is paused (virtual time).
fn paused(run: impl std::future::Future<Output = RunResult>) -> RunResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    runtime.block_on(run)
}

/// One run; `record` keeps the free slots per pool minute by minute.
async fn run(
    config: &Config,
    trace: &[TraceEvent],
    options: &SimOptions,
    record: bool,
) -> RunResult {
    // Every configuration runs with in-memory stand-ins, whose scripts hand the token over.
    let config = with_stand_ins(config);
    let changes: Vec<Config> = options
        .changes
        .iter()
        .map(|c| with_stand_ins(&c.config))
        .collect();
    let mut clouds = Clouds::new(&config, &changes, options.seed);
    let mut builder = Autoscaler::builder(config.clone())
        .seed(options.seed)
        .epoch(options.start)
        .tick_interval(options.tick)
        .reconcile_every(super::idle::RECONCILE_EVERY);
    for cloud in clouds.initial() {
        builder = builder.provider(cloud.clone());
    }
    for (i, l) in config.ldap_configs.iter().enumerate() {
        let domain = l.domain().unwrap_or_default();
        builder = builder.directory(Arc::new(MemoryDirectory::new(
            l.name.clone(),
            domain,
            options.seed.wrapping_add(100 + i as u64),
        )));
    }
    let scaler = builder.build()?;
    let mut events = scaler.subscribe();

    let end = super::options::end_of(trace, options);
    let origin = tokio::time::Instant::now();
    // Nanoseconds from the start, for the day-by-day figures.
    let ns = |t: tokio::time::Instant| t.duration_since(origin).as_nanos();
    let at = |d: SignedDuration| origin + Duration::try_from(d).unwrap_or(Duration::ZERO);
    let secs = |t: tokio::time::Instant| t.duration_since(origin).as_secs_f64();
    let (mut next, mut next_tick, mut next_sample) = (0usize, origin, origin);
    let mut book = Book::default();
    book.tracker.generations(&scaler);
    let mut sessions: HashMap<&str, SessionId> = HashMap::new();
    let mut served: Vec<Served> = Vec::new();
    let (mut never_served, mut peak) = (0u64, 0u64);
    // VM time, requests and waits day by day. VM time in nanoseconds: whole numbers, so the
    // sum is the same however the time is cut into steps (skipped idle ticks make fewer,
    // longer steps).
    let mut prices = Prices::of(&clouds.list);
    let mut ledger = Ledger::new(
        Duration::try_from(end).unwrap_or_default().as_nanos(),
        options.warmup_days,
        prices.priced(),
    );
    // Servers made and destroyed by the end of the warm-up.
    let mut warm_counts: Option<(u64, u64)> = None;
    let mut skipper = super::idle::Skipper::new(&config, options.tick);
    let span = at(end).duration_since(origin).as_secs_f64().max(1.0);
    let mut series = Series::default();
    let mut last_step = origin;
    let mut ticks = 0u64;
    let mut next_change = 0usize;
    let mut minutes = Minutes::default();
    minutes.config(&config);
    let mut next_minute = origin;
    let minute = Duration::from_secs(60);
    let mut in_force = config.clone();
    let mut reconnects = Reconnects::default();

    loop {
        let now = tokio::time::Instant::now();
        // VM time since the last step, on the meters of its offerings' prices.
        let counts = prices.counts(&clouds.list);
        let total: u64 = counts.iter().map(|m| m.count).sum();
        ledger.vm_time(ns(last_step), ns(now), &counts);
        // The VMs counted lived until now: the peak counts those that lived after the warm-up.
        if ns(now) > ledger.warmup_end() {
            peak = peak.max(total);
        }
        if warm_counts.is_none() && !ledger.in_warmup(ns(now)) {
            warm_counts = Some(counts_of(&clouds.list));
        }
        last_step = now;
        if total > super::limits::MAX_SIM_SERVERS {
            return Err(SimError::Input(format!(
                "after {:#} the simulation holds {total} servers, more than it can ({}); \
                 lower max_instances or the demand",
                SignedDuration::try_from(now.duration_since(origin)).unwrap_or_default(),
                super::limits::MAX_SIM_SERVERS
            )));
        }
        if now >= at(end) {
            break;
        }

        // Configuration changes due now, as a reload between two ticks.
        while let Some(change) = options.changes.get(next_change)
            && at(change.at) <= now
        {
            book.drain(&mut events, &scaler, &mut ledger, origin);
            let next_config = &changes[next_change];
            let reloaded = reload(&scaler, &mut clouds, &in_force, next_config, options.seed)
                .await
                .map_err(|error| SimError::Change {
                    index: next_change + 1,
                    label: change.label.clone(),
                    error,
                })?;
            book.tracker
                .applied(&scaler, &change.label, reloaded, scaler.now(), secs(now));
            in_force = next_config.clone();
            prices = Prices::of(&clouds.list);
            skipper = super::idle::Skipper::new(&in_force, options.tick);
            minutes.config(&in_force);
            next_change += 1;
        }

        let want_tick = now >= next_tick;
        while next < trace.len() && at(trace[next].at) <= now {
            let e = &trace[next];
            next += 1;
            let request = SessionRequest {
                user: e.user.clone(),
                request_id: None,
                second_session: false,
            };
            match e.kind {
                Kind::Start => match scaler.request_session_once(&e.pool, &request).await {
                    // The user has this session already (user affinity): the trace's two
                    // sessions are one, ended with the last of them.
                    Ok(r) if r.reconnected => {
                        let session = r.outcome.session();
                        ledger.request(
                            ns(now),
                            matches!(r.outcome, SessionOutcome::Assigned { .. }),
                        );
                        *book.shared.entry(session).or_default() += 1;
                        sessions.insert(&e.session, session);
                    }
                    Ok(r) => match r.outcome {
                        SessionOutcome::Assigned { session, server } => {
                            ledger.request(ns(now), true);
                            sessions.insert(&e.session, session);
                            book.seated.insert(session, (e.pool.clone(), secs(now)));
                            book.tracker.seated(session, server);
                        }
                        SessionOutcome::Queued { session } => {
                            ledger.request(ns(now), false);
                            book.waiting.insert(session, now);
                            book.pool_of.insert(session, e.pool.clone());
                            sessions.insert(&e.session, session);
                            // No extra tick: the controller provisions for it at its next
                            // tick, as it does under a broker.
                        }
                    },
                    // Only after a change that removed the pool (the trace's pools are
                    // checked before the run): the request is refused.
                    Err(ControllerError::UnknownPool(_)) => {
                        ledger.request(ns(now), false);
                        if !ledger.in_warmup(ns(now)) {
                            never_served += 1;
                        }
                        book.tracker.refused();
                    }
                    Err(e) => return Err(e.into()),
                },
                Kind::Reconnect => {
                    // A session the trace ended, or a request that expired in the queue: the
                    // controller holds nothing to return.
                    let Some(&session) = sessions.get(e.session.as_str()) else {
                        continue;
                    };
                    if book.expired.contains(&session) {
                        continue;
                    }
                    reconnects.requests += 1;
                    let answer = scaler.request_session_once(&e.pool, &request).await;
                    match answer {
                        Ok(r) if r.reconnected && r.outcome.session() == session => {
                            match r.outcome {
                                SessionOutcome::Assigned { server, .. }
                                    if book.tracker.server_of(session) == Some(server) =>
                                {
                                    reconnects.same_server += 1;
                                }
                                SessionOutcome::Queued { .. }
                                    if book.waiting.contains_key(&session) =>
                                {
                                    reconnects.still_waiting += 1;
                                }
                                _ => reconnects.elsewhere += 1,
                            }
                        }
                        Ok(r) => {
                            // A second session: the user would hold two. It is ended at once
                            // so that the trace's demand stays what it is.
                            reconnects.elsewhere += 1;
                            if r.outcome.session() != session {
                                let _ = scaler.end_session(r.outcome.session()).await;
                            }
                        }
                        Err(_) => reconnects.elsewhere += 1,
                    }
                }
                Kind::End => {
                    let Some(session) = sessions.remove(e.session.as_str()) else {
                        continue;
                    };
                    if let Some(n) = book.shared.get_mut(&session)
                        && *n > 0
                    {
                        *n -= 1;
                        continue;
                    }
                    book.shared.remove(&session);
                    book.expired.remove(&session);
                    if let Some(since) = book.waiting.remove(&session)
                        && !ledger.in_warmup(ns(since))
                    {
                        never_served += 1;
                    }
                    if let Some((pool, from)) = book.seated.remove(&session) {
                        served.push(Served {
                            pool,
                            from,
                            to: secs(now),
                        });
                    }
                    book.tracker.ended(session);
                    let _ = scaler.end_session(session).await;
                }
            }
        }
        for (_, cloud) in &clouds.list {
            for c in cloud.due_checkins() {
                if let Some(token) = token_in(c.startup_script.expose()) {
                    let _ = scaler
                        .check_in(c.server_id, token, &CheckinStatus::running())
                        .await;
                }
            }
        }
        if want_tick {
            ticks += 1;
            scaler.tick().await;
            next_tick = tokio::time::Instant::now() + options.tick;
        }
        book.drain(&mut events, &scaler, &mut ledger, origin);
        let mut row = None;
        if now >= next_sample {
            let r = row.get_or_insert_with(|| Row::now(&scaler, &clouds.list, sessions.len()));
            r.push(now.duration_since(origin), &mut series);
            next_sample += options.sample;
            if let Some(progress) = &options.progress {
                (progress.0)(now.duration_since(origin).as_secs_f64() / span);
            }
        }
        if record && now >= next_minute {
            minutes.push(&scaler.servers(), options.start, 1);
            next_minute += minute;
        }
        // Advance to the next thing that happens.
        let mut limit = at(end);
        if let Some(e) = trace.get(next) {
            limit = limit.min(at(e.at));
        }
        if let Some(c) = options.changes.get(next_change) {
            limit = limit.min(at(c.at));
        }
        let pending = clouds.list.iter().filter_map(|(_, c)| c.next_event()).min();
        // Nothing changes until `limit` but the clock: skip the idle ticks, with the samples
        // they would have taken.
        if want_tick
            && options.skip_idle
            && skipper.idle(&scaler, !book.waiting.is_empty(), pending.is_some())
        {
            let skip = skipper.ticks_to_skip(&scaler, now, next_tick, limit);
            if skip > 0 {
                let until = next_tick + options.tick.saturating_mul(skip as u32);
                let r = row.get_or_insert_with(|| Row::now(&scaler, &clouds.list, sessions.len()));
                while next_sample < until {
                    r.push(next_sample.duration_since(origin), &mut series);
                    next_sample += options.sample;
                }
                if record && next_minute < until {
                    let count = (until - next_minute).as_nanos().div_ceil(minute.as_nanos());
                    minutes.push(&scaler.servers(), options.start, count as usize);
                    next_minute += minute.saturating_mul(count as u32);
                }
                next_tick = until;
            }
        }
        let mut wake = next_tick.min(next_sample).min(limit);
        if record {
            wake = wake.min(next_minute);
        }
        if let Some(t) = pending {
            wake = wake.min(t);
        }
        tokio::time::sleep_until(wake.max(tokio::time::Instant::now())).await;
    }

    let finish = at(end).duration_since(origin).as_secs_f64();
    served.extend(book.seated.into_values().map(|(pool, from)| Served {
        pool,
        from,
        to: finish,
    }));
    let warmup_end = ledger.warmup_end() as f64 / 1e9;
    // Requests still waiting at the end were never served.
    never_served += book
        .waiting
        .values()
        .filter(|since| !ledger.in_warmup(ns(**since)))
        .count() as u64;
    let whole = ledger.finish(&config, &served, options.start, finish);
    let waits = &whole.waits;
    let billed = &whole.billed;
    let vm_hours_by_provider: BTreeMap<String, f64> = clouds
        .list
        .iter()
        .zip(&billed.vm_nanos)
        .map(|((k, _), v)| (k.clone(), *v as f64 / 3.6e12))
        .collect();
    let vm_hours: f64 = vm_hours_by_provider.values().sum();
    let stopped_vm_hours = billed.stopped_nanos.iter().sum::<u128>() as f64 / 3.6e12;
    let cost_by_provider: BTreeMap<String, f64> = clouds
        .list
        .iter()
        .enumerate()
        .filter_map(|(i, (k, _))| Some((k.clone(), billed.cost_of(i)?)))
        .collect();
    let oracle = oracle_vm_hours_within(&config, &served, warmup_end, finish);
    let (made, gone) = counts_of(&clouds.list);
    let (made_before, gone_before) = warm_counts.unwrap_or((made, gone));
    let (provisioned, destroyed) = (made - made_before, gone - gone_before);
    let warmup = SignedDuration::from_hours(24 * i64::from(options.warmup_days));
    let metrics = Metrics {
        requests: whole.requests,
        served_immediately: whole.immediate,
        served_immediately_pct: pct(whole.immediate, whole.requests),
        never_served,
        wait_p50_s: percentile(waits, 0.5),
        wait_p95_s: percentile(waits, 0.95),
        wait_p99_s: percentile(waits, 0.99),
        wait_max_s: waits.last().copied().unwrap_or(0.0),
        vm_hours,
        vm_hours_by_provider,
        stopped_vm_hours,
        cost: billed.cost(),
        running_cost: billed.cost_part(false),
        stopped_cost: billed.cost_part(true),
        cost_by_provider,
        oracle_cost: oracle_cost_within(&config, &served, warmup_end, finish),
        oracle_vm_hours: oracle,
        ratio_to_oracle: if oracle > 0.0 { vm_hours / oracle } else { 0.0 },
        peak_servers: peak,
        provisioned,
        destroyed,
        checkin_timeouts: book.timeouts,
        capacity_sessions: {
            let mut pools: Vec<&str> = trace.iter().map(|e| e.pool.as_str()).collect();
            pools.sort_unstable();
            pools.dedup();
            pools
                .iter()
                .map(|p| super::capacity::pool_capacity(&config, p))
                .sum()
        },
        beyond_capacity: super::capacity::beyond_capacity_after(&config, trace, warmup),
        controller_ticks: ticks,
        warmup_days: options.warmup_days,
        days: whole.days,
        changes: book.tracker.finish(),
        baseline: None,
        reconnects: reconnects.finish(),
    };
    Ok((metrics, series, minutes))
}

/// What the events of a run tell: waits, seated sessions, check-in timeouts, and what the
/// changes did.
#[derive(Default)]
struct Book {
    /// When each seated session got its server, and its pool.
    seated: HashMap<SessionId, (String, f64)>,
    /// The pool of each waiting session.
    pool_of: HashMap<SessionId, String>,
    /// Since when each session waits.
    waiting: HashMap<SessionId, tokio::time::Instant>,
    /// Sessions that more than one trace session share (user affinity), with how many more.
    shared: HashMap<SessionId, u32>,
    /// Requests that expired in the queue (they stay waiting: never served).
    expired: std::collections::HashSet<SessionId>,
    timeouts: u64,
    tracker: Tracker,
}

impl Book {
    /// Takes in the events so far.
    fn drain(
        &mut self,
        events: &mut tokio::sync::broadcast::Receiver<Event>,
        scaler: &Autoscaler,
        ledger: &mut Ledger,
        origin: tokio::time::Instant,
    ) {
        let now = tokio::time::Instant::now();
        let ns = now.duration_since(origin).as_nanos();
        let secs = now.duration_since(origin).as_secs_f64();
        // The generation of each server made, looked up once per batch.
        let mut built: Option<HashMap<crate::engine::ServerId, Option<crate::config::Generation>>> =
            None;
        while let Ok(event) = events.try_recv() {
            match event {
                Event::SessionAssigned { session, server } => {
                    if let Some(since) = self.waiting.remove(&session) {
                        ledger.wait(
                            ns_of(since, origin),
                            now.duration_since(since).as_secs_f64(),
                        );
                    }
                    if let Some(pool) = self.pool_of.remove(&session) {
                        self.seated.insert(session, (pool, secs));
                    }
                    self.tracker.seated(session, server);
                }
                Event::Destroyed { server, cause, .. } => {
                    if cause == Some(Cause::CheckinTimeout) && !ledger.in_warmup(ns) {
                        self.timeouts += 1;
                    }
                    self.tracker.destroyed(server, scaler.now(), secs);
                }
                Event::SessionsLost { sessions, .. } => self.tracker.lost(&sessions),
                Event::RequestExpired { session, .. } => {
                    self.expired.insert(session);
                }
                Event::Provisioning { server, config, .. } => {
                    let generations = built.get_or_insert_with(|| {
                        scaler
                            .servers()
                            .into_iter()
                            .map(|s| (s.id, s.generation))
                            .collect()
                    });
                    let generation = generations.get(&server).copied().flatten();
                    self.tracker.provisioned(&config, generation);
                }
                _ => {}
            }
        }
    }
}

/// Nanoseconds from `origin` to `t`.
fn ns_of(t: tokio::time::Instant, origin: tokio::time::Instant) -> u128 {
    t.duration_since(origin).as_nanos()
}

/// Servers made and destroyed so far, over every cloud.
fn counts_of(clouds: &[(String, Arc<MemoryCloud>)]) -> (u64, u64) {
    clouds.iter().fold((0, 0), |(p, d), (_, c)| {
        let (cp, cd) = c.counts();
        (p + cp, d + cd)
    })
}

/// One sample of the chart series: demand, free slots, VMs per cloud.
struct Row {
    demand: u32,
    free: u32,
    servers: Vec<(String, u32)>,
}

impl Row {
    fn now(scaler: &Autoscaler, clouds: &[(String, Arc<MemoryCloud>)], demand: usize) -> Self {
        let free: u32 = scaler
            .servers()
            .iter()
            .filter(|s| s.state == ServerState::Running && (s.reusable || !s.used))
            .map(|s| s.capacity.saturating_sub(s.sessions))
            .sum();
        Row {
            demand: demand as u32,
            free,
            servers: clouds
                .iter()
                .map(|(name, cloud)| (name.clone(), cloud.vm_count() as u32))
                .collect(),
        }
    }

    fn push(&self, since: Duration, series: &mut Series) {
        series.minutes.push(since.as_secs_f64() / 60.0);
        series.demand.push(self.demand);
        series.free.push(self.free);
        for (name, n) in &self.servers {
            series.servers.entry(name.clone()).or_default().push(*n);
        }
    }
}
