//! The queue in a plan: rules 7 and 9 of the [module documentation](super). Requests that wait
//! for a slot take free room first (rule 7); those no room covers make servers (rule 9),
//! together with the minimum so that the two needs round up once.

use super::plan::{Pass, per_server};
use super::rollout::Phase;
use super::{Action, Cause, ServerSnapshot, ServerState};

impl Pass<'_> {
    /// Rule 7: queued requests take the free slots of ready servers first (any config, in config
    /// order; current servers before outdated ones, as [`super::assign`] places them), then
    /// those of servers coming up for configs with aggressive scaling: first the slots earlier
    /// plans gave to the queue (`queue_slots`), then any, oldest server first (the first to be
    /// ready, and a choice that servers created later do not change). Drained servers take
    /// none, nor do outdated servers coming up whose room the rollout holds back.
    /// Without aggressive scaling a request waits for the normal cycle (Kasm's rule), so it does
    /// not hold on to capacity that a config brings up for its minimum.
    pub(super) fn seat_waiting_requests(&mut self) {
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
        self.hand_over_for_queue();
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
                    && !s.state.is_warm()
                    && !s.is_warm_build()
                    && !(outdated && phase[c].holds_back())
                    && !s.is_ready(config.policy.requires_checkin)
                    && !(s.sessions == 0 && s.timeout_from() <= deadline[c]))
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
                if server.woken_at.is_none() && !*outdated {
                    t.building_free = t.building_free.saturating_sub(take);
                }
                if *outdated {
                    t.old_pending -= take.min(t.old_pending);
                }
                self.waiting -= take;
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
    pub(super) fn provision_for_queue(&mut self) {
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
                // Covered by warm starts alone (ours): the spare lies on the last one.
                self.queue_on_minimum_start(c);
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
        let (counts, started) = self.queue_servers();
        // The requests each config's new servers seat: config by config, as many as they hold
        // (after those its warm starts seat).
        let mut left = uncovered;
        let seated: Vec<u64> = counts
            .iter()
            .zip(&started)
            .zip(&self.snapshot.configs)
            .map(|((count, started), config)| {
                left -= (*started).min(left);
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
    fn queue_servers(&mut self) -> (Vec<u64>, Vec<u64>) {
        let snapshot = self.snapshot;
        let configs = &snapshot.configs;
        let sps = |c: usize| u64::from(configs[c].policy.sessions_per_server.max(1));
        let mut counts = vec![0u64; configs.len()];
        let mut started = vec![0u64; configs.len()];
        let mut spare = 0u64;
        for (c, config) in configs.iter().enumerate() {
            let policy = &config.policy;
            let room = u64::from(policy.max_instances.saturating_sub(self.tally[c].live));
            let warm = if policy.warm.is_some() {
                self.startable(c)
            } else {
                0
            };
            if self.waiting == 0
                || !policy.enabled
                || !policy.aggressive_scaling
                || self.backing_off[c]
                || self.phase[c] == Phase::Paused
                || room == 0 && warm == 0
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
            // Start before build (ours).
            let before = self.tier[c].taken;
            started[c] = self.start_for_queue(c);
            let failing = self.bookkeeping[c].consecutive_failures > 0;
            if self.waiting == 0 || failing && self.tier[c].taken > before {
                continue;
            }
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
        (counts, started)
    }
}
