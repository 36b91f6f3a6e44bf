//! What configuration changes did in a simulation: the servers each one outdated and when the
//! last of them went, the servers built per generation, the sessions the controller ended, and
//! the free slots per pool at every whole minute (to compare with the run without changes).

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;

use super::change::{ChangeMetrics, GenerationBuilt};
use crate::config::{Config, Generation};
use crate::controller::{Autoscaler, Reloaded, ServerInfo, SessionId};
use crate::engine::{ScalingPolicy, ServerId, ServerState};

/// One applied change while the run goes on.
struct Open {
    label: String,
    at: Timestamp,
    at_s: f64,
    reload: Reloaded,
    /// The servers it outdated that are still there.
    outdated: HashSet<ServerId>,
    outdated_at_change: u64,
    gone: Option<(Timestamp, f64)>,
    built: BTreeMap<(String, Option<Generation>), u64>,
    built_outdated: u64,
    ended_by_us: u64,
    refused: u64,
}

/// The tallies of every change of a run, and the seated sessions by server (to tell the
/// sessions the controller ended: those whose server went under them).
#[derive(Default)]
pub(crate) struct Tracker {
    open: Vec<Open>,
    current: HashMap<String, Generation>,
    on_server: HashMap<ServerId, HashSet<SessionId>>,
    server_of: HashMap<SessionId, ServerId>,
}

impl Tracker {
    /// Each config's generation now, as the controller has it.
    pub(crate) fn generations(&mut self, scaler: &Autoscaler) {
        self.current = scaler
            .generations()
            .into_iter()
            .filter_map(|g| Some((g.config, g.generation?)))
            .collect();
    }

    /// A change applied at `at` (`at_s` seconds from the start): the servers it outdated are
    /// those of a config whose generation is not theirs, or of a config that is gone.
    pub(crate) fn applied(
        &mut self,
        scaler: &Autoscaler,
        label: &str,
        reload: Reloaded,
        at: Timestamp,
        at_s: f64,
    ) {
        self.generations(scaler);
        let outdated: HashSet<ServerId> = scaler
            .servers()
            .iter()
            .filter(|s| self.outdated(s))
            .map(|s| s.id)
            .collect();
        tracing::info!(
            change = label,
            new_generations = ?reload.new_generations,
            outdated = outdated.len(),
            "simulation: configuration changed"
        );
        self.open.push(Open {
            label: label.to_owned(),
            at,
            at_s,
            reload,
            outdated_at_change: outdated.len() as u64,
            gone: outdated.is_empty().then_some((at, at_s)),
            outdated,
            built: BTreeMap::new(),
            built_outdated: 0,
            ended_by_us: 0,
            refused: 0,
        });
    }

    fn outdated(&self, s: &ServerInfo) -> bool {
        match (self.current.get(&s.config), s.generation) {
            (None, _) => true,
            (Some(now), Some(g)) => *now != g,
            (Some(_), None) => false,
        }
    }

    /// A session got a server.
    pub(crate) fn seated(&mut self, session: SessionId, server: ServerId) {
        self.server_of.insert(session, server);
        self.on_server.entry(server).or_default().insert(session);
    }

    /// The server session `session` is seated on, as far as the events told.
    pub(crate) fn server_of(&self, session: SessionId) -> Option<ServerId> {
        self.server_of.get(&session).copied()
    }

    /// The trace ended a session.
    pub(crate) fn ended(&mut self, session: SessionId) {
        if let Some(server) = self.server_of.remove(&session)
            && let Some(on) = self.on_server.get_mut(&server)
        {
            on.remove(&session);
            if on.is_empty() {
                self.on_server.remove(&server);
            }
        }
    }

    /// Servers were made: `generation_of` gives each one's generation (`None` when it is
    /// gone already; it was then made from its config's generation of now).
    pub(crate) fn provisioned(&mut self, config: &str, generation: Option<Generation>) {
        let now = self.current.get(config).copied();
        let generation = generation.or(now);
        let Some(last) = self.open.last_mut() else {
            return;
        };
        *last
            .built
            .entry((config.to_owned(), generation))
            .or_default() += 1;
        if generation != now {
            last.built_outdated += 1;
        }
    }

    /// A server went at `at` (`at_s` seconds from the start): the sessions still seated on it
    /// were ended by the controller.
    pub(crate) fn destroyed(&mut self, server: ServerId, at: Timestamp, at_s: f64) {
        let ended = self.on_server.remove(&server).unwrap_or_default();
        for s in &ended {
            self.server_of.remove(s);
        }
        for open in &mut self.open {
            if open.outdated.remove(&server) && open.outdated.is_empty() && open.gone.is_none() {
                open.gone = Some((at, at_s));
            }
        }
        if let Some(last) = self.open.last_mut() {
            last.ended_by_us += ended.len() as u64;
        }
    }

