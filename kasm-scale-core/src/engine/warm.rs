//! (ours) The warm tier in a plan: rules 14 to 16 of the [module documentation](super), the
//! starts that cover servers other rules ask for (rules 8, 9 and 11), and the stops of rule 12.
//!
//! A config's tier is its [`ServerState::Stopped`] servers (built, checked in, joined, then
//! stopped), those on their way in ([`ServerState::Stopping`]) and those built for it that are
//! not stopped yet ([`ServerSnapshot::for_warm`]). They all count against `max_instances`; their
//! room is neither free nor coming, and none takes a session. A stopped server is *available*
//! while it is current (not outdated), not drained, of an enabled config that keeps a tier, and
//! younger than the tier's `max_age`; any other stopped server is destroyed
//! ([`Cause::WarmExpired`]), except one drained with [`DrainThen::Keep`], which is kept.
//!
//! [`DrainThen::Keep`]: super::DrainThen::Keep

use super::demand::{DEFAULT_BOOT_SECONDS, DemandSignal, standby_for};
use super::plan::{Pass, add_seconds, destroy, per_server};
use super::rollout::Phase;
use super::standby::{LEAD_RANGE, expected_within_lead};
use super::{Action, Cause, DrainThen, ServerSnapshot, ServerState, StandbyPolicy};

/// The time a start from the warm tier is assumed to take until one was measured, in seconds
/// (ours): a start of a stopped VM and its check-in take a minute or two.
pub const DEFAULT_START_SECONDS: f64 = 120.0;

/// What one config's warm tier holds in a plan.
#[derive(Debug, Default, Clone)]
pub(super) struct Tier<'s> {
    /// Available stopped servers, oldest first (they expire first): those from `next` on are
    /// not started by this plan.
    pub(super) available: Vec<&'s ServerSnapshot>,
    /// The first available server this plan has not started.
    pub(super) next: usize,
    /// Stopped servers this plan's starts took (not the ready builds it handed over: they ask
    /// nothing of the cloud, so no failure backoff holds them).
    pub(super) taken: usize,
    /// Current, undrained servers being stopped into the tier.
    pub(super) stopping: u32,
    /// Current, undrained servers built for the tier and not stopped yet (coming up or ready).
    pub(super) building: u32,
    /// Servers this plan's scale-in stops into the tier.
    pub(super) scaled_in: u32,
    /// Stopped servers to destroy, with why.
    pub(super) expired: Vec<(&'s ServerSnapshot, String)>,
    /// Servers built for the tier that are ready with no session: a start takes a current one
    /// first (it serves at once, with no power-on), rule 15 stops the rest.
    pub(super) ready_builds: Vec<&'s ServerSnapshot>,
    /// Slots this plan's starts for the rollout's replacements gave (not the minimum's part).
    pub(super) rollout_slots: u64,
    /// Where in the config's actions its last start for the minimum is (the queue may take
    /// its spare slots).
    pub(super) last_minimum_start: Option<usize>,
}

impl Tier<'_> {
    /// The tier's count: available stopped servers not started, those stopping, those built for
    /// it, and this plan's scale-in stops.
    pub(super) fn count(&self) -> u32 {
        (self.available.len() - self.next) as u32 + self.stopping + self.building + self.scaled_in
    }

    /// Available stopped servers this plan has not started.
    pub(super) fn left(&self) -> u32 {
        (self.available.len() - self.next) as u32
    }
}

/// What a start covers, for its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The minimum (or the demand policy's target) of rule 8.
    Minimum,
    /// The rollout's replacements (rule 8's replacement part).
    Rollout,
}

