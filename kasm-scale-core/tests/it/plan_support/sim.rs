//! A controller-free simulation of one pool for the rollout properties: plans are carried out
//! as the controller would (a provision becomes servers coming up that are ready a boot delay
//! later, or never for a generation that cannot check in; a destroy removes the server),
//! sessions arrive and end, and requests are seated with `engine::assign`. Every server
//! remembers the generation it was built from; a config's generation can change at any step.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::config::Generation;
use kasm_scale_core::engine::{
    Action, Cause, Plan, PoolSnapshot, ServerId, ServerSnapshot, ServerState, assign, plan,
};

/// Seconds between plans.
pub const STEP: i64 = 60;

/// One pool under simulation.
#[derive(Debug, Clone)]
pub struct Sim {
    /// The pool as the next plan sees it.
    pub snapshot: PoolSnapshot,
    /// The time of the next plan.
    pub now: Timestamp,
    /// Seconds from creation to ready.
    pub boot: i64,
    /// The generation each server was built from.
    pub generation_of: BTreeMap<ServerId, u64>,
    /// The generation new servers are built from (per config).
    pub current: Vec<u64>,
    /// Generations whose servers never check in.
    pub broken: BTreeSet<u64>,
    /// Every plan, with the time it was made.
    pub plans: Vec<(Timestamp, Plan)>,
    /// Servers built per generation.
    pub built: BTreeMap<u64, u32>,
    /// Sessions on servers the plans destroyed (must stay 0).
    pub sessions_ended: u32,
    /// Each config's ready free slots in the last step before its requests came (after its
    /// servers booted and its sessions ended): what the previous plan left.
    pub before_arrivals: Vec<u64>,
    rng: u64,
    next_id: u128,
}

impl Sim {
    /// A simulation of `snapshot` from `now`; every server in it is of generation 1, as is
    /// every config (`ConfigSnapshot::generation` is set).
    pub fn new(mut snapshot: PoolSnapshot, now: Timestamp, boot: i64, seed: u64) -> Self {
        let mut generation_of = BTreeMap::new();
        for s in &mut snapshot.servers {
            s.outdated = false;
            generation_of.insert(s.id, 1);
        }
        for c in &mut snapshot.configs {
            c.generation = Some(Generation(1));
        }
        let current = vec![1; snapshot.configs.len()];
        Sim {
            snapshot,
            now,
            boot,
            generation_of,
            current,
            broken: BTreeSet::new(),
            plans: Vec::new(),
            built: BTreeMap::new(),
            sessions_ended: 0,
            before_arrivals: Vec::new(),
            rng: seed,
            next_id: 1 << 64,
        }
    }

