//! (ours) The `demand` standby policy's step of a plan: the pool's standby target from its
//! demand signal, shared out over its configs, with spill-over past configs that cannot grow.

use jiff::Timestamp;

use super::demand::{DEFAULT_BOOT_SECONDS, LEAD_MAX_SECONDS, standby_for};
use super::{DemandSignal, PoolSnapshot, StandbyPolicy};

/// Boot times are read within these bounds, in seconds: a server is never assumed ready in
/// less than half a minute, nor looked for more than an hour ahead.
pub(super) const LEAD_RANGE: (f64, f64) = (30.0, LEAD_MAX_SECONDS as f64);

/// What one config brings to the sharing-out: its own minimum, its free slots (ready and coming,
/// after the queue took its share), and whether and how far it can grow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    /// Kasm's minimum at `now` (0 outside every window or when disabled).
    pub minimum: u64,
    /// Free slots now.
    pub free: u64,
    /// Servers it may still create (`max_instances` − live), 0 while it backs off.
    pub room: u64,
    /// Sessions per server.
    pub per_server: u64,
    /// Why it cannot grow now, if it cannot: at `max_instances`, or backing off.
    pub stuck: Option<&'static str>,
}

/// The demand policy's minimums for a pool at `now`: `None` when no enabled config in a window
/// uses it (or the snapshot has no signal); else each config's new minimum (never below its
/// own) and, for each config the policy raised, why.
///
/// The pool's target is [`standby_for`] the highest `target_immediate_service` of the configs
/// that use it and the arrivals expected while a server boots: the larger of the
/// recent rate × the boot time (reactive) and the learned profile over the same span from now
/// (predictive: the rise the profile knows is covered one boot time before it comes). While
/// the last minutes' arrivals are what the learned profile expected
/// ([`DemandSignal::as_expected`]), the profile alone is trusted (a class that has all logged in
/// asks for nothing more); on a surprise, the larger of the two. The target (never less than
/// the sum of those configs' own minimums) is shared out in config order: each first keeps its
/// own minimum as far as it can hold it, then the free slots that exist count wherever they
/// are, then the first configs grow up to what they can hold; a config at `max_instances` or
/// backing off after failures holds only what it has, so its share moves to the next
/// (spill-over), and the reason says from where.
///
/// The boot time is the 90th percentile of the configs that use the policy, up to the first
/// one that can still grow once this plan's servers are made (all of them when none can),
/// the longest of those (ours); a config that holds no slot and cannot grow does not count,
/// and one whose servers were never ready counts [`DEFAULT_BOOT_SECONDS`]. Which config grows
/// next thus includes this plan's own servers, and the boot time never shortens as configs
/// fill up. Both keep the plan a fixed point: carried out and planned again it asks for
/// nothing more (with the first config that can grow now, a plan that filled a config read the
/// next config's boot time in the next plan and provisioned again; with the first config's
/// boot time once none could grow, the target fell when the last one filled, and the servers
/// just made were scaled in and made again).
///
/// The slots are shared out twice: once on the pool as it is, which gives the servers each
/// config makes (whole servers), then on the pool once they are made, which gives the
/// minimums. The spare slots of a config's last new server thus count in the sharing-out as
/// the next plan counts them: they take, in config order, part of what later configs hold,
/// rather than the next plan moving the share (and starting their downscale clock).
///
/// [`DemandSignal::as_expected`]: super::demand::DemandSignal::as_expected
pub(super) fn demand_minimums(
    snapshot: &PoolSnapshot,
    now: Timestamp,
    shares: &[Share],
) -> Option<(Vec<u64>, Vec<Option<String>>)> {
    let signal = snapshot.demand.as_ref()?;
    let uses: Vec<bool> = snapshot
        .configs
        .iter()
        .map(|c| {
            let p = &c.policy;
            p.standby_policy == StandbyPolicy::Demand && p.enabled && p.is_active_at(now)
        })
        .collect();
    let first = uses.iter().position(|u| *u)?;
    // (ours) A config with a warm tier covers with running servers the arrivals expected
    // within a warm start; its tier covers those of a cold build beyond that (`warm.rs`), as
    // far as `max_stopped` lets it: what a capped tier cannot hold stays running. (The tier's
    // *current* room does not count here: starting from the tier would then raise the running
    // target by what it started, and the morning would drain the tier into running servers;
    // a tier short of its target is refilled by builds as long as the running ones.)
    let warm: Vec<bool> = snapshot
        .configs
        .iter()
        .map(|c| c.policy.warm.is_some())
        .collect();
    let cold = vec![false; warm.len()];
    let tier_cap: u64 = snapshot
        .configs
        .iter()
        .zip(shares)
        .zip(&uses)
        .filter(|(_, u)| **u)
        .filter_map(|((c, s), _)| {
            let w = c.policy.warm?;
            Some(u64::from(w.max_stopped).saturating_mul(s.per_server))
        })
        .sum();
    let level = snapshot
        .configs
        .iter()
        .zip(&uses)
        .filter(|(_, u)| **u)
        .map(|(c, _)| c.policy.target_immediate_service)
        .fold(0.0, f64::max);
    let own: u64 = (0..shares.len())
        .filter(|&c| uses[c])
        .map(|c| shares[c].minimum)
        .sum();
    let hold: Vec<u64> = shares
        .iter()
        .map(|s| s.free.saturating_add(s.room.saturating_mul(s.per_server)))
        .collect();
    // The first config that can still grow once `made` servers are made (`shares.len()`: none).
    let grows_next = |made: &[u64]| {
        (0..shares.len())
            .find(|&c| uses[c] && shares[c].room > made[c])
            .unwrap_or(shares.len())
    };
    // The frontier moves on while this plan's own servers fill the config at it: the boot time
    // only lengthens, so the target only grows and the loop ends within one pass per config.
    let mut frontier = grows_next(&vec![0; shares.len()]);
    let (estimate, shared, target) = loop {
        let estimate = Estimate::new(
            signal,
            boot_time(signal, &warm, &uses, &hold, first, frontier),
        );
        let mut target = standby_for(estimate.expected, level);
        if estimate.warm {
            let build = Estimate::new(
                signal,
                boot_time(signal, &cold, &uses, &hold, first, frontier),
            );
            target = target.max(standby_for(build.expected, level).saturating_sub(tier_cap));
        }
        let shared = share_twice(target.max(own), shares, &uses, &hold);
        let next = grows_next(&shared.made);
        if next <= frontier {
            break (estimate, shared, target);
        }
        frontier = next;
    };
    let (given, left) = (shared.given, shared.left);
    let stuck: Vec<String> = shares
        .iter()
        .zip(&snapshot.configs)
        .zip(&uses)
        .filter_map(|((s, c), u)| {
            let why = s.stuck.filter(|_| *u)?;
            Some(format!("{} {why}", c.policy.name))
        })
        .collect();
    let part = estimate.describe(signal);
    let boot = match (estimate.measured, estimate.warm) {
        (true, false) => "boot p90",
        (false, false) => "boot time assumed until a server was ready",
        (true, true) => "warm start p90: the warm tier covers a cold build up to max_stopped",
        (false, true) => {
            "warm start time assumed until one was measured: the warm tier covers a cold build up to max_stopped"
        }
    };
    let mut minimums = Vec::with_capacity(shares.len());
    let mut why = Vec::with_capacity(shares.len());
    for (c, s) in shares.iter().enumerate() {
        let raised = uses[c] && given[c] > s.minimum;
        minimums.push(if raised { given[c] } else { s.minimum });
        why.push(raised.then(|| {
            format!(
                "demand: {part} ({boot}), {target} free at {}% for the pool, {} of them here; own minimum {}{}{}",
                level * 100.0,
                given[c],
                s.minimum,
                if stuck.is_empty() || s.stuck.is_some() {
                    String::new()
                } else {
                    format!("; spilled over from {}", stuck.join(", "))
                },
                if left > 0 {
                    format!("; {left} more wanted, no config can hold them")
                } else {
                    String::new()
                }
            )
        }));
    }
    Some((minimums, why))
}