impl<'s> Pass<'s> {
    /// Rule 1's part for the tier: a stopped or stopping server of config `c`. Stopping servers
    /// count in the tier (current, undrained ones); stopped ones are available or expire.
    pub(super) fn count_stopped(&mut self, c: usize, server: &'s ServerSnapshot, outdated: bool) {
        let config = &self.snapshot.configs[c];
        let policy = &config.policy;
        let tier = &mut self.tier[c];
        if server.state == ServerState::Stopping {
            tier.stopping += u32::from(!outdated && server.drained.is_none());
            return;
        }
        if server.drained == Some(DrainThen::Keep) {
            return;
        }
        let why = match policy.warm {
            None => Some("its config keeps no warm tier".to_owned()),
            Some(_) if !policy.enabled => Some("its config is disabled".to_owned()),
            Some(_) if outdated => Some(format!(
                "built from an older generation than {}",
                config.generation.map(|g| g.to_string()).unwrap_or_default()
            )),
            Some(_) if server.drained.is_some() => Some("drained".to_owned()),
            Some(w) if add_seconds(server.created_at, w.max_age) <= self.now => Some(format!(
                "built {} s ago, max_age {} s",
                (self.now - server.created_at).get_seconds(),
                w.max_age
            )),
            Some(_) => None,
        };
        match why {
            Some(why) => {
                self.tally[c].outdated_gone += u32::from(outdated);
                tier.expired.push((server, why));
            }
            None => tier.available.push(server),
        }
    }

    /// Sorts each tier's available servers oldest first (the order starts and expiry take).
    pub(super) fn sort_tiers(&mut self) {
        for tier in &mut self.tier {
            tier.available.sort_by_key(|s| (s.created_at, s.id));
        }
    }

    /// Whether config `c` may start warm servers now (as it may build): not with its rollout
    /// paused, nor while it waits out a failure backoff; one server at a time while it has
    /// failures (none once this plan made or started one).
    fn may_start(&self, c: usize) -> bool {
        let policy = &self.snapshot.configs[c].policy;
        policy.warm.is_some()
            && policy.enabled
            && self.startable(c) > 0
            && self.phase[c] != Phase::Paused
            && !self.backing_off[c]
            && !(self.bookkeeping[c].consecutive_failures > 0 && self.tally[c].made > 0)
    }

    /// Whether `server`, built for config `c`'s tier and ready with no session, may serve at
    /// once instead of being stopped: current and younger than the tier's `max_age`.
    fn may_hand_over(&self, c: usize, server: &ServerSnapshot) -> bool {
        let max_age = self.snapshot.configs[c].policy.warm.map(|w| w.max_age);
        !self.is_outdated(server)
            && max_age.is_some_and(|age| add_seconds(server.created_at, age) > self.now)
    }

    /// What config `c`'s starts can still take in this plan: the available stopped servers
    /// and the ready builds that may serve at once.
    pub(super) fn startable(&self, c: usize) -> u32 {
        let ready = self.tier[c]
            .ready_builds
            .iter()
            .filter(|s| self.may_hand_over(c, s))
            .count() as u32;
        self.tier[c].left() + ready
    }

    /// Takes the next server a start of config `c` covers, and whether it is a ready build: a
    /// current server built for the tier and ready first (it serves at once, where stopping it
    /// and starting it again would cost a stop, a start and a check-in), else the oldest
    /// available stopped one.
    fn take_startable(&mut self, c: usize) -> Option<(&'s ServerSnapshot, bool)> {
        self.take(c, false)
    }

    /// [`Self::take_startable`], or only a ready build when `ready_only`.
    fn take(&mut self, c: usize, ready_only: bool) -> Option<(&'s ServerSnapshot, bool)> {
        let ready = self.tier[c]
            .ready_builds
            .iter()
            .position(|s| self.may_hand_over(c, s));
        let tier = &mut self.tier[c];
        let taken = match ready {
            Some(i) => {
                tier.building -= 1;
                (tier.ready_builds.remove(i), true)
            }
            None if ready_only => return None,
            None => {
                let server = *tier.available.get(tier.next)?;
                tier.next += 1;
                tier.taken += 1;
                (server, false)
            }
        };
        Some(taken)
    }

    /// The start of a reason: a stopped server is started, a ready build handed over.
    fn start_words(&self, server: &ServerSnapshot, name: &str) -> String {
        if server.state == ServerState::Stopped {
            format!("start {} of {name} from its warm tier", server.id)
        } else {
            format!(
                "hand {} of {name}, built for its warm tier and ready, over to serve at once",
                server.id
            )
        }
    }