    /// Config `c`'s generation becomes `g`: its servers of any other are outdated, its
    /// servers of `g` current again (a rollback).
    pub fn set_generation(&mut self, c: usize, g: u64) {
        self.current[c] = g;
        self.snapshot.configs[c].generation = Some(Generation(g));
        for s in &mut self.snapshot.servers {
            if s.config as usize == c {
                s.outdated = self.generation_of[&s.id] != g;
            }
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One step: servers whose boot is over become ready, `ends` sessions end (on servers drawn
    /// at random), `arrivals` requests join the queue, the queue is seated, the pool is
    /// planned at `now` and the plan carried out; then the clock moves on a step.
    pub fn step(&mut self, arrivals: u32, ends: u32) -> &Plan {
        let now = self.now;
        for s in &mut self.snapshot.servers {
            if matches!(s.state, ServerState::Provisioning | ServerState::Starting)
                && s.created_at + SignedDuration::from_secs(self.boot) <= now
            {
                if self.broken.contains(&self.generation_of[&s.id]) {
                    s.state = ServerState::Starting;
                } else {
                    s.state = ServerState::Running;
                    s.checked_in_at = Some(now);
                }
            }
        }
        for _ in 0..ends {
            let busy: Vec<usize> = (0..self.snapshot.servers.len())
                .filter(|&i| self.snapshot.servers[i].sessions > 0)
                .collect();
            if busy.is_empty() {
                break;
            }
            let i = busy[(self.next() % busy.len() as u64) as usize];
            self.snapshot.servers[i].sessions -= 1;
        }
        self.before_arrivals = (0..self.snapshot.configs.len())
            .map(|c| self.ready_free(c))
            .collect();
        self.snapshot.pending_requests += arrivals;
        self.seat();
        let p = plan(&self.snapshot, now);
        self.carry_out(&p);
        self.plans.push((now, p));
        self.now = now + SignedDuration::from_secs(STEP);
        &self.plans.last().expect("just pushed").1
    }

    /// Seats waiting requests on the servers `assign` picks, while it picks one.
    pub fn seat(&mut self) {
        while self.snapshot.pending_requests > 0 {
            let Some(id) = assign(&self.snapshot) else {
                break;
            };
            let s = self
                .snapshot
                .servers
                .iter_mut()
                .find(|s| s.id == id)
                .expect("assign picks a server of the pool");
            s.sessions += 1;
            s.used = true;
            self.snapshot.pending_requests -= 1;
        }
    }

    fn carry_out(&mut self, p: &Plan) {
        for a in &p.actions {
            match a {
                Action::Destroy { server, .. } => {
                    if let Some(at) = self.snapshot.servers.iter().position(|s| s.id == *server) {
                        self.sessions_ended += self.snapshot.servers[at].sessions;
                        self.snapshot.servers.remove(at);
                    }
                }
                // No warm tier in these simulations' configs (`engine_warm.rs` has its own).
                Action::Stop { .. } | Action::Start { .. } => {
                    unreachable!("the plan simulator's configs keep no warm tier")
                }
                Action::Provision {
                    config,
                    count,
                    queue_slots,
                    ..
                } => {
                    let c = self
                        .snapshot
                        .configs
                        .iter()
                        .position(|x| &x.policy.name == config)
                        .expect("a provision names a config of the pool");
                    let policy = self.snapshot.configs[c].policy.clone();
                    let mut queue_slots = *queue_slots;
                    for _ in 0..*count {
                        let slots = queue_slots.min(policy.sessions_per_server);
                        queue_slots -= slots;
                        let id = ServerId(uuid::Uuid::from_u128(self.next_id));
                        self.next_id += 1;
                        self.generation_of.insert(id, self.current[c]);
                        *self.built.entry(self.current[c]).or_default() += 1;
                        self.snapshot.servers.push(ServerSnapshot {
                            id,
                            config: c as u32,
                            state: ServerState::Provisioning,
                            sessions: 0,
                            capacity: policy.sessions_per_server,
                            reusable: policy.reusable,
                            used: false,
                            created_at: self.now,
                            checked_in_at: None,
                            queue_slots: slots,
                            outdated: false,
                            drained: None,
                            woken_at: None,
                            for_warm: false,
                        });
                    }
                }
            }
        }
        for c in &mut self.snapshot.configs {
            c.bookkeeping = p.bookkeeping[&c.policy.name].clone();
        }
    }

    /// Free slots on ready servers that take sessions (not spent, not drained), per config.
    pub fn ready_free(&self, c: usize) -> u64 {
        let requires = self.snapshot.configs[c].policy.requires_checkin;
        self.snapshot
            .servers
            .iter()
            .filter(|s| {
                s.config as usize == c
                    && s.is_ready(requires)
                    && !s.is_spent()
                    && s.drained.is_none()
            })
            .map(|s| u64::from(s.capacity - s.sessions))
            .sum()
    }

    /// Servers of config `c` left from another generation than its current one (not being
    /// destroyed).
    pub fn outdated(&self, c: usize) -> usize {
        self.snapshot
            .servers
            .iter()
            .filter(|s| s.config as usize == c && s.outdated)
            .count()
    }

    /// The destroys of the last plan with their cause, and the generation of each server.
    pub fn destroys_of(&self, p: &Plan) -> Vec<(ServerId, Cause)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Destroy { server, cause, .. } => Some((*server, *cause)),
                _ => None,
            })
            .collect()
    }
}