/// The boot time the target covers, and whether it was measured: the longest 90th percentile
/// of the configs that use the policy and hold a slot or can grow, up to `frontier` (the first
/// that can grow once this plan's servers are made; all of them past the last), within
/// [`LEAD_RANGE`]; [`DEFAULT_BOOT_SECONDS`] for a config none of whose servers was ready yet.
/// For a config with a warm tier (ours), its warm start's 90th percentile instead
/// ([`DemandSignal::start_p90`], [`DEFAULT_START_SECONDS`] until one was measured): its tier
/// covers the rest of a cold build. The third value says whether the lead is a warm start's.
/// When no such config exists the pool can keep nothing: the first config's.
///
/// [`DEFAULT_START_SECONDS`]: super::warm::DEFAULT_START_SECONDS
fn boot_time(
    signal: &DemandSignal,
    warm: &[bool],
    uses: &[bool],
    hold: &[u64],
    first: usize,
    frontier: usize,
) -> (f64, bool, bool) {
    let of = |c: usize| {
        let (times, default) = if warm.get(c).copied().unwrap_or(false) {
            (&signal.start_p90, super::warm::DEFAULT_START_SECONDS)
        } else {
            (&signal.boot_p90, DEFAULT_BOOT_SECONDS)
        };
        let is_warm = warm.get(c).copied().unwrap_or(false);
        match times.get(c).copied().flatten() {
            Some(p90) => (p90.clamp(LEAD_RANGE.0, LEAD_RANGE.1), true, is_warm),
            None => (default.clamp(LEAD_RANGE.0, LEAD_RANGE.1), false, is_warm),
        }
    };
    (0..uses.len().min(frontier.saturating_add(1)))
        .filter(|&c| uses[c] && hold[c] > 0)
        .map(of)
        .reduce(|a, b| if b.0 > a.0 { b } else { a })
        .unwrap_or_else(|| of(first))
}

