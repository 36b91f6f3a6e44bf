//! The planning pass: Kasm's scaling rules over one pool.

use jiff::{SignedDuration, Timestamp};

use super::{Action, Bookkeeping, Cause, Plan, PoolSnapshot, ServerSnapshot, ServerState};

/// First wait after a failed server, in seconds (ours): doubled per further failure.
pub const FAILURE_BACKOFF_BASE: u64 = 60;
/// Longest wait between attempts of a failing config, in seconds (ours).
pub const FAILURE_BACKOFF_CAP: u64 = 3600;

/// Seconds to wait after `consecutive` failures before the next attempt: 0, then 60 s doubling
/// up to one hour. While a config has failures it also creates one server at a time, so a config
/// whose servers never come up creates at most one server an hour instead of looping.
pub fn failure_backoff(consecutive: u32) -> u64 {
    match consecutive {
        0 => 0,
        n => FAILURE_BACKOFF_BASE
            .saturating_mul(1u64 << (n - 1).min(32))
            .min(FAILURE_BACKOFF_CAP),
    }
}

/// What one pass over the servers learns about a config.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Every server of the config (counts against `max_instances`).
    live: u32,
    /// Free session slots: ready servers' room plus pending servers' full capacity.
    free: u64,
    /// The part of `free` on pending servers.
    pending_free: u64,
    /// Running, ready, sessionless servers that are not spent: downscale candidates.
    idle: u32,
    /// Servers that timed out in this plan.
    timeouts: u32,
    /// Servers still coming up (provisioning, starting, not yet checked in).
    pending: u32,
    /// Latest time a server of the config became ready.
    last_ready: Option<Timestamp>,
}