    /// Sessions were lost with their server.
    pub(crate) fn lost(&mut self, sessions: &[SessionId]) {
        let mut ended = 0;
        for s in sessions {
            if self.server_of.contains_key(s) {
                self.ended(*s);
                ended += 1;
            }
        }
        if let Some(last) = self.open.last_mut() {
            last.ended_by_us += ended;
        }
    }

    /// A request was refused: its pool is gone.
    pub(crate) fn refused(&mut self) {
        if let Some(last) = self.open.last_mut() {
            last.refused += 1;
        }
    }

    /// The figures of every change, the minutes below the baseline left at 0 (see
    /// [`minutes_below`]).
    pub(crate) fn finish(self) -> Vec<ChangeMetrics> {
        let current = self.current;
        self.open
            .into_iter()
            .map(|o| ChangeMetrics {
                label: o.label,
                at: o.at,
                at_s: o.at_s,
                reload: o.reload,
                outdated_at_change: o.outdated_at_change,
                last_outdated_gone_at: o.gone.map(|g| g.0),
                last_outdated_gone_after_s: o.gone.map(|g| g.1 - o.at_s),
                built: o
                    .built
                    .into_iter()
                    .map(|((config, generation), servers)| GenerationBuilt {
                        current: generation.is_some()
                            && current.get(&config) == generation.as_ref(),
                        generation: generation.map(|g| g.to_string()),
                        config,
                        servers,
                    })
                    .collect(),
                built_outdated: o.built_outdated,
                minutes_below_baseline: 0,
                minutes_below_baseline_after: 0,
                sessions_ended_by_us: o.ended_by_us,
                requests_refused: o.refused,
            })
            .collect()
    }
}

/// Free slots and the minimum in force per pool at every whole minute from the start.
#[derive(Debug, Default)]
pub(crate) struct Minutes {
    /// Pool → free slots on its ready servers that can take a session, minute by minute.
    pub free: BTreeMap<String, Vec<u32>>,
    /// Pool → the free slots its enabled configs keep at least (schedules included).
    pub minimum: BTreeMap<String, Vec<u32>>,
    /// The policies of the configuration in force, per pool.
    policies: Vec<(String, Vec<ScalingPolicy>)>,
}

impl Minutes {
    /// The configuration in force from now on.
    pub(crate) fn config(&mut self, config: &Config) {
        self.policies = config
            .pools
            .iter()
            .map(|p| {
                let policies = p
                    .autoscale
                    .iter()
                    .map(|c| ScalingPolicy::in_config(config, c))
                    .collect();
                (p.server_pool_name.clone(), policies)
            })
            .collect();
    }

    /// The next minute's figures, the same `count` times (minutes skipped while idle), read
    /// from `servers`; the minimum at each minute's own time (minute `m` is `start` + `m`
    /// minutes).
    pub(crate) fn push(&mut self, servers: &[ServerInfo], start: Timestamp, count: usize) {
        let minute = self.free.values().map(Vec::len).max().unwrap_or(0);
        let mut free: BTreeMap<&str, u32> =
            self.policies.iter().map(|(p, _)| (p.as_str(), 0)).collect();
        for s in servers
            .iter()
            .filter(|s| s.state == ServerState::Running && (s.reusable || !s.used))
        {
            *free.entry(s.pool.as_str()).or_default() += s.capacity.saturating_sub(s.sessions);
        }
        for (pool, n) in free {
            let series = self.free.entry(pool.to_owned()).or_default();
            series.resize(minute, 0);
            series.extend(std::iter::repeat_n(n, count));
        }
        for k in 0..count {
            let t = start
                .checked_add(jiff::SignedDuration::from_mins((minute + k) as i64))
                .unwrap_or(start);
            for (pool, policies) in &self.policies {
                let series = self.minimum.entry(pool.clone()).or_default();
                series.resize(minute + k, 0);
                series.push(policies.iter().map(|p| p.minimum_at(t)).sum());
            }
        }
    }
}

/// The minutes in `[from_s, to_s)` (seconds from the start) in which some pool had fewer free
/// slots in `with` than in `without`, and fewer than its minimum in force in both runs (the
/// lower of the two).
pub(crate) fn minutes_below(with: &Minutes, without: &Minutes, from_s: f64, to_s: f64) -> u64 {
    let first = (from_s / 60.0).ceil().max(0.0) as usize;
    let mut below = 0;
    let mut m = first;
    while (m as f64) * 60.0 < to_s {
        let any = with.free.iter().any(|(pool, free)| {
            let Some(&here) = free.get(m) else {
                return false;
            };
            let base = without
                .free
                .get(pool)
                .and_then(|f| f.get(m))
                .copied()
                .unwrap_or(0);
            let minimum_of = |run: &Minutes| run.minimum.get(pool).and_then(|v| v.get(m)).copied();
            // The lower of the two configurations' minimums: a pool that catches up with a
            // raised minimum is not below what it would keep without the change.
            let minimum = match (minimum_of(with), minimum_of(without)) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(0),
            };
            here < base && here < minimum
        });
        if with.free.values().all(|f| f.len() <= m) {
            break;
        }
        below += u64::from(any);
        m += 1;
    }
    below
}
