//! (ours) The `demand` standby policy's step of a plan: the pool's standby target from its
//! demand signal, shared out over its configs, with spill-over past configs that cannot grow.

use jiff::Timestamp;

use super::demand::{DEFAULT_BOOT_SECONDS, LEAD_MAX_SECONDS, standby_for};
use super::{PoolSnapshot, StandbyPolicy};

/// Boot times are read within these bounds, in seconds: a server is never assumed ready in
/// less than half a minute, nor looked for more than an hour ahead.
const LEAD_RANGE: (f64, f64) = (30.0, LEAD_MAX_SECONDS as f64);

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
/// (predictive: the rise the profile knows is covered one boot time before it comes). The boot
/// time is the 90th percentile of the first config that can grow (else of the first that uses
/// the policy), [`DEFAULT_BOOT_SECONDS`] until one of its servers was ready. While the last
/// minutes' arrivals are what the learned profile expected ([`DemandSignal::as_expected`]), the
/// profile alone is trusted (a class that has all logged in asks for nothing more); on a
/// surprise, the larger of the two. The target (never less than the sum of those configs' own
/// minimums) is shared out in config order: each first keeps its own minimum as far as it can
/// hold it, then the free slots that exist count wherever they are, then the first configs grow
/// up to what they can hold; a config at `max_instances` or backing off after failures holds
/// only what it has, so its share moves to the next (spill-over), and the reason says from where.
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
    let level = snapshot
        .configs
        .iter()
        .zip(&uses)
        .filter(|(_, u)| **u)
        .map(|(c, _)| c.policy.target_immediate_service)
        .fold(0.0, f64::max);
    // The boot time of the config that would make the next server.
    let lead_of = (0..shares.len())
        .find(|&c| uses[c] && shares[c].room > 0)
        .unwrap_or(first);
    let (lead, measured) = match signal.boot_p90.get(lead_of).copied().flatten() {
        Some(p90) => (p90, true),
        None => (DEFAULT_BOOT_SECONDS, false),
    };
    let lead = lead.clamp(LEAD_RANGE.0, LEAD_RANGE.1);
    let reactive = signal.recent_rate * lead;
    let predicted = signal.expected_within(lead);
    // The profile alone while the demand is what it expected; the recent rate on a surprise.
    let trusted = signal.as_expected();
    let expected = if trusted {
        predicted
    } else {
        reactive.max(predicted)
    };
    let target = standby_for(expected, level);

    let own: u64 = (0..shares.len())
        .filter(|&c| uses[c])
        .map(|c| shares[c].minimum)
        .sum();
    let total = target.max(own);
    let hold = |s: &Share| s.free.saturating_add(s.room.saturating_mul(s.per_server));
    let mut given: Vec<u64> = shares
        .iter()
        .zip(&uses)
        .map(|(s, u)| if *u { s.minimum.min(hold(s)) } else { 0 })
        .collect();
    let mut left = total.saturating_sub(given.iter().sum());
    // Free slots that exist count first, wherever they are (servers made for a config that
    // could not grow stay useful when it can again); then the first configs grow.
    for room in [
        &(|s: &Share| s.free) as &dyn Fn(&Share) -> u64,
        &hold as &dyn Fn(&Share) -> u64,
    ] {
        for (c, s) in shares.iter().enumerate() {
            if uses[c] && left > 0 {
                let extra = left.min(room(s).saturating_sub(given[c]));
                given[c] += extra;
                left -= extra;
            }
        }
    }
    let stuck: Vec<String> = shares
        .iter()
        .zip(&snapshot.configs)
        .zip(&uses)
        .filter_map(|((s, c), u)| {
            let why = s.stuck.filter(|_| *u)?;
            Some(format!("{} {why}", c.policy.name))
        })
        .collect();
    let part = if predicted >= reactive {
        format!("{predicted:.1} arrivals expected by the learned profile in the next {lead:.0} s")
    } else {
        format!(
            "{reactive:.1} arrivals expected at the recent rate ({:.1}/min) in the next {lead:.0} s",
            signal.recent_rate * 60.0
        )
    };
    let boot = if measured {
        "boot p90"
    } else {
        "boot time assumed until a server was ready"
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
