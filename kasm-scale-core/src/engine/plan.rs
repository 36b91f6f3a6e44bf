//! The planning pass: Kasm's scaling rules over one pool, one function per rule.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::rollout::Phase;
use super::standby::{Share, demand_minimums};
use super::warm::{Need, Tier};
use super::{
    Action, Bookkeeping, Cause, DrainThen, Plan, PoolSnapshot, ServerId, ServerSnapshot,
    ServerState,
};

/// First wait after a failure, in seconds (ours): doubled per further failure.
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

/// Plans one pool at `now`: the rules of the [module documentation](super), in that order.
pub fn plan(snapshot: &PoolSnapshot, now: Timestamp) -> Plan {
    let mut pass = Pass::new(snapshot, now);
    let found = pass.count_servers();
    pass.spent_single_use(&found.ended);
    pass.checkin_timeouts(&found.timed_out);
    pass.drained_servers(&found.drained);
    pass.count_failures();
    pass.track_rollout();
    pass.seat_waiting_requests();
    pass.keep_minimum();
    pass.provision_for_queue();
    pass.build_canary();
    pass.demand_targets();
    pass.downscale_surplus();
    pass.retire_outdated();
    pass.expire_warm();
    pass.stop_warm_builds();
    pass.refill_warm();
    pass.finish()
}

/// What the pass over the servers learns about a config. "Current" servers are neither
/// outdated nor drained; drained servers count only in `live` (and `outdated`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    /// Every server of the config (counts against `max_instances`).
    pub(super) live: u32,
    /// Free session slots: ready servers' room plus pending servers' room (outdated servers'
    /// room included unless the rollout holds it back, [`Phase::Replacing`]).
    pub(super) free: u64,
    /// The part of `free` on pending servers.
    pub(super) pending_free: u64,
    /// The part of `pending_free` on current servers being built (not started from the warm
    /// tier): they come up within a build, not within a warm start.
    pub(super) building_free: u64,
    /// Running, ready, sessionless current servers that are not spent: downscale candidates.
    pub(super) idle: u32,
    /// Room on ready, current servers that are not spent (less what rule 12 scales in).
    pub(super) cur_ready: u64,
    /// Ready current servers (spent ones too): the canary counts them.
    pub(super) cur_ready_servers: u32,
    /// Current servers this plan does not destroy (ready or coming up).
    pub(super) cur_live: u32,
    /// Current servers coming up.
    pub(super) cur_pending: u32,
    /// Room on ready outdated servers that are not spent (not yet taken by the queue).
    pub(super) old_ready: u64,
    /// Room on outdated servers coming up.
    pub(super) old_pending: u64,
    /// Ready, sessionless outdated servers that are not spent: the rollout retires them.
    pub(super) old_idle: u32,
    /// Outdated servers not being destroyed (drained ones too).
    pub(super) outdated: u32,
    /// Outdated servers this plan destroys.
    pub(super) outdated_gone: u32,
    /// A current server that timed out in this plan (it pauses the rollout).
    pub(super) cur_timeout: Option<ServerId>,
    /// Servers this plan makes for the rollout (canary or replacement).
    pub(super) rollout_made: u32,
    /// Servers that timed out in this plan.
    pub(super) timeouts: u32,
    /// Servers still coming up (provisioning, starting, not yet checked in; not drained).
    pub(super) pending: u32,
    /// Latest time a server of the config became ready.
    pub(super) last_ready: Option<Timestamp>,
    /// Servers this plan makes (for the minimum, the queue or the rollout).
    pub(super) made: u32,
    /// Free slots before this plan made any server (after the queue took its share).
    pub(super) free_before: u64,
}

/// The servers [`Pass::count_servers`] sets aside for the rules that destroy.
#[derive(Default)]
struct Found<'s> {
    /// Spent single-use servers whose session has ended.
    ended: Vec<&'s ServerSnapshot>,
    /// Servers not ready within their config's check-in timeout.
    timed_out: Vec<&'s ServerSnapshot>,
    /// Drained servers (`then = destroy`) without a session.
    drained: Vec<&'s ServerSnapshot>,
}