    /// Starts available warm servers of config `c`, oldest first, until they give `slots` free
    /// slots or `servers` servers are started, for `need`; `what` names what they cover in the
    /// reasons. Each start counts as a server this plan makes (not against `max_instances`:
    /// the server exists). Returns the servers started and the slots they give.
    pub(super) fn start_warm(
        &mut self,
        c: usize,
        slots: u64,
        servers: u64,
        need: Need,
        what: &str,
    ) -> (u64, u64) {
        let (mut started, mut given, mut woken) = (0u64, 0u64, 0u64);
        let mut chosen = Vec::new();
        while given < slots && started < servers && self.may_start(c) {
            // While failing, one start at a time (a hand-over asks nothing of the cloud).
            if self.bookkeeping[c].consecutive_failures > 0 && woken > 0 {
                break;
            }
            let Some((server, ready)) = self.take_startable(c) else {
                break;
            };
            let room = u64::from(server.capacity.saturating_sub(server.sessions));
            // A handed-over build is ready room at once: waiting requests take it first, as
            // they take any ready room (rule 7), so the minimum counts what they leave.
            let seated = if ready { self.waiting.min(room) } else { 0 };
            self.waiting -= seated;
            given += room - seated;
            started += 1;
            woken += u64::from(!ready);
            let t = &mut self.tally[c];
            t.free += room - seated;
            t.made += u32::from(!ready);
            if need == Need::Rollout {
                self.tier[c].rollout_slots += room - seated;
            }
            chosen.push((server, seated));
        }
        let name = &self.snapshot.configs[c].policy.name;
        for (server, seated) in chosen {
            let action = Action::Start {
                server: server.id,
                config: name.clone(),
                cause: Cause::WarmTier,
                queue_slots: seated as u32,
                reason: format!(
                    "{}: {started} warm server(s) started for {slots} free slot(s) below {what}",
                    self.start_words(server, name)
                ),
            };
            // Starts come before the config's provisions.
            let list = &mut self.per_config[c];
            let at = list
                .iter()
                .position(|a| matches!(a, Action::Provision { .. }))
                .unwrap_or(list.len());
            list.insert(at, action);
            if need == Need::Minimum {
                self.tier[c].last_minimum_start = Some(at);
            } else if let Some(last) = self.tier[c].last_minimum_start.as_mut()
                && *last >= at
            {
                *last += 1;
            }
        }
        (started, given)
    }

    /// (ours) Rule 8's starts for what servers still being built cannot give in time: a config
    /// with a warm tier counts the room of servers being built towards its minimum, but they
    /// come up within a build, and its minimum covers only the arrivals within a warm start.
    /// While the free slots without them are below the minimum, warm servers are started for
    /// the difference (the builds then add to the free slots when they land); rule 8 builds
    /// what the tier cannot give. Rule 12 counts the same way
    /// ([`Self::downscale_free`]), so that it does not stop a server this rule would start
    /// another for.
    pub(super) fn start_before_builds_land(&mut self, c: usize) {
        if self.snapshot.configs[c].policy.warm.is_none() {
            return;
        }
        let soon = self
            .plain_free(c)
            .saturating_sub(self.tally[c].building_free);
        let minimum = self.minimum[c];
        if soon >= minimum {
            return;
        }
        let what = format!(
            "the {} {minimum}, counting no room of servers still being built",
            if self.why[c].is_some() {
                "demand target"
            } else {
                "minimum"
            }
        );
        self.start_warm(c, minimum - soon, u64::MAX, Need::Minimum, &what);
    }

    /// Rule 7's part for the warm tier (ours): requests that no ready room holds take the ready
    /// servers built for the tier of configs with aggressive scaling (handed over: they serve
    /// now) before they wait for servers still coming up.
    pub(super) fn hand_over_for_queue(&mut self) {
        for c in 0..self.snapshot.configs.len() {
            let policy = &self.snapshot.configs[c].policy;
            if !policy.aggressive_scaling || !policy.is_active_at(self.now) {
                continue;
            }
            while self.waiting > 0 && self.may_start(c) {
                let Some((server, _)) = self.take(c, true) else {
                    break;
                };
                let why = format!(
                    "{} session request(s) wait with no ready slot",
                    self.waiting
                );
                self.seat_on_start(c, server, &why);
            }
        }
    }

