//! The planning pass: Kasm's scaling rules over one pool, one function per rule.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::rollout::Phase;
use super::standby::{Share, demand_minimums};
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
    pass.retire_outdated();
    pass.downscale_surplus();
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
    /// Running, ready, sessionless current servers that are not spent: downscale candidates.
    pub(super) idle: u32,
    /// Room on ready, current servers that are not spent.
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
    why: Vec<Option<String>>,
    /// The creation time at or before which an unready server has timed out.
    deadline: Vec<Timestamp>,
    /// Waiting out a failure backoff (or a probe server): provisions nothing.
    pub(super) backing_off: Vec<bool>,
    /// Where each config's rollout stands in this plan.
    pub(super) phase: Vec<Phase>,
    /// Session requests that no free or pending slot covers yet.
    waiting: u64,
    /// Destroys of spent, timed-out and drained servers, then the provisions for the minimum
    /// and the rollout.
    pub(super) per_config: Vec<Vec<Action>>,
    /// Destroys of idle outdated servers (the rollout) and of idle surplus servers.
    pub(super) surplus: Vec<Action>,
    /// Provisions for queued requests.
    queue: Vec<Action>,
    pub(super) notes: Vec<String>,
    /// Where in `notes` the note of a config that could not keep its minimum is.
    short_note: Vec<Option<usize>>,
    /// Where in `notes` the note of a config whose rollout waits is.
    pub(super) rollout_note: Vec<Option<usize>>,
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
            surplus: Vec::new(),
            queue: Vec::new(),
            notes: Vec::new(),
            short_note: vec![None; n],
            rollout_note: vec![None; n],
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
        for server in &self.snapshot.servers {
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
            if let Some(then) = server.drained {
                if then == DrainThen::Destroy && server.sessions == 0 {
                    found.drained.push(server);
                }
                continue;
            }
            let ready = server.state == ServerState::Running
                && (!requires_checkin || server.checked_in_at.is_some());
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
            } else if server.sessions == 0 && server.created_at <= self.deadline[c] {
                found.timed_out.push(server);
            } else {
                t.free += room;
                t.pending_free += room;
                t.pending += 1;
                if outdated {
                    t.old_pending += room;
                } else {
                    t.cur_pending += 1;
                    t.cur_live += 1;
                }
            }
        }
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
                    "destroy {} of {}: not ready {} s after creation (checkin_timeout {} s)",
                    server.id,
                    policy.name,
                    (self.now - server.created_at).get_seconds(),
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

    /// Rule 7: queued requests take the free slots of ready servers first (any config, in config
    /// order; current servers before outdated ones, as [`super::assign`] places them), then
    /// those of servers coming up for configs with aggressive scaling: first the slots earlier
    /// plans gave to the queue (`queue_slots`), then any, oldest server first (the first to be
    /// ready, and a choice that servers created later do not change). Drained servers take
    /// none, nor do outdated servers coming up whose room the rollout holds back.
    /// Without aggressive scaling a request waits for the normal cycle (Kasm's rule), so it does
    /// not hold on to capacity that a config brings up for its minimum.
    fn seat_waiting_requests(&mut self) {
        for (t, phase) in self.tally.iter_mut().zip(&self.phase) {
            let old = if phase.holds_back() { 0 } else { t.old_ready };
            let take = self.waiting.min(t.free - t.pending_free - old);
            t.free -= take;
            self.waiting -= take;
        }
        for (t, phase) in self.tally.iter_mut().zip(&self.phase) {
            let take = self.waiting.min(t.old_ready);
            t.old_ready -= take;
            if !phase.holds_back() {
                t.free -= take;
            }
            self.waiting -= take;
        }
        if self.waiting == 0 {
            return;
        }
        let (configs, deadline, phase) = (&self.snapshot.configs, &self.deadline, &self.phase);
        let tally = &mut self.tally;
        let mut pending: Vec<(&ServerSnapshot, bool)> = self
            .snapshot
            .servers
            .iter()
            .filter_map(|s| {
                let c = s.config as usize;
                let config = configs.get(c)?;
                let outdated = s.outdated && config.generation.is_some();
                (config.policy.enabled
                    && config.policy.aggressive_scaling
                    && tally[c].pending_free > 0
                    && s.state != ServerState::Destroying
                    && s.drained.is_none()
                    && !(outdated && phase[c].holds_back())
                    && !s.is_ready(config.policy.requires_checkin)
                    && !(s.sessions == 0 && s.created_at <= deadline[c]))
                    .then_some((s, outdated))
            })
            .collect();
        // The slots plans gave to the queue first, then any room, oldest server first (the
        // first to be ready): the slots the plan that made a server counted on.
        pending.sort_unstable_by_key(|(s, _)| (s.created_at, s.id));
        let mut room: Vec<u64> = pending
            .iter()
            .map(|(s, _)| u64::from(s.capacity.saturating_sub(s.sessions)))
            .collect();
        for reserved in [true, false] {
            for ((server, outdated), room) in pending.iter().zip(room.iter_mut()) {
                if self.waiting == 0 {
                    return;
                }
                let t = &mut tally[server.config as usize];
                let mut take = self.waiting.min(*room).min(t.pending_free);
                if reserved {
                    take = take.min(u64::from(
                        server.queue_slots.saturating_sub(server.sessions),
                    ));
                }
                *room -= take;
                t.free -= take;
                t.pending_free -= take;
                if *outdated {
                    t.old_pending -= take.min(t.old_pending);
                }
                self.waiting -= take;
            }
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
    fn keep_plain(&mut self, c: usize, free: u64, free_before: u64) {
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
                let mut room = u64::from(policy.max_instances.saturating_sub(t.live));
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

    /// Rule 13: a surplus of at least one server's sessions starts the downscale clock; once it
    /// has lasted `downscale_backoff`, idle servers go, oldest first, while the rest covers the
    /// minimum. Nothing goes while session requests wait in the pool; a server with a session
    /// never goes. Only current servers count and go: outdated ones go by the rollout
    /// ([`Self::retire_outdated`]), drained ones by their drain.
    fn downscale_surplus(&mut self) {
        let mut chosen = vec![false; self.snapshot.configs.len()];
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let policy = &config.policy;
            let free = self.current_free(c);
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
        let configs = &self.snapshot.configs;
        let mut candidates: Vec<Vec<&ServerSnapshot>> = vec![Vec::new(); chosen.len()];
        for server in &self.snapshot.servers {
            let c = server.config as usize;
            if chosen.get(c).copied().unwrap_or(false)
                && server.sessions == 0
                && !server.is_spent()
                && server.drained.is_none()
                && !(server.outdated && configs[c].generation.is_some())
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
            let mut free = self.current_free(c);
            let bk = &mut self.bookkeeping[c];
            let since = bk.downscale_requested_at.unwrap_or(self.now);
            let t = &mut self.tally[c];
            for server in idle {
                if free
                    .checked_sub(u64::from(server.capacity))
                    .is_none_or(|rest| rest < minimum)
                {
                    break;
                }
                self.surplus.push(destroy(server, &policy.name, Cause::Surplus, format!(
                    "destroy idle {} of {}: {free} free > minimum {minimum} since {since} (downscale_backoff {} s)",
                    server.id, policy.name, policy.downscale_backoff
                )));
                t.free -= u64::from(server.capacity);
                free -= u64::from(server.capacity);
            }
            let sps = u64::from(policy.sessions_per_server.max(1));
            if free.saturating_sub(minimum) < sps {
                bk.downscale_requested_at = None;
            }
        }
    }

    /// Rule 9: the minimum and the queue are one need. Requests that no free or pending slot
    /// covers first take the slots beyond the minimum on the servers just provisioned for it
    /// (whole servers round up), config by config; the rest make the first configs with
    /// aggressive scaling and room provision for them at once (one server while failing).
    /// Each new server carries the slots the queue takes (`queue_slots`: the next plan seats the
    /// requests there first); what the queue leaves on its last server counts as free. Outside
    /// every schedule window a config provisions nothing: the requests wait.
    fn provision_for_queue(&mut self) {
        let n = self.snapshot.configs.len();
        let mut shared = vec![0u64; n];
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let policy = &config.policy;
            if self.waiting == 0 || !policy.enabled || !policy.aggressive_scaling {
                continue;
            }
            let Some(at) = self.per_config[c].iter().position(|a| {
                matches!(
                    a,
                    Action::Provision {
                        cause: Cause::BelowMinimum,
                        ..
                    }
                )
            }) else {
                continue;
            };
            // The spare lies on the last new server: fewer slots than one server holds.
            let take = self
                .waiting
                .min(self.tally[c].free.saturating_sub(self.minimum[c]));
            if take == 0 {
                continue;
            }
            self.waiting -= take;
            self.tally[c].free -= take;
            shared[c] = take;
            if let Action::Provision { count, .. } = &mut self.per_config[c][at] {
                *count -= 1;
                if *count == 0 {
                    self.per_config[c].remove(at);
                }
            }
        }
        let uncovered = self.waiting;
        let counts = self.queue_servers();
        // The requests each config's new servers seat: config by config, as many as they hold.
        let mut left = uncovered;
        let seated: Vec<u64> = counts
            .iter()
            .zip(&self.snapshot.configs)
            .map(|(count, config)| {
                let take = left.min(count * u64::from(config.policy.sessions_per_server.max(1)));
                left -= take;
                take
            })
            .collect();
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let policy = &config.policy;
            let sps = policy.sessions_per_server.max(1);
            // What the queue leaves on its last server is free, as the next plan finds it.
            self.tally[c].free += (counts[c] * u64::from(sps)).saturating_sub(seated[c]);
            if shared[c] > 0 {
                self.queue.push(Action::Provision {
                    config: policy.name.clone(),
                    count: 1,
                    cause: Cause::QueuedRequests,
                    queue_slots: shared[c] as u32,
                    reason: format!(
                        "provision 1 on {}: a server for minimum {} that also seats {} waiting session request(s) (aggressive scaling, {})",
                        policy.name,
                        self.minimum[c],
                        shared[c],
                        per_server(u64::from(sps))
                    ),
                });
            }
            if counts[c] > 0 {
                self.queue.push(Action::Provision {
                    config: policy.name.clone(),
                    count: counts[c] as u32,
                    cause: Cause::QueuedRequests,
                    queue_slots: seated[c] as u32,
                    reason: format!(
                        "provision {} on {}: {uncovered} session request(s) wait with no free slot (aggressive scaling, {})",
                        counts[c],
                        policy.name,
                        per_server(u64::from(sps))
                    ),
                });
            }
        }
        if self.waiting > 0 {
            self.notes.push(format!(
                "{} session request(s) wait: no config with aggressive scaling has room",
                self.waiting
            ));
        }
    }

    /// Servers each config provisions for the requests still waiting: the first configs with
    /// aggressive scaling and room, in order (one server while failing). Whole servers round up
    /// in every config, so the spare slots of a later config may hold an earlier config's last
    /// requests; such a server is one too many and is not made.
    fn queue_servers(&mut self) -> Vec<u64> {
        let configs = &self.snapshot.configs;
        let sps = |c: usize| u64::from(configs[c].policy.sessions_per_server.max(1));
        let mut counts = vec![0u64; configs.len()];
        let mut spare = 0u64;
        for (c, config) in configs.iter().enumerate() {
            let policy = &config.policy;
            let room = u64::from(policy.max_instances.saturating_sub(self.tally[c].live));
            if self.waiting == 0
                || !policy.enabled
                || !policy.aggressive_scaling
                || self.backing_off[c]
                || self.phase[c] == Phase::Paused
                || room == 0
            {
                continue;
            }
            if !policy.is_active_at(self.now) {
                self.notes.push(format!(
                    "{}: {} session request(s) wait: outside every schedule window",
                    policy.name, self.waiting
                ));
                continue;
            }
            let failing = self.bookkeeping[c].consecutive_failures > 0;
            counts[c] =
                self.waiting
                    .div_ceil(sps(c))
                    .min(room)
                    .min(if failing { 1 } else { u64::MAX });
            let slots = counts[c] * sps(c);
            spare += slots.saturating_sub(self.waiting);
            self.waiting = self.waiting.saturating_sub(slots);
        }
        for c in (0..configs.len()).rev() {
            while counts[c] > 0 && spare >= sps(c) {
                counts[c] -= 1;
                spare -= sps(c);
            }
            self.tally[c].live += counts[c] as u32;
            self.tally[c].made += counts[c] as u32;
        }
        counts
    }

    /// The plan: per config its destroys and its provision for the minimum, then the surplus
    /// destroys, then the provisions for queued requests; bookkeeping by config name.
    fn finish(self) -> Plan {
        let mut actions = Vec::with_capacity(
            self.per_config.iter().map(Vec::len).sum::<usize>()
                + self.surplus.len()
                + self.queue.len(),
        );
        for mut list in self.per_config {
            actions.append(&mut list);
        }
        actions.extend(self.surplus);
        actions.extend(self.queue);
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