/// One plan in the making: the snapshot, what is known per config (indexed like
/// [`PoolSnapshot::configs`]), and the actions found so far.
pub(super) struct Pass<'s> {
    pub(super) snapshot: &'s PoolSnapshot,
    pub(super) now: Timestamp,
    pub(super) tally: Vec<Tally>,
    /// New bookkeeping.
    pub(super) bookkeeping: Vec<Bookkeeping>,
    /// Free slots to keep now (0 when disabled or outside every schedule window), raised by the
    /// demand policy where it asks for more.
    pub(super) minimum: Vec<u64>,
    /// Why the demand policy raised a config's minimum.
    pub(super) why: Vec<Option<String>>,
    /// The creation time at or before which an unready server has timed out.
    pub(super) deadline: Vec<Timestamp>,
    /// Waiting out a failure backoff (or a probe server): provisions nothing.
    pub(super) backing_off: Vec<bool>,
    /// Where each config's rollout stands in this plan.
    pub(super) phase: Vec<Phase>,
    /// Session requests that no free or pending slot covers yet.
    pub(super) waiting: u64,
    /// Destroys of spent, timed-out and drained servers, then the provisions for the minimum
    /// and the rollout.
    pub(super) per_config: Vec<Vec<Action>>,
    /// Destroys of idle outdated servers (the rollout).
    pub(super) retire: Vec<Action>,
    /// Destroys of idle surplus servers.
    pub(super) surplus: Vec<Action>,
    /// Provisions for queued requests.
    pub(super) queue: Vec<Action>,
    pub(super) notes: Vec<String>,
    /// Where in `notes` the note of a config that could not keep its minimum is.
    short_note: Vec<Option<usize>>,
    /// Where in `notes` the note of a config whose rollout waits is.
    pub(super) rollout_note: Vec<Option<usize>>,
    /// Each config's warm tier (ours).
    pub(super) tier: Vec<Tier<'s>>,
    /// The warm tier's destroys, stops and builds (rules 14 to 16).
    pub(super) warm_actions: Vec<Action>,
}

impl<'s> Pass<'s> {
    fn new(snapshot: &'s PoolSnapshot, now: Timestamp) -> Self {
        let n = snapshot.configs.len();
        Pass {
            snapshot,
            now,
            tally: vec![Tally::default(); n],
            bookkeeping: snapshot
                .configs
                .iter()
                .map(|c| c.bookkeeping.clone())
                .collect(),
            minimum: snapshot
                .configs
                .iter()
                .map(|c| u64::from(c.policy.minimum_at(now)))
                .collect(),
            deadline: snapshot
                .configs
                .iter()
                .map(|c| {
                    now.saturating_sub(SignedDuration::from_secs(i64::from(
                        c.policy.checkin_timeout,
                    )))
                    .unwrap_or(Timestamp::MIN)
                })
                .collect(),
            backing_off: vec![false; n],
            phase: vec![Phase::None; n],
            why: vec![None; n],
            waiting: u64::from(snapshot.pending_requests),
            per_config: vec![Vec::new(); n],
            retire: Vec::new(),
            surplus: Vec::new(),
            queue: Vec::new(),
            notes: Vec::new(),
            short_note: vec![None; n],
            rollout_note: vec![None; n],
            tier: vec![Tier::default(); n],
            warm_actions: Vec::new(),
        }
    }