    /// Seats waiting requests on `server` of config `c`, which a start takes for them (as many
    /// as it holds; what it leaves is free), and adds the start to the queue's actions, `why`
    /// in its reason. Returns the requests it seats.
    fn seat_on_start(&mut self, c: usize, server: &ServerSnapshot, why: &str) -> u64 {
        let room = u64::from(server.capacity.saturating_sub(server.sessions));
        let take = self.waiting.min(room);
        self.waiting -= take;
        let t = &mut self.tally[c];
        // A start counts as a server made (for the failure backoff); a hand-over asks nothing
        // of the cloud.
        t.made += u32::from(server.state == ServerState::Stopped);
        t.free += room - take;
        let name = &self.snapshot.configs[c].policy.name;
        self.queue.push(Action::Start {
            server: server.id,
            config: name.clone(),
            cause: Cause::WarmTier,
            queue_slots: take as u32,
            reason: format!("{}: {why}; it seats {take}", self.start_words(server, name)),
        });
        take
    }

    /// The free slots of config `c` that rule 12 weighs against the minimum: its current free
    /// slots, less (with a warm tier) those of servers still being built, as
    /// [`Self::start_before_builds_land`] counts them.
    pub(super) fn downscale_free(&self, c: usize) -> u64 {
        let free = self.current_free(c);
        if self.snapshot.configs[c].policy.warm.is_some() {
            free.saturating_sub(self.tally[c].building_free)
        } else {
            free
        }
    }

    /// Rule 9's starts: config `c` (enabled, with aggressive scaling, in a window) starts
    /// available warm servers for the requests still waiting, oldest first, each seating as
    /// many as it holds (`queue_slots`); what the last leaves is free. Returns the requests
    /// they seat.
    pub(super) fn start_for_queue(&mut self, c: usize) -> u64 {
        let mut seated = 0u64;
        let why = format!(
            "{} session request(s) wait with no free slot (aggressive scaling)",
            self.waiting
        );
        while self.waiting > 0 && self.may_start(c) {
            if self.bookkeeping[c].consecutive_failures > 0 && self.tier[c].taken > 0 {
                break;
            }
            let Some((server, _)) = self.take_startable(c) else {
                break;
            };
            seated += self.seat_on_start(c, server, &why);
        }
        seated
    }

    /// Rule 9's share of the minimum's starts: when config `c` provisions nothing for its
    /// minimum but started warm servers for it, waiting requests take the spare slots of its
    /// last start (as they take those of the minimum's last new server).
    pub(super) fn queue_on_minimum_start(&mut self, c: usize) {
        let Some(at) = self.tier[c].last_minimum_start else {
            return;
        };
        let spare = self.tally[c].free.saturating_sub(self.minimum[c]);
        let Some(Action::Start {
            server,
            queue_slots,
            reason,
            ..
        }) = self.per_config[c].get_mut(at)
        else {
            return;
        };
        let capacity = self
            .snapshot
            .servers
            .iter()
            .find(|s| s.id == *server)
            .map_or(0, |s| u64::from(s.capacity.saturating_sub(s.sessions)));
        let take = self
            .waiting
            .min(spare)
            .min(capacity.saturating_sub(u64::from(*queue_slots)));
        if take == 0 {
            return;
        }
        *queue_slots += take as u32;
        *reason += &format!("; it also seats {take} waiting session request(s)");
        self.waiting -= take;
        self.tally[c].free -= take;
    }

    /// Whether rule 12 stops `server` of config `c` into its tier instead of destroying it: the
    /// config keeps a tier (and is enabled), the tier with this plan's stops is below
    /// `max_stopped`, and the server is younger than `max_age` (the caller checks it is current,
    /// undrained, and not spent).
    pub(super) fn stops_into_tier(&self, c: usize, server: &ServerSnapshot) -> bool {
        let policy = &self.snapshot.configs[c].policy;
        policy.warm.is_some_and(|w| {
            policy.enabled
                && self.tier[c].count() < w.max_stopped
                && add_seconds(server.created_at, w.max_age) > self.now
        })
    }