fn add_seconds(t: Timestamp, seconds: u64) -> Timestamp {
    let secs = i64::try_from(seconds).unwrap_or(i64::MAX);
    t.saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// Plans one pool at `now`. See the module documentation for the rules.
pub fn plan(snapshot: &PoolSnapshot, now: Timestamp) -> Plan {
    let configs = &snapshot.configs;
    let mut plan = Plan::default();
    let mut tally = vec![Tally::default(); configs.len()];
    // Per config: the creation time before which an unready server has timed out.
    let deadline: Vec<Timestamp> = configs
        .iter()
        .map(|c| {
            now.saturating_sub(SignedDuration::from_secs(i64::from(
                c.policy.checkin_timeout,
            )))
            .unwrap_or(Timestamp::MIN)
        })
        .collect();
    let mut per_config: Vec<Vec<Action>> = vec![Vec::new(); configs.len()];
    let mut unknown = 0usize;
    // What the hot loop needs of each config, packed: (requires_checkin, tracks readiness).
    let hot: Vec<(bool, bool)> = configs
        .iter()
        .map(|c| {
            (
                c.policy.requires_checkin,
                c.bookkeeping.consecutive_failures > 0,
            )
        })
        .collect();
    // Servers that are neither ready-and-usable nor being destroyed: looked at once more below.
    let mut others: Vec<&ServerSnapshot> = Vec::new();

    // The one pass over every server: counts and free slots of ready servers.
    for server in &snapshot.servers {
        let c = server.config as usize;
        let Some(&(requires_checkin, track_ready)) = hot.get(c) else {
            unknown += 1;
            continue;
        };
        let t = &mut tally[c];
        t.live += 1;
        if track_ready && let Some(ready) = server.checked_in_at {
            t.last_ready = t.last_ready.max(Some(ready));
        }
        let usable = server.state == ServerState::Running
            && (!requires_checkin || server.checked_in_at.is_some())
            && !server.is_spent();
        if usable {
            t.free += u64::from(server.capacity.saturating_sub(server.sessions));
            t.idle += u32::from(server.sessions == 0);
        } else if server.state != ServerState::Destroying {
            others.push(server);
        }
    }
    for server in others {
        let c = server.config as usize;
        let policy = &configs[c].policy;
        let t = &mut tally[c];
        if server.is_ready(policy.requires_checkin) {
            // A spent single-use server: it goes when its session has ended.
            // Also for a disabled config: disabling stops new servers only, and a used
            // single-use desktop never outlives its session.
            if server.sessions == 0 {
                per_config[c].push(destroy(
                    server,
                    &policy.name,
                    Cause::SessionEnded,
                    format!(
                        "destroy {} of {}: its single session ended (reusable is false)",
                        server.id, policy.name
                    ),
                ));
            }
        } else if timed_out(server, deadline[c]) {
            // Provisioning, starting, or running but not yet checked in, for too long.
            t.timeouts += 1;
            per_config[c].push(destroy(
                server,
                &policy.name,
                Cause::CheckinTimeout,
                format!(
                    "destroy {} of {}: not ready {} s after creation (checkin_timeout {} s)",
                    server.id,
                    policy.name,
                    (now - server.created_at).get_seconds(),
                    policy.checkin_timeout
                ),
            ));
        } else {
            let room = u64::from(server.capacity.saturating_sub(server.sessions));
            t.free += room;
            t.pending_free += room;
            t.pending += 1;
        }
    }
    if unknown > 0 {
        plan.notes.push(format!(
            "{unknown} server(s) name a config the snapshot does not have; ignored"
        ));
    }

    // Queued requests take the free slots of ready servers first (any config, in config order),
    // then those of servers coming up for configs with aggressive scaling, which provision for
    // requests. Without aggressive scaling a request waits for the normal cycle (Kasm's rule), so
    // it does not hold on to capacity that a config brings up for its minimum.
    let mut waiting = u64::from(snapshot.pending_requests);
    for t in tally.iter_mut() {
        let take = waiting.min(t.free - t.pending_free);
        t.free -= take;
        waiting -= take;
    }
    if waiting > 0 {
        waiting = reserve_pending(snapshot, &deadline, &mut tally, waiting);
    }

    let mut bookkeeping: Vec<Bookkeeping> = Vec::with_capacity(configs.len());
    let mut downscale = vec![false; configs.len()];
    let mut backing_off = vec![false; configs.len()];
    for (c, config) in configs.iter().enumerate() {
        let policy = &config.policy;
        let t = &mut tally[c];
        let mut bk: Bookkeeping = config.bookkeeping.clone();
        if bk.consecutive_failures > 0
            && t.last_ready
                .is_some_and(|r| bk.last_failure_at.is_none_or(|f| r > f))
        {
            bk.consecutive_failures = 0;
        }
        if t.timeouts > 0 {
            // One plan's timeouts are one failure: a bad burst does not jump to the cap.
            bk.consecutive_failures = bk.consecutive_failures.saturating_add(1);
            bk.last_failure_at = Some(now);
        }
        plan.actions.append(&mut per_config[c]);
        if !policy.enabled {
            bookkeeping.push(bk);
            continue;
        }
        let sps = u64::from(policy.sessions_per_server.max(1));
        let minimum = u64::from(policy.minimum_at(now));
        let retry_at = bk
            .last_failure_at
            .map(|f| add_seconds(f, failure_backoff(bk.consecutive_failures)));
        // A failing config waits out its backoff, and then for its one new server to come up.
        let probing = bk.consecutive_failures > 0 && t.pending > 0;
        backing_off[c] =
            bk.consecutive_failures > 0 && (probing || retry_at.is_some_and(|r| now < r));
        if t.free < minimum {
            bk.downscale_requested_at = None;
            let deficit = minimum - t.free;
            let want = deficit.div_ceil(sps);
            let room = u64::from(policy.max_instances.saturating_sub(t.live));
            let mut count = want.min(room);
            if bk.consecutive_failures > 0 {
                count = count.min(1);
            }
            if probing {
                plan.notes.push(format!(
                    "{}: {} free < minimum {minimum}, but after {} failed server(s) one new server must come up first",
                    policy.name, t.free, bk.consecutive_failures
                ));
            } else if backing_off[c] {
                plan.notes.push(format!(
                    "{}: {} free < minimum {minimum}, but waiting until {} after {} failed server(s)",
                    policy.name,
                    t.free,
                    retry_at.unwrap_or(now),
                    bk.consecutive_failures
                ));
            } else if count == 0 {
                plan.notes.push(format!(
                    "{}: {} free < minimum {minimum}, but all {} servers allowed by max_instances exist",
                    policy.name, t.free, policy.max_instances
                ));
            } else {
                let mut reason = format!(
                    "provision {count} on {}: {} free < minimum {minimum} (deficit {deficit}, {})",
                    policy.name,
                    t.free,
                    per_server(sps)
                );
                if count < want {
                    reason += &if bk.consecutive_failures > 0 {
                        format!(
                            ", one at a time after {} failed server(s)",
                            bk.consecutive_failures
                        )
                    } else {
                        format!(", capped by max_instances {}", policy.max_instances)
                    };
                }
                plan.actions.push(Action::Provision {
                    config: policy.name.clone(),
                    count: count as u32,
                    cause: Cause::BelowMinimum,
                    reason,
                });
                t.live += count as u32;
                t.free += count * sps;
            }
        } else if t.free - minimum >= sps {
            // A surplus of at least one server: idle servers go once it has lasted the backoff.
            match bk.downscale_requested_at {
                None => bk.downscale_requested_at = Some(now),
                // Nothing goes while session requests wait in the pool.
                Some(since)
                    if t.idle > 0
                        && snapshot.pending_requests == 0
                        && now >= add_seconds(since, policy.downscale_backoff) =>
                {
                    downscale[c] = true;
                }
                Some(_) => {}
            }
        } else {
            bk.downscale_requested_at = None;
        }
        bookkeeping.push(bk);
    }

    if downscale.contains(&true) {
        downscale_idle(
            snapshot,
            now,
            &mut tally,
            &downscale,
            &mut plan,
            &mut bookkeeping,
        );
    }

    // Requests that no free or pending slot covers: aggressive configs provision at once.
    for (c, config) in configs.iter().enumerate() {
        let policy = &config.policy;
        if waiting == 0 {
            break;
        }
        let room = u64::from(policy.max_instances.saturating_sub(tally[c].live));
        if !policy.enabled || !policy.aggressive_scaling || backing_off[c] || room == 0 {
            continue;
        }
        if !policy.is_active_at(now) {
            plan.notes.push(format!(
                "{}: {waiting} session request(s) wait: outside every schedule window, it provisions nothing",
                policy.name
            ));
            continue;
        }
        let sps = u64::from(policy.sessions_per_server.max(1));
        let failing = bookkeeping[c].consecutive_failures > 0;
        let count = waiting
            .div_ceil(sps)
            .min(room)
            .min(if failing { 1 } else { u64::MAX });
        plan.actions.push(Action::Provision {
            config: policy.name.clone(),
            count: count as u32,
            cause: Cause::QueuedRequests,
            reason: format!(
                "provision {count} on {}: {waiting} session request(s) wait with no free slot (aggressive scaling, {})",
                policy.name,
                per_server(sps)
            ),
        });
        tally[c].live += count as u32;
        waiting = waiting.saturating_sub(count * sps);
    }
    if waiting > 0 {
        plan.notes.push(format!(
            "{waiting} session request(s) wait: no config with aggressive scaling has room"
        ));
    }
    plan.bookkeeping = configs
        .iter()
        .map(|c| c.policy.name.clone())
        .zip(bookkeeping)
        .collect();
    plan
}

/// Lets `waiting` requests take the slots of servers coming up for configs with aggressive
/// scaling, oldest server first (the first to be ready, and a choice that servers created later
/// do not change); returns the requests left over.
fn reserve_pending(
    snapshot: &PoolSnapshot,
    deadline: &[Timestamp],
    tally: &mut [Tally],
    mut waiting: u64,
) -> u64 {
    let configs = &snapshot.configs;
    let aggressive = |c: usize| {
        configs
            .get(c)
            .is_some_and(|c| c.policy.enabled && c.policy.aggressive_scaling)
    };
    let mut pending: Vec<&ServerSnapshot> = snapshot
        .servers
        .iter()
        .filter(|s| {
            let c = s.config as usize;
            aggressive(c)
                && tally[c].pending_free > 0
                && s.state != ServerState::Destroying
                && !s.is_ready(configs[c].policy.requires_checkin)
                && !timed_out(s, deadline[c])
        })
        .collect();
    pending.sort_unstable_by_key(|s| (s.created_at, s.id));
    for server in pending {
        if waiting == 0 {
            break;
        }
        let t = &mut tally[server.config as usize];
        let take = waiting
            .min(u64::from(server.capacity.saturating_sub(server.sessions)))
            .min(t.pending_free);
        t.free -= take;
        t.pending_free -= take;
        waiting -= take;
    }
    waiting
}

/// Destroys idle servers of the chosen configs, oldest first, while the rest still covers the
/// minimum, and records the new downscale state.
fn downscale_idle(
    snapshot: &PoolSnapshot,
    now: Timestamp,
    tally: &mut [Tally],
    chosen: &[bool],
    plan: &mut Plan,
    bookkeeping: &mut [Bookkeeping],
) {
    let mut candidates: Vec<Vec<&ServerSnapshot>> = vec![Vec::new(); chosen.len()];
    for server in &snapshot.servers {
        let c = server.config as usize;
        if chosen.get(c).copied().unwrap_or(false)
            && server.sessions == 0
            && !server.is_spent()
            && server.is_ready(snapshot.configs[c].policy.requires_checkin)
        {
            candidates[c].push(server);
        }
    }
    for (c, mut idle) in candidates.into_iter().enumerate() {
        if !chosen[c] {
            continue;
        }
        let policy = &snapshot.configs[c].policy;
        let minimum = u64::from(policy.minimum_at(now));
        idle.sort_by_key(|s| (s.created_at, s.id));
        let bk = &mut bookkeeping[c];
        let since = bk.downscale_requested_at.unwrap_or(now);
        for server in idle {
            let free = tally[c].free;
            // Slots that queued requests will take are not spare.
            if free
                .checked_sub(u64::from(server.capacity))
                .is_none_or(|rest| rest < minimum)
            {
                break;
            }
            plan.actions.push(destroy(server, &policy.name, Cause::Surplus, format!(
                "destroy idle {} of {}: {free} free > minimum {minimum} since {since} (downscale_backoff {} s)",
                server.id, policy.name, policy.downscale_backoff
            )));
            tally[c].free -= u64::from(server.capacity);
        }
        let sps = u64::from(policy.sessions_per_server.max(1));
        if tally[c].free.saturating_sub(minimum) < sps {
            bk.downscale_requested_at = None;
        }
    }
}

/// Whether an unready server (the caller checks that) has outlived its config's check-in
/// timeout and is destroyed (whether or not the config is enabled). A server with sessions
/// never is.
fn timed_out(server: &ServerSnapshot, deadline: Timestamp) -> bool {
    server.sessions == 0 && server.created_at <= deadline
}

fn per_server(sessions: u64) -> String {
    format!(
        "{sessions} session{} per server",
        if sessions == 1 { "" } else { "s" }
    )
}

fn destroy(server: &ServerSnapshot, config: &str, cause: Cause, reason: String) -> Action {
    Action::Destroy {
        server: server.id,
        config: config.to_owned(),
        cause,
        reason,
    }
}
