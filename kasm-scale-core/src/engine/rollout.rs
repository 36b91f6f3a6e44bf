//! (ours) The rollout in a plan: rules 6, 10 and 13 of the [module documentation](super), and
//! the replacement part of the minimum (rule 8).
//!
//! A config's rollout is under way while it has outdated servers ([`ServerSnapshot::outdated`]
//! of a config whose [`ConfigSnapshot::generation`] is known; drained ones too). Its
//! [`RolloutState`] lives in the config's bookkeeping. The scaler and the rollout are one plan:
//! the rollout only changes which room counts as free and which servers may go, so the two
//! cannot fight.
//!
//! [`ServerSnapshot::outdated`]: super::ServerSnapshot::outdated
//! [`ConfigSnapshot::generation`]: super::ConfigSnapshot::generation

use super::plan::{Pass, destroy, per_server, retry_at};
use super::warm::Need;
use super::{Action, Cause, RolloutPause, RolloutState, ServerSnapshot, ServerState};

/// Where a config's rollout stands in one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// No rollout under way (no outdated server).
    #[default]
    None,
    /// Waiting for the canary: outdated room counts as free, nothing is replaced yet.
    Canary,
    /// Paused after a failure: outdated room counts as free and nothing is built.
    Paused,
    /// Replacing: outdated room is not free, replacements are made, idle outdated servers go.
    Replacing,
}

impl Phase {
    /// Whether the rollout holds outdated servers' room back from the free slots.
    pub(super) fn holds_back(self) -> bool {
        self == Phase::Replacing
    }
}