    /// Rule 1: counts each config's servers and free slots in one pass over the servers, and sets aside
    /// the servers the next three rules destroy.
    fn count_servers(&mut self) -> Found<'s> {
        let configs = &self.snapshot.configs;
        // What the hot loop needs of each config, packed: (requires_checkin, tracks readiness,
        // knows its generation).
        let hot: Vec<(bool, bool, bool)> = configs
            .iter()
            .map(|c| {
                (
                    c.policy.requires_checkin,
                    c.bookkeeping.consecutive_failures > 0,
                    c.generation.is_some(),
                )
            })
            .collect();
        let mut found = Found::default();
        let mut unknown = 0usize;
        let snapshot = self.snapshot;
        for server in &snapshot.servers {
            let c = server.config as usize;
            let Some(&(requires_checkin, track_ready, has_generation)) = hot.get(c) else {
                unknown += 1;
                continue;
            };
            let t = &mut self.tally[c];
            t.live += 1;
            if track_ready && let Some(ready) = server.checked_in_at {
                t.last_ready = t.last_ready.max(Some(ready));
            }
            if server.state == ServerState::Destroying {
                continue;
            }
            let outdated = server.outdated && has_generation;
            t.outdated += u32::from(outdated);
            if server.state.is_warm() {
                self.count_stopped(c, server, outdated);
                continue;
            }
            if let Some(then) = server.drained {
                if then == DrainThen::Destroy && server.sessions == 0 {
                    found.drained.push(server);
                }
                continue;
            }
            let ready = server.state == ServerState::Running
                && (!requires_checkin || server.checked_in_at.is_some());
            let timed_out = server.sessions == 0 && server.timeout_from() <= self.deadline[c];
            if server.is_warm_build() {
                // Built for the warm tier: its room is neither free nor coming.
                let tier = &mut self.tier[c];
                if ready {
                    t.cur_ready_servers += u32::from(!outdated);
                    if server.sessions == 0 {
                        // Rule 15 destroys an outdated one: the rollout counts it gone now.
                        t.outdated_gone += u32::from(outdated);
                        tier.ready_builds.push(server);
                        tier.building += u32::from(!outdated);
                    }
                } else if timed_out {
                    found.timed_out.push(server);
                } else {
                    t.pending += 1;
                    tier.building += u32::from(!outdated);
                }
                continue;
            }
            let room = u64::from(server.capacity.saturating_sub(server.sessions));
            if ready && !server.is_spent() {
                t.free += room;
                if outdated {
                    t.old_ready += room;
                    t.old_idle += u32::from(server.sessions == 0);
                } else {
                    t.cur_ready += room;
                    t.cur_ready_servers += 1;
                    t.cur_live += 1;
                    t.idle += u32::from(server.sessions == 0);
                }
            } else if ready {
                if !outdated {
                    t.cur_ready_servers += 1;
                }
                if server.sessions == 0 {
                    found.ended.push(server);
                } else if !outdated {
                    t.cur_live += 1;
                }
            } else if timed_out {
                found.timed_out.push(server);
            } else {
                t.free += room;
                t.pending_free += room;
                // Current ones only: a rollout may hold the outdated room back (`free` then
                // lacks it too).
                if server.woken_at.is_none() && !outdated {
                    t.building_free += room;
                }
                t.pending += 1;
                if outdated {
                    t.old_pending += room;
                } else {
                    t.cur_pending += 1;
                    t.cur_live += 1;
                }
            }
        }
        self.sort_tiers();
        if unknown > 0 {
            self.notes.push(format!(
                "{unknown} server(s) name a config the snapshot does not have; ignored"
            ));
        }
        found
    }

    /// Whether `server` is outdated for the engine: so marked, of a config whose generation
    /// is known.
    pub(super) fn is_outdated(&self, server: &ServerSnapshot) -> bool {
        server.outdated
            && self
                .snapshot
                .configs
                .get(server.config as usize)
                .is_some_and(|c| c.generation.is_some())
    }

    /// Rule 2: a single-use server whose session ended is destroyed (disabled configs too).
    fn spent_single_use(&mut self, ended: &[&ServerSnapshot]) {
        for server in ended {
            self.tally[server.config as usize].outdated_gone += u32::from(self.is_outdated(server));
            let name = &self.snapshot.configs[server.config as usize].policy.name;
            self.per_config[server.config as usize].push(destroy(
                server,
                name,
                Cause::SessionEnded,
                format!(
                    "destroy {} of {name}: its single session ended (reusable is false)",
                    server.id
                ),
            ));
        }
    }

    /// Rule 3: a server not ready within `checkin_timeout` of its creation is destroyed
    /// (disabled configs too); a server with a session never is.
    fn checkin_timeouts(&mut self, timed_out: &[&ServerSnapshot]) {
        for server in timed_out {
            let c = server.config as usize;
            let outdated = self.is_outdated(server);
            let policy = &self.snapshot.configs[c].policy;
            let t = &mut self.tally[c];
            let since = match server.woken_at {
                Some(_) => "its start from the warm tier",
                None => "creation",
            };
            t.timeouts += 1;
            t.outdated_gone += u32::from(outdated);
            if !outdated && t.cur_timeout.is_none() {
                t.cur_timeout = Some(server.id);
            }
            self.per_config[c].push(destroy(
                server,
                &policy.name,
                Cause::CheckinTimeout,
                format!(
                    "destroy {} of {}: not ready {} s after {since} (checkin_timeout {} s)",
                    server.id,
                    policy.name,
                    (self.now - server.timeout_from()).get_seconds(),
                    policy.checkin_timeout
                ),
            ));
        }
    }

    /// Rule 5: a server ready since the last failure clears the count; a plan with timeouts adds
    /// one failure however many servers timed out (ours). A failing config waits out its backoff,
    /// then for its one new server to come up.
    fn count_failures(&mut self) {
        for (c, bk) in self.bookkeeping.iter_mut().enumerate() {
            let t = &self.tally[c];
            if bk.consecutive_failures > 0
                && t.last_ready
                    .is_some_and(|r| bk.last_failure_at.is_none_or(|f| r > f))
            {
                bk.consecutive_failures = 0;
            }
            if t.timeouts > 0 {
                bk.consecutive_failures = bk.consecutive_failures.saturating_add(1);
                bk.last_failure_at = Some(self.now);
            }
            self.backing_off[c] = bk.consecutive_failures > 0
                && (t.pending > 0 || self.now < retry_at(bk).unwrap_or(self.now));
        }
    }

    /// Rule 8: a config with fewer free slots than its minimum creates
    /// ceil(deficit / sessions per server) servers, within `max_instances`, one at a time while
    /// it has failures, none while it backs off. The demand policy raises minimums after the
    /// queue took its servers ([`Self::demand_targets`]).
    fn keep_minimum(&mut self) {
        for c in 0..self.snapshot.configs.len() {
            self.tally[c].free_before = self.tally[c].free;
            self.keep(c);
        }
    }

    /// Provisions for config `c` what its minimum still lacks, into its one provision for the
    /// minimum; or notes why it cannot (replacing the note an earlier call left for it). The
    /// minimum's part is what the config would make with no rollout (outdated room counted,
    /// the rollout's own servers not); during a rollout the rest is replacement
    /// ([`Self::keep_rollout`]).
    fn keep(&mut self, c: usize) {
        self.start_before_builds_land(c);
        let (plain, held) = (self.plain_free(c), self.held_back(c));
        let t = &self.tally[c];
        if t.free < self.minimum[c] {
            self.bookkeeping[c].downscale_requested_at = None;
        }
        if plain < self.minimum[c] {
            self.keep_plain(c, plain, t.free_before + held);
        }
        self.keep_rollout(c);
    }

    /// [`Self::keep`]'s part for the minimum as Kasm keeps it: `free` slots counted as they
    /// would be with no rollout, `free_before` of them before this plan made any server.
    fn keep_plain(&mut self, c: usize, mut free: u64, free_before: u64) {
        // Start before build (ours): available warm servers cover the deficit first.
        let what = match &self.why[c] {
            Some(_) => format!("the demand target {}", self.minimum[c]),
            None => format!("the minimum {}", self.minimum[c]),
        };
        let (_, given) = self.start_warm(c, self.minimum[c] - free, u64::MAX, Need::Minimum, &what);
        free += given;
        if free >= self.minimum[c] {
            return;
        }
        let (policy, minimum) = (&self.snapshot.configs[c].policy, self.minimum[c]);
        let t = &mut self.tally[c];
        let bk = &mut self.bookkeeping[c];
        let sps = u64::from(policy.sessions_per_server.max(1));
        let want = (minimum - free).div_ceil(sps);
        let room = u64::from(policy.max_instances.saturating_sub(t.live));
        let failures = bk.consecutive_failures;
        let paused = self.phase[c] == Phase::Paused;
        // While failing, one server at a time: none more once this plan makes one.
        let count = if failures > 0 && t.made > 0 || paused {
            0
        } else {
            want.min(room).min(if failures > 0 { 1 } else { u64::MAX })
        };
        let deficit = minimum.saturating_sub(free_before);
        let short = match &self.why[c] {
            Some(why) => format!(
                "{}: {} free < target {minimum} ({why})",
                policy.name, free_before
            ),
            None => format!("{}: {} free < minimum {minimum}", policy.name, free_before),
        };
        let note = if paused {
            Some(format!(
                "{short}, but its rollout is paused: nothing more of the new generation is built"
            ))
        } else if self.backing_off[c] && t.pending > 0 || count == 0 && t.made > 0 {
            Some(format!(
                "{short}, but after {failures} consecutive failure(s) one new server must come up first"
            ))
        } else if self.backing_off[c] {
            Some(format!(
                "{short}, but waiting until {} after {failures} consecutive failure(s)",
                retry_at(bk).unwrap_or(self.now)
            ))
        } else if count == 0 && given > 0 {
            Some(format!(
                "{short}, and its warm tier gave {given}: all {} servers allowed by max_instances exist",
                policy.max_instances
            ))
        } else if count == 0 {
            Some(format!(
                "{short}, but all {} servers allowed by max_instances exist",
                policy.max_instances
            ))
        } else {
            None
        };
        if let Some(note) = note {
            match self.short_note[c] {
                Some(at) => self.notes[at] = note,
                None => {
                    self.short_note[c] = Some(self.notes.len());
                    self.notes.push(note);
                }
            }
            return;
        }
        let made = self.per_config[c].iter_mut().find_map(|a| match a {
            Action::Provision {
                cause: Cause::BelowMinimum,
                count,
                reason,
                ..
            } => Some((count, reason)),
            _ => None,
        });
        let total = made.as_ref().map_or(0, |(n, _)| u64::from(**n)) + count;
        let mut reason = format!(
            "provision {total} on {short} (deficit {deficit}, {})",
            per_server(sps)
        );
        if count < want && failures > 0 {
            reason += &format!(", one at a time after {failures} consecutive failure(s)");
        } else if count < want {
            reason += &format!(", capped by max_instances {}", policy.max_instances);
        }
        match made {
            Some((n, r)) => {
                *n = total as u32;
                *r = reason;
            }
            None => self.per_config[c].push(Action::Provision {
                config: policy.name.clone(),
                count: count as u32,
                cause: Cause::BelowMinimum,
                queue_slots: 0,
                reason,
            }),
        }
        t.live += count as u32;
        t.made += count as u32;
        t.free += count * sps;
    }

    /// Rule 11 (ours): configs with `standby_policy = "demand"` keep the pool's standby target
    /// (see [`super::standby`]), shared out in config order past the configs that cannot grow,
    /// on the pool as the minimums and the queue leave it: waiting requests take room before
    /// the standby does (as the next plan finds them, on servers of their own), so a plan and
    /// the next one share the target out over the same room. The configs whose minimum it
    /// raises provision the rest.
    fn demand_targets(&mut self) {
        let shares: Vec<Share> = self
            .snapshot
            .configs
            .iter()
            .enumerate()
            .map(|(c, config)| {
                let (policy, t) = (&config.policy, &self.tally[c]);
                // Available warm servers are room too: a start adds no server (ours).
                let mut room = u64::from(policy.max_instances.saturating_sub(t.live))
                    + u64::from(if policy.warm.is_some() {
                        self.startable(c)
                    } else {
                        0
                    });
                let mut stuck = (room == 0).then_some("at max_instances");
                // A failing config makes one server and waits for it: once this plan makes it,
                // the next plan finds it backing off.
                if self.phase[c] == Phase::Paused {
                    room = 0;
                    stuck = Some("rollout paused");
                } else if self.backing_off[c]
                    || self.bookkeeping[c].consecutive_failures > 0 && t.made > 0
                {
                    room = 0;
                    stuck = Some("backing off after failures");
                } else if self.bookkeeping[c].consecutive_failures > 0 {
                    room = room.min(1);
                }
                Share {
                    minimum: self.minimum[c],
                    // As rule 8's part for the minimum counts them (outdated room in, the
                    // rollout's own servers out): the share is the minimum it keeps.
                    free: self.plain_free(c),
                    room,
                    per_server: u64::from(policy.sessions_per_server.max(1)),
                    stuck,
                }
            })
            .collect();
        if let Some((minimum, why)) = demand_minimums(self.snapshot, self.now, &shares) {
            self.minimum = minimum;
            self.why = why;
            for c in 0..shares.len() {
                if self.why[c].is_some() {
                    self.keep(c);
                }
            }
        }
    }

    /// Rule 12: a surplus of at least one server's sessions starts the downscale clock; once it
    /// has lasted `downscale_backoff`, idle servers go, oldest first, while the rest covers the
    /// minimum. Nothing goes while session requests wait in the pool; a server with a session
    /// never goes. Only current servers count and go: outdated ones go by the rollout
    /// ([`Self::retire_outdated`], after this rule, with the ready room this one leaves),
    /// drained ones by their drain.
    fn downscale_surplus(&mut self) {
        let mut chosen = vec![false; self.snapshot.configs.len()];
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let policy = &config.policy;
            let free = self.downscale_free(c);
            let bk = &mut self.bookkeeping[c];
            let t = &self.tally[c];
            let sps = u64::from(policy.sessions_per_server.max(1));
            if free < self.minimum[c].saturating_add(sps) {
                bk.downscale_requested_at = None;
                continue;
            }
            match bk.downscale_requested_at {
                None => bk.downscale_requested_at = Some(self.now),
                Some(since)
                    if t.idle > 0
                        && self.snapshot.pending_requests == 0
                        && self.now >= add_seconds(since, policy.downscale_backoff) =>
                {
                    chosen[c] = true;
                }
                Some(_) => {}
            }
        }
        if chosen.contains(&true) {
            self.destroy_idle(&chosen);
        }
    }

    /// Destroys idle servers of the `chosen` configs, oldest first, while the rest still covers
    /// the minimum, and stops the downscale clock of a config left without surplus.
    fn destroy_idle(&mut self, chosen: &[bool]) {
        let snapshot = self.snapshot;
        let configs = &snapshot.configs;
        let mut candidates: Vec<Vec<&ServerSnapshot>> = vec![Vec::new(); chosen.len()];
        for server in &snapshot.servers {
            let c = server.config as usize;
            if chosen.get(c).copied().unwrap_or(false)
                && server.sessions == 0
                && !server.is_spent()
                && server.drained.is_none()
                && !(server.outdated && configs[c].generation.is_some())
                && !server.is_warm_build()
                && server.is_ready(configs[c].policy.requires_checkin)
            {
                candidates[c].push(server);
            }
        }
        for (c, mut idle) in candidates.into_iter().enumerate() {
            if !chosen[c] {
                continue;
            }
            let (policy, minimum) = (&configs[c].policy, self.minimum[c]);
            idle.sort_by_key(|s| (s.created_at, s.id));
            let mut free = self.downscale_free(c);
            let since = self.bookkeeping[c]
                .downscale_requested_at
                .unwrap_or(self.now);
            for server in idle {
                if free
                    .checked_sub(u64::from(server.capacity))
                    .is_none_or(|rest| rest < minimum)
                {
                    break;
                }
                let why = format!(
                    "{free} free > minimum {minimum} since {since} (downscale_backoff {} s)",
                    policy.downscale_backoff
                );
                if self.stops_into_tier(c, server) {
                    let tier = &mut self.tier[c];
                    tier.scaled_in += 1;
                    self.surplus.push(Action::Stop {
                        server: server.id,
                        config: policy.name.clone(),
                        cause: Cause::Surplus,
                        reason: format!(
                            "stop idle {} of {} into its warm tier ({} there, max_stopped {}): {why}",
                            server.id,
                            policy.name,
                            tier.count(),
                            policy.warm.map_or(0, |w| w.max_stopped)
                        ),
                    });
                } else {
                    self.surplus.push(destroy(
                        server,
                        &policy.name,
                        Cause::Surplus,
                        format!("destroy idle {} of {}: {why}", server.id, policy.name),
                    ));
                }
                let t = &mut self.tally[c];
                t.free -= u64::from(server.capacity);
                t.cur_ready = t.cur_ready.saturating_sub(u64::from(server.capacity));
                free -= u64::from(server.capacity);
            }
            let sps = u64::from(policy.sessions_per_server.max(1));
            if free.saturating_sub(minimum) < sps {
                self.bookkeeping[c].downscale_requested_at = None;
            }
        }
    }

    /// The plan: per config its destroys and its provision for the minimum, then the rollout's
    /// retires, then the surplus destroys, then the provisions for queued requests;
    /// bookkeeping by config name.
    fn finish(self) -> Plan {
        let mut actions = Vec::with_capacity(
            self.per_config.iter().map(Vec::len).sum::<usize>()
                + self.retire.len()
                + self.surplus.len()
                + self.queue.len()
                + self.warm_actions.len(),
        );
        for mut list in self.per_config {
            actions.append(&mut list);
        }
        actions.extend(self.retire);
        actions.extend(self.surplus);
        actions.extend(self.queue);
        actions.extend(self.warm_actions);
        let bookkeeping: BTreeMap<String, Bookkeeping> = self
            .snapshot
            .configs
            .iter()
            .map(|c| c.policy.name.clone())
            .zip(self.bookkeeping)
            .collect();
        Plan {
            actions,
            bookkeeping,
            notes: self.notes,
        }
    }
}

/// When a failing config may try again.
pub(super) fn retry_at(bk: &Bookkeeping) -> Option<Timestamp> {
    bk.last_failure_at
        .map(|f| add_seconds(f, failure_backoff(bk.consecutive_failures)))
}

pub(super) fn add_seconds(t: Timestamp, seconds: u64) -> Timestamp {
    let secs = i64::try_from(seconds).unwrap_or(i64::MAX);
    t.saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

pub(super) fn per_server(sessions: u64) -> String {
    format!(
        "{sessions} session{} per server",
        if sessions == 1 { "" } else { "s" }
    )
}

pub(super) fn destroy(
    server: &ServerSnapshot,
    config: &str,
    cause: Cause,
    reason: String,
) -> Action {
    Action::Destroy {
        server: server.id,
        config: config.to_owned(),
        cause,
        reason,
    }
}