    /// Rule 14 (ours): stopped servers that are not available go ([`Cause::WarmExpired`]):
    /// outdated, older than `max_age`, drained (with `then = destroy`), or of a disabled config
    /// or one that keeps no tier; then, while the tier holds more than `max_stopped`, the oldest
    /// available ones this plan does not start.
    pub(super) fn expire_warm(&mut self) {
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let name = &config.policy.name;
            let max = config.policy.warm.map_or(0, |w| w.max_stopped);
            let tier = &mut self.tier[c];
            for (server, why) in std::mem::take(&mut tier.expired) {
                self.warm_actions.push(destroy(
                    server,
                    name,
                    Cause::WarmExpired,
                    format!("destroy stopped {} of {name}: {why}", server.id),
                ));
            }
            while tier.count() > max && tier.left() > 0 {
                let count = tier.count();
                let server = tier.available.remove(tier.next);
                self.warm_actions.push(destroy(
                    server,
                    name,
                    Cause::WarmExpired,
                    format!(
                        "destroy stopped {} of {name}: its warm tier holds {count} > max_stopped {max} (the oldest go)",
                        server.id
                    ),
                ));
            }
        }
    }

    /// Rule 15 (ours): a server built for the tier, once ready with no session, is stopped
    /// ([`Cause::WarmTier`]); destroyed instead ([`Cause::WarmExpired`]) when it is outdated,
    /// older than `max_age`, its config is disabled or keeps no tier, or the tier already holds
    /// more than `max_stopped`.
    pub(super) fn stop_warm_builds(&mut self) {
        for (c, config) in self.snapshot.configs.iter().enumerate() {
            let policy = &config.policy;
            let name = &policy.name;
            let max = policy.warm.map_or(0, |w| w.max_stopped);
            for server in std::mem::take(&mut self.tier[c].ready_builds) {
                let outdated = self.is_outdated(server);
                let tier = &mut self.tier[c];
                let why = if policy.warm.is_none() {
                    Some("its config keeps no warm tier".to_owned())
                } else if !policy.enabled {
                    Some("its config is disabled".to_owned())
                } else if outdated {
                    Some("built from an older generation".to_owned())
                } else if let Some(w) = policy.warm
                    && add_seconds(server.created_at, w.max_age) <= self.now
                {
                    Some(format!(
                        "built {} s ago, max_age {} s",
                        (self.now - server.created_at).get_seconds(),
                        w.max_age
                    ))
                } else if tier.count() > max {
                    Some(format!(
                        "its warm tier holds {} > max_stopped {max}",
                        tier.count()
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    tier.building -= u32::from(!outdated);
                    self.warm_actions.push(destroy(
                        server,
                        name,
                        Cause::WarmExpired,
                        format!(
                            "destroy {} of {name}, built for the warm tier and ready: {why}",
                            server.id
                        ),
                    ));
                } else {
                    self.warm_actions.push(Action::Stop {
                        server: server.id,
                        config: name.clone(),
                        cause: Cause::WarmTier,
                        reason: format!(
                            "stop {} of {name} into its warm tier: built for it and ready ({} in the tier, max_stopped {max})",
                            server.id,
                            tier.count()
                        ),
                    });
                }
            }
        }
    }

    /// Rule 16 (ours): a tier below its target (`min_stopped`; with the demand policy, see
    /// [`Self::warm_target`]) is refilled ([`Cause::WarmTier`]) within the `max_instances` room
    /// every other action left, also outside schedule windows while the config is enabled (the
    /// tier is what the morning starts), not while it backs off after failures (one at a time
    /// while it has some), nor while its rollout is paused or waits for its canary.
    pub(super) fn refill_warm(&mut self) {
        for c in 0..self.snapshot.configs.len() {
            let policy = &self.snapshot.configs[c].policy;
            let Some(w) = policy.warm else { continue };
            if !policy.enabled {
                continue;
            }
            let (target, why) = self.warm_target(c);
            let count = self.tier[c].count();
            if count >= target {
                continue;
            }
            let name = &policy.name;
            let t = &self.tally[c];
            let failures = self.bookkeeping[c].consecutive_failures;
            let room = policy.max_instances.saturating_sub(t.live);
            let head = format!("{name}: its warm tier holds {count} of {target} ({why})",);
            let wait = if self.phase[c] == Phase::Paused {
                Some("its rollout is paused".to_owned())
            } else if self.phase[c] == Phase::Canary {
                Some("its rollout waits for its canary".to_owned())
            } else if self.backing_off[c] || failures > 0 && t.made > 0 {
                Some(format!(
                    "after {failures} consecutive failure(s) it waits before building more"
                ))
            } else if room == 0 {
                Some(format!(
                    "all {} servers allowed by max_instances exist",
                    policy.max_instances
                ))
            } else {
                None
            };
            if let Some(wait) = wait {
                self.notes.push(format!("{head}, but {wait}"));
                continue;
            }
            let want = target - count;
            let n = want.min(room).min(if failures > 0 { 1 } else { u32::MAX });
            let mut reason = format!(
                "build {n} server(s) for the warm tier of {name}: {count} in the tier of {target} ({why}; max_stopped {}, {})",
                w.max_stopped,
                per_server(u64::from(policy.sessions_per_server.max(1)))
            );
            if n < want && failures > 0 {
                reason += &format!(", one at a time after {failures} consecutive failure(s)");
            } else if n < want {
                reason += &format!(", capped by max_instances {}", policy.max_instances);
            }
            let t = &mut self.tally[c];
            t.live += n;
            t.made += n;
            self.tier[c].building += n;
            self.warm_actions.push(Action::Provision {
                config: name.clone(),
                count: n,
                cause: Cause::WarmTier,
                queue_slots: 0,
                reason,
            });
        }
    }

    /// Config `c`'s tier target and why: `min_stopped`; with `standby_policy = "demand"` and a
    /// demand signal (for the first such config with a tier, in a schedule window), the servers
    /// that hold the requests expected within a cold build beyond those expected within a warm
    /// start (the running buffer covers those), clamped to `min_stopped`..=`max_stopped`.
    pub(super) fn warm_target(&self, c: usize) -> (u32, String) {
        let configs = &self.snapshot.configs;
        let policy = &configs[c].policy;
        let Some(w) = policy.warm else {
            return (0, "no warm tier".into());
        };
        let own = (w.min_stopped, format!("min_stopped {}", w.min_stopped));
        let demand = |p: &super::ScalingPolicy| {
            p.warm.is_some()
                && p.enabled
                && p.standby_policy == StandbyPolicy::Demand
                && p.is_active_at(self.now)
        };
        let Some(signal) = self.snapshot.demand.as_ref() else {
            return own;
        };
        if !demand(policy) || configs.iter().position(|x| demand(&x.policy)) != Some(c) {
            return own;
        }
        let (build, start) = leads(signal, c);
        let level = policy.target_immediate_service;
        let cold = standby_for(expected_within_lead(signal, build), level);
        let warm = standby_for(expected_within_lead(signal, start), level);
        let sps = u64::from(policy.sessions_per_server.max(1));
        let servers = cold.saturating_sub(warm).div_ceil(sps);
        let target = servers.clamp(u64::from(w.min_stopped), u64::from(w.max_stopped)) as u32;
        (
            target,
            format!(
                "demand: {} free slot(s) cover a cold build ({build:.0} s) and {} a warm start ({start:.0} s): the tier holds the {} slot(s) between, {servers} server(s), within min_stopped {} and max_stopped {}",
                cold,
                warm,
                cold.saturating_sub(warm),
                w.min_stopped,
                w.max_stopped
            ),
        )
    }
}

/// Config `c`'s cold-build and warm-start leads in seconds from `signal` (measured p90s, else
/// the defaults), within the bounds the demand policy reads boot times in.
pub(super) fn leads(signal: &DemandSignal, c: usize) -> (f64, f64) {
    let build = signal
        .boot_p90
        .get(c)
        .copied()
        .flatten()
        .unwrap_or(DEFAULT_BOOT_SECONDS);
    let start = signal
        .start_p90
        .get(c)
        .copied()
        .flatten()
        .unwrap_or(DEFAULT_START_SECONDS);
    (
        build.clamp(LEAD_RANGE.0, LEAD_RANGE.1),
        start.clamp(LEAD_RANGE.0, LEAD_RANGE.1),
    )
}