impl Pass<'_> {
    /// Rule 6 (ours): each config's rollout. Outdated servers (that this plan does not
    /// destroy already) of a config whose rollout is of another generation (or that has none)
    /// start one: [`RolloutState`] with `started_at` and
    /// `failures_since` now. The canary is ready (`canary_ready_at`) the first plan that finds
    /// `rollout.canary` ready current servers. With `pause_on_failure`, a current server that
    /// timed out in this plan, or a failure the controller counted after `failures_since` (a
    /// create refused), pauses it with the reason; a plan in which only outdated servers timed
    /// out moves `failures_since` to now (the old generation's failures do not pause the new
    /// one). A rollout of the current generation whose canary was never ready is watched so
    /// even once no outdated server is left (they may go by other rules before the canary is
    /// up): a failure of the new generation still pauses it (and clears `finished_at`). Then
    /// the phase: paused; none when nothing is left to replace (no canary is built for it);
    /// replacing once the canary is ready, or at once when the config may not build now
    /// (disabled, or outside every schedule window: no canary to wait for); else waiting for
    /// the canary. While replacing, outdated room leaves the free slots.
    pub(super) fn track_rollout(&mut self) {
        let now = self.now;
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let Some(generation) = config.generation else {
                continue;
            };
            let (policy, t) = (&config.policy, &mut self.tally[c]);
            let bk = &mut self.bookkeeping[c];
            // Outdated servers that rules 2 to 4 destroy in this plan start nothing; a paused
            // rollout stays paused (nothing of its generation is built) with none left, and
            // one whose canary was never ready still watches the new generation's servers
            // (its canary failing pauses it, however the old servers went).
            let (paused, unproven) = bk
                .rollout
                .as_ref()
                .filter(|r| r.generation == generation)
                .map_or((false, false), |r| {
                    (r.paused.is_some(), r.canary_ready_at.is_none())
                });
            let left = t.outdated > t.outdated_gone;
            if !left
                && bk
                    .rollout
                    .as_ref()
                    .is_some_and(|r| r.generation != generation)
            {
                // Superseded (rolled back, or changed again) with nothing left to replace: no
                // rollout is under way, paused or not.
                bk.rollout = None;
                continue;
            }
            if !left && !paused && !unproven {
                continue;
            }
            if bk
                .rollout
                .as_ref()
                .is_none_or(|r| r.generation != generation)
            {
                bk.rollout = Some(RolloutState {
                    generation,
                    started_at: now,
                    failures_since: now,
                    canary_ready_at: None,
                    paused: None,
                    finished_at: None,
                });
            }
            let Some(r) = bk.rollout.as_mut() else {
                continue;
            };
            if r.canary_ready_at.is_none() && t.cur_ready_servers >= policy.rollout.canary {
                r.canary_ready_at = Some(now);
            }
            if r.paused.is_none() {
                let before = &config.bookkeeping;
                let failure = if let Some(id) = t.cur_timeout {
                    Some(format!(
                        "server {id} of generation {generation} did not check in within {} s",
                        policy.checkin_timeout
                    ))
                } else {
                    before
                        .last_failure_at
                        .filter(|at| *at > r.failures_since)
                        .map(|at| {
                            format!(
                                "a create of generation {generation} failed at {at}, after the rollout began or was resumed ({} consecutive failure(s))",
                                before.consecutive_failures
                            )
                        })
                };
                match failure {
                    Some(reason) if policy.rollout.pause_on_failure => {
                        r.paused = Some(RolloutPause { at: now, reason });
                        r.finished_at = None;
                    }
                    _ if t.timeouts > 0 && t.cur_timeout.is_none() => r.failures_since = now,
                    _ => {}
                }
            }
            let may_build = policy.enabled && policy.is_active_at(now);
            self.phase[c] = if let Some(pause) = &r.paused {
                self.notes.push(format!(
                    "{}: rollout to generation {generation} paused since {}: {}; nothing more of the new generation is built until the rollout is resumed, a fixed configuration is loaded or the old one is restored",
                    policy.name, pause.at, pause.reason
                ));
                Phase::Paused
            } else if !left {
                // Nothing left to replace: no canary is built for it.
                Phase::None
            } else if r.canary_ready_at.is_some() || !may_build {
                Phase::Replacing
            } else {
                Phase::Canary
            };
            if self.phase[c].holds_back() {
                t.free -= t.old_ready + t.old_pending;
                t.pending_free -= t.old_pending;
            }
        }
    }

    /// Free slots of config `c` on current servers only (ready and coming up, this plan's
    /// own included), as the downscale counts them.
    pub(super) fn current_free(&self, c: usize) -> u64 {
        let t = &self.tally[c];
        if self.phase[c].holds_back() {
            t.free
        } else {
            t.free - t.old_ready - t.old_pending
        }
    }

    /// Room on config `c`'s outdated servers that the rollout holds back from its free slots
    /// in this plan (0 unless replacing).
    pub(super) fn held_back(&self, c: usize) -> u64 {
        let t = &self.tally[c];
        if self.phase[c].holds_back() {
            t.old_ready + t.old_pending
        } else {
            0
        }
    }

    /// Config `c`'s free slots as they would be with no rollout: outdated room counted, the
    /// rollout's own servers of this plan not. What rule 8's part for the minimum and the
    /// demand policy's shares count.
    pub(super) fn plain_free(&self, c: usize) -> u64 {
        let t = &self.tally[c];
        let sps = u64::from(self.snapshot.configs[c].policy.sessions_per_server.max(1));
        (t.free + self.held_back(c))
            .saturating_sub(u64::from(t.rollout_made) * sps + self.tier[c].rollout_slots)
    }

    /// Rule 8's replacement part (ours): while replacing, what the minimum still lacks once
    /// the minimum's own part is made (outdated room is not free) is made for the rollout
    /// ([`Cause::Rollout`]), so that current servers coming up stay within
    /// `max_surge.servers(n)`, n being the config's servers other than current ones coming up
    /// (this plan's own do not raise it); within `max_instances` (with no room it waits:
    /// `retire_outdated` frees room from the surplus only) and the failure backoff.
    pub(super) fn keep_rollout(&mut self, c: usize) {
        let snapshot = self.snapshot;
        let (config, minimum) = (&snapshot.configs[c], self.minimum[c]);
        let t = &mut self.tally[c];
        if !self.phase[c].holds_back() || t.free >= minimum {
            return;
        }
        let policy = &config.policy;
        let sps = u64::from(policy.sessions_per_server.max(1));
        let room = u64::from(policy.max_instances.saturating_sub(t.live));
        let base = t.live.saturating_sub(t.cur_pending + t.made);
        let surge = policy.rollout.max_surge.servers(base);
        let coming = t.cur_pending + t.made;
        let surge_room = u64::from(surge.saturating_sub(coming));
        let generation = config.generation.map(|g| g.to_string()).unwrap_or_default();
        // Start before build (ours): available warm servers (current ones) replace first,
        // within the surge.
        let what = format!("the minimum {minimum} during the rollout to generation {generation}");
        let need = minimum - t.free;
        let (started, _) = self.start_warm(c, need, surge_room, Need::Rollout, &what);
        let t = &mut self.tally[c];
        if t.free >= minimum {
            return;
        }
        let want = (minimum - t.free).div_ceil(sps);
        let surge_room = surge_room - started;
        let failures = self.bookkeeping[c].consecutive_failures;
        let count = if self.backing_off[c] || failures > 0 && t.made > 0 {
            0
        } else {
            want.min(room)
                .min(surge_room)
                .min(if failures > 0 { 1 } else { u64::MAX })
        };
        let left = t.outdated - t.outdated_gone;
        let head = format!(
            "{}: {} current free < minimum {minimum} with {left} outdated server(s) left",
            policy.name, t.free
        );
        if count == 0 && surge_room > 0 {
            let why = self.waits_because(c, room);
            let note = format!("{head}: the rollout to generation {generation} waits: {why}");
            self.rollout_note(c, note);
            return;
        }
        if count == 0 {
            return;
        }
        let deficit = minimum - t.free;
        t.live += count as u32;
        t.made += count as u32;
        t.rollout_made += count as u32;
        t.free += count * sps;
        self.add_rollout_provision(c, count as u32, |total| {
            format!(
                "provision {total} on {head}: rollout to generation {generation} (deficit {deficit}, {}, at most {surge} coming up: max_surge {})",
                per_server(sps),
                policy.rollout.max_surge
            )
        });
    }

    /// Why config `c` builds nothing for its rollout although it needs to, with `room` servers
    /// left under `max_instances`.
    fn waits_because(&self, c: usize, room: u64) -> String {
        let (policy, bk) = (&self.snapshot.configs[c].policy, &self.bookkeeping[c]);
        let failures = bk.consecutive_failures;
        if room == 0 {
            format!(
                "all {} servers allowed by max_instances exist; only idle outdated servers the minimum does not need go to make room",
                policy.max_instances
            )
        } else if self.backing_off[c] && self.tally[c].pending == 0 {
            format!(
                "after {failures} consecutive failure(s) it waits until {}",
                retry_at(bk).unwrap_or(self.now)
            )
        } else {
            format!("after {failures} consecutive failure(s) one new server must come up first")
        }
    }

    /// Rule 10 (ours): while waiting for the canary, a config builds at most enough servers
    /// of the new generation ([`Cause::Rollout`]) to have `rollout.canary` current servers
    /// (ready or coming up, this plan's own for the minimum and the queue included), within
    /// `max_instances` and the failure backoff.
    pub(super) fn build_canary(&mut self) {
        let snapshot = self.snapshot;
        for (c, config) in snapshot.configs.iter().enumerate() {
            if self.phase[c] != Phase::Canary {
                continue;
            }
            let policy = &config.policy;
            let t = &mut self.tally[c];
            let have = t.cur_live + t.made;
            let canary = policy.rollout.canary;
            if have >= canary {
                continue;
            }
            let want = u64::from(canary - have);
            let room = u64::from(policy.max_instances.saturating_sub(t.live));
            let failures = self.bookkeeping[c].consecutive_failures;
            let count = if self.backing_off[c] || failures > 0 && t.made > 0 {
                0
            } else {
                want.min(room).min(if failures > 0 { 1 } else { u64::MAX })
            };
            let generation = config.generation.map(|g| g.to_string()).unwrap_or_default();
            if count == 0 {
                let why = self.waits_because(c, room);
                let note = format!(
                    "{}: the canary of generation {generation} waits: {why}",
                    policy.name
                );
                self.rollout_note(c, note);
                continue;
            }
            let sps = u64::from(policy.sessions_per_server.max(1));
            let left = t.outdated - t.outdated_gone;
            t.live += count as u32;
            t.made += count as u32;
            t.rollout_made += count as u32;
            t.free += count * sps;
            self.add_rollout_provision(c, count as u32, |total| {
                format!(
                    "provision {total} on {}: canary of generation {generation}: {have} of {canary} current server(s); the {left} outdated server(s) are replaced once the canary is ready",
                    policy.name
                )
            });
        }
    }

    /// Rule 13 (ours): while replacing, idle outdated servers (ready, no session, not spent,
    /// not drained) go ([`Cause::Rollout`], oldest first) when no session request waits in the
    /// pool and the room of the config's ready current servers covers its minimum (outdated
    /// room is not free then, so none of them takes free slots with it), counted once this
    /// plan's scale-in (rule 12) took its share: a plan that retires never leaves the ready free
    /// slots below the minimum, and planned again once its scale-in is done it retires the same. An outdated server
    /// with a session never goes; it goes in the first plan that finds it empty. Then a
    /// rollout with no outdated server left is finished (`finished_at`, once); one that finds
    /// outdated servers again is not.
    /// Whether config `c` may make no more servers: all `max_instances` exist (this plan's
    /// included).
    fn blocked(&self, c: usize) -> bool {
        self.tally[c].live >= self.snapshot.configs[c].policy.max_instances
    }

    pub(super) fn retire_outdated(&mut self) {
        let configs = &self.snapshot.configs;
        let waiting = self.snapshot.pending_requests;
        let chosen: Vec<bool> = (0..configs.len())
            .map(|c| {
                let t = &self.tally[c];
                self.phase[c].holds_back()
                    && t.old_idle > 0
                    && waiting == 0
                    && (t.cur_ready >= self.minimum[c]
                        || self.blocked(c) && t.cur_ready + t.old_ready > self.minimum[c])
            })
            .collect();
        for (c, config) in configs.iter().enumerate() {
            let t = &self.tally[c];
            if self.phase[c].holds_back() && t.old_idle > 0 && !chosen[c] {
                let why = if waiting > 0 {
                    format!("{waiting} session request(s) wait")
                } else {
                    format!(
                        "{} ready current free < minimum {}",
                        t.cur_ready, self.minimum[c]
                    )
                };
                self.notes.push(format!(
                    "{}: {} idle outdated server(s) stay: {why}",
                    config.policy.name, t.old_idle
                ));
            }
        }
        if chosen.contains(&true) {
            let mut idle: Vec<&ServerSnapshot> = self
                .snapshot
                .servers
                .iter()
                .filter(|s| {
                    let c = s.config as usize;
                    chosen.get(c).copied().unwrap_or(false)
                        && s.outdated
                        && s.drained.is_none()
                        && !s.is_warm_build()
                        && s.state != ServerState::Destroying
                        && s.sessions == 0
                        && !s.is_spent()
                        && s.is_ready(configs[c].policy.requires_checkin)
                })
                .collect();
            idle.sort_by_key(|s| (s.config, s.created_at, s.id));
            for server in idle {
                let c = server.config as usize;
                let (config, minimum) = (&configs[c], self.minimum[c]);
                let t = &mut self.tally[c];
                // Replacements come first. Only when max_instances leaves no room for them
                // does an idle outdated server go before the current ones cover the minimum,
                // and then only while the ready room left, current and outdated, still covers
                // it: its place takes a replacement at the next plan, and the rollout moves on
                // in batches of that room (a pool whose minimum needs most of its servers).
                let cap = u64::from(server.capacity);
                if t.cur_ready < minimum
                    && (t.cur_ready + t.old_ready).saturating_sub(cap) < minimum
                {
                    continue;
                }
                t.old_ready -= cap.min(t.old_ready);
                t.outdated_gone += 1;
                self.retire.push(destroy(
                    server,
                    &config.policy.name,
                    Cause::Rollout,
                    format!(
                        "destroy idle outdated {} of {}: rollout to generation {}; {} ready free ({} on current servers) still cover minimum {minimum}",
                        server.id,
                        config.policy.name,
                        config.generation.map(|g| g.to_string()).unwrap_or_default(),
                        t.cur_ready + t.old_ready,
                        t.cur_ready
                    ),
                ));
            }
        }
        for (c, config) in configs.iter().enumerate() {
            let (t, bk) = (&self.tally[c], &mut self.bookkeeping[c]);
            if let (Some(generation), Some(r)) = (config.generation, bk.rollout.as_mut())
                && r.generation == generation
            {
                if t.outdated > t.outdated_gone {
                    r.finished_at = None;
                } else if r.finished_at.is_none() && r.paused.is_none() {
                    r.finished_at = Some(self.now);
                }
            }
        }
    }

    /// Adds `count` servers to config `c`'s one provision for the rollout, with the reason
    /// `reason(total)` gives.
    fn add_rollout_provision(&mut self, c: usize, count: u32, reason: impl FnOnce(u32) -> String) {
        let name = &self.snapshot.configs[c].policy.name;
        let made = self.per_config[c].iter_mut().find_map(|a| match a {
            Action::Provision {
                cause: Cause::Rollout,
                count,
                reason,
                ..
            } => Some((count, reason)),
            _ => None,
        });
        match made {
            Some((n, r)) => {
                *n += count;
                *r = reason(*n);
            }
            None => self.per_config[c].push(Action::Provision {
                config: name.clone(),
                count,
                cause: Cause::Rollout,
                queue_slots: 0,
                reason: reason(count),
            }),
        }
    }

    /// Notes why config `c`'s rollout waits, replacing the note an earlier call left.
    fn rollout_note(&mut self, c: usize, note: String) {
        match self.rollout_note[c] {
            Some(at) => self.notes[at] = note,
            None => {
                self.rollout_note[c] = Some(self.notes.len());
                self.notes.push(note);
            }
        }
    }
}