/// The arrivals expected while a server boots, as the target reads them.
struct Estimate {
    /// Seconds a new server takes to be ready.
    lead: f64,
    /// Whether `lead` was measured.
    measured: bool,
    /// Whether `lead` is a warm start's (ours).
    warm: bool,
    /// Arrivals at the recent rate within `lead`.
    reactive: f64,
    /// Arrivals the learned profile expects within `lead`.
    predicted: f64,
    /// What the target covers.
    expected: f64,
}

impl Estimate {
    fn new(signal: &DemandSignal, (lead, measured, warm): (f64, bool, bool)) -> Self {
        let reactive = signal.recent_rate * lead;
        let predicted = signal.expected_within(lead);
        let expected = expected_within_lead(signal, lead);
        Estimate {
            lead,
            measured,
            warm,
            reactive,
            predicted,
            expected,
        }
    }

    /// The part of a reason that says where the arrivals come from.
    fn describe(&self, signal: &DemandSignal) -> String {
        let (lead, reactive, predicted) = (self.lead, self.reactive, self.predicted);
        if predicted >= reactive {
            format!(
                "{predicted:.1} arrivals expected by the learned profile in the next {lead:.0} s"
            )
        } else {
            format!(
                "{reactive:.1} arrivals expected at the recent rate ({:.1}/min) in the next {lead:.0} s",
                signal.recent_rate * 60.0
            )
        }
    }
}

/// The arrivals the policy covers within `lead` seconds: the learned profile alone while the
/// demand is what it expected, the larger of it and the recent rate on a surprise.
pub(super) fn expected_within_lead(signal: &DemandSignal, lead: f64) -> f64 {
    let reactive = signal.recent_rate * lead;
    let predicted = signal.expected_within(lead);
    if signal.as_expected() {
        predicted
    } else {
        reactive.max(predicted)
    }
}

/// The pool's `total` shared out over the configs that use the policy.
struct Shared {
    /// Each config's share: its minimum once raised.
    given: Vec<u64>,
    /// Servers each config makes for its share.
    made: Vec<u64>,
    /// What no config can hold.
    left: u64,
}

/// Shares `total` out on the pool as it is, which gives the whole servers each config makes,
/// then again on the pool once they are made (their spare slots then count in config order,
/// as the next plan counts them), which gives the shares. The second never asks for more
/// servers than the first: it counts the same slots, and a config that grew keeps at least
/// the share it grew for (the configs before it take no more than before: a config grows only
/// once the free slots of every config are counted, and the configs before it that grew hold
/// all they can).
fn share_twice(total: u64, shares: &[Share], uses: &[bool], hold: &[u64]) -> Shared {
    let free: Vec<u64> = shares.iter().map(|s| s.free).collect();
    let (first, _) = share_out(total, shares, uses, hold, &free);
    let made: Vec<u64> = shares
        .iter()
        .zip(&first)
        .map(|(s, &g)| g.saturating_sub(s.free).div_ceil(s.per_server.max(1)))
        .collect();
    let slots: Vec<u64> = shares
        .iter()
        .zip(&made)
        .zip(hold)
        .map(|((s, &m), &h)| s.free.saturating_add(m.saturating_mul(s.per_server)).min(h))
        .collect();
    let (given, left) = share_out(total, shares, uses, hold, &slots);
    Shared { given, made, left }
}

/// Shares `total` out in config order over the configs that use the policy, with `free` slots
/// each and `hold` at most: each its own minimum as far as it can hold it, then the free slots
/// wherever they are, then the first configs grow up to what they can hold. Returns the shares
/// and what no config can hold.
fn share_out(
    total: u64,
    shares: &[Share],
    uses: &[bool],
    hold: &[u64],
    free: &[u64],
) -> (Vec<u64>, u64) {
    let mut given: Vec<u64> = shares
        .iter()
        .zip(uses)
        .zip(hold)
        .map(|((s, u), &h)| if *u { s.minimum.min(h) } else { 0 })
        .collect();
    let mut left = total.saturating_sub(given.iter().sum());
    // Free slots that exist count first, wherever they are (servers made for a config that
    // could not grow stay useful when it can again); then the first configs grow.
    for room in [free, hold] {
        for c in 0..shares.len() {
            if uses[c] && left > 0 {
                let extra = left.min(room[c].saturating_sub(given[c]));
                given[c] += extra;
                left -= extra;
            }
        }
    }
    (given, left)
}
