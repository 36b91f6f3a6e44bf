//! Per-day figures: a simulation cut into 24-hour days from its start, and the whole-run figures
//! without its warm-up days.
//!
//! A request belongs to the day it arrives in, with its wait; VM time is cut at the day
//! boundaries (in whole nanoseconds, so the sums do not depend on how the run steps through
//! time); each day's oracle is [`oracle_vm_hours_within`] the day.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::oracle::{Served, oracle_cost_within, oracle_vm_hours_within};
use crate::config::Config;

/// Nanoseconds in a day.
const DAY: u128 = 86_400_000_000_000;

/// What one day of a simulation measured: the 24 hours from `start + day × 24 h`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayMetrics {
    /// The day, from 0.
    pub day: u32,
    /// The civil date (UTC) the day begins on, `YYYY-MM-DD`.
    pub date: String,
    /// Whether it is a warm-up day (see [`super::SimOptions::warmup_days`]), left out of the
    /// whole-run figures.
    pub warmup: bool,
    /// Session requests that arrived in the day.
    pub requests: u64,
    /// Those that got a server at once.
    pub served_immediately: u64,
    /// The same, in percent of the day's requests (100 without requests).
    pub served_immediately_pct: f64,
    /// VM-hours within the day: VMs pending, running or stopping (billed as running).
    pub vm_hours: f64,
    /// (ours) Hours of stopped VMs within the day (the warm tier's).
    pub stopped_vm_hours: f64,
    /// (ours) What the day's VM time cost: running VM-hours × `price_per_hour` plus stopped
    /// ones × `stopped_price_per_hour`, each at its offering's prices. Left out when any of it
    /// is unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// (ours) The oracle's VM-hours within the day at offering 0's price (see
    /// [`super::oracle_cost_within`]); left out when unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_cost: Option<f64>,
    /// The oracle's lower bound within the day (see [`oracle_vm_hours_within`]).
    pub oracle_vm_hours: f64,
    /// `vm_hours / oracle_vm_hours` (0 when the bound is 0).
    pub ratio_to_oracle: f64,
    /// 99th percentile wait of the day's requests that got a server, in seconds.
    pub wait_p99_s: f64,
}

/// What one stretch of VM time is billed as: its provider (index), whether the VMs were
/// stopped, and the price per hour of that (its bits; `None`: unpriced).
pub(crate) type Meter = (usize, bool, Option<u64>);

/// `count` VMs on one meter during a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Metered {
    /// The provider's index.
    pub provider: usize,
    /// Whether they were stopped (else pending, running or stopping).
    pub stopped: bool,
    /// Their price per hour (running or stopped price as `stopped` says), if priced.
    pub price: Option<f64>,
    /// How many.
    pub count: u64,
}

/// One day's tallies while the simulation runs.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    immediate: u64,
    waits: Vec<f64>,
    /// VM time per meter, in nanoseconds: whole numbers, so that the sums (and the costs made
    /// of them) do not depend on how the run steps through time.
    meters: BTreeMap<Meter, u128>,
}

/// VM time per provider and its cost, from meters.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Billed {
    /// Running VM time per provider, in nanoseconds.
    pub vm_nanos: Vec<u128>,
    /// Stopped VM time per provider, in nanoseconds.
    pub stopped_nanos: Vec<u128>,
    /// Cost of the running time per provider (`None`: some of it unpriced).
    pub running_cost: Vec<Option<f64>>,
    /// Cost of the stopped time per provider (`None`: some of it unpriced).
    pub stopped_cost: Vec<Option<f64>>,
    /// Whether each provider has a price at all.
    pub priced: Vec<bool>,
}

impl Billed {
    /// From `meters`, for the providers of `priced` (whether each has a price at all).
    pub(crate) fn of(meters: &BTreeMap<Meter, u128>, priced: &[bool]) -> Self {
        let providers = priced.len();
        let mut b = Billed {
            vm_nanos: vec![0; providers],
            stopped_nanos: vec![0; providers],
            running_cost: priced.iter().map(|p| p.then_some(0.0)).collect(),
            stopped_cost: priced.iter().map(|p| p.then_some(0.0)).collect(),
            priced: priced.to_vec(),
        };
        for (&(provider, stopped, price), &nanos) in meters {
            if provider >= providers || nanos == 0 {
                continue;
            }
            let (time, cost) = if stopped {
                (&mut b.stopped_nanos, &mut b.stopped_cost)
            } else {
                (&mut b.vm_nanos, &mut b.running_cost)
            };
            time[provider] += nanos;
            cost[provider] = match (cost[provider], price) {
                (Some(sum), Some(p)) => Some(sum + nanos as f64 / 3.6e12 * f64::from_bits(p)),
                _ => None,
            };
        }
        b
    }

    /// Provider `i`'s cost, running and stopped, if it is priced and all its time is.
    pub(crate) fn cost_of(&self, i: usize) -> Option<f64> {
        Some(self.running_cost.get(i).copied()?? + self.stopped_cost.get(i).copied()??)
    }

    /// The cost over every provider: `None` when no provider is priced, or an unpriced one
    /// (or unpriced time of a priced one) has time.
    pub(crate) fn cost(&self) -> Option<f64> {
        let mut total = None;
        for (i, priced) in self.priced.iter().enumerate() {
            if *priced {
                total = Some(total.unwrap_or(0.0) + self.cost_of(i)?);
            } else if self.vm_nanos[i] > 0 || self.stopped_nanos[i] > 0 {
                return None;
            }
        }
        total
    }

    /// The running (`stopped` false) or stopped part of [`Billed::cost`], when it is known.
    pub(crate) fn cost_part(&self, stopped: bool) -> Option<f64> {
        self.cost()?;
        let part = if stopped {
            &self.stopped_cost
        } else {
            &self.running_cost
        };
        Some(part.iter().flatten().fold(0.0, |sum, c| sum + c))
    }
}

/// The per-day tallies of a running simulation; times are nanoseconds from its start.
#[derive(Debug)]
pub(crate) struct Ledger {
    warmup_days: u32,
    days: Vec<Tally>,
    /// Whether each VM provider has a price at all.
    priced: Vec<bool>,
}

/// What the whole run (its warm-up left out) measured, from the ledger.
#[derive(Debug)]
pub(crate) struct Whole {
    /// Requests after the warm-up.
    pub requests: u64,
    /// Those served at once.
    pub immediate: u64,
    /// Their waits (served ones), sorted.
    pub waits: Vec<f64>,
    /// VM time per provider after the warm-up, and its cost.
    pub billed: Billed,
    /// Every day's figures, warm-up days included.
    pub days: Vec<DayMetrics>,
}

/// The `p` quantile (0 to 1) of `sorted` values, 0 when there are none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        0.0
    } else {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

impl Ledger {
    /// For a run of `end` nanoseconds (at least one day, the last maybe partial) whose first
    /// `warmup_days` days are warm-up, with VM providers each priced or not (`priced`).
    pub(crate) fn new(end: u128, warmup_days: u32, priced: Vec<bool>) -> Self {
        let n = end.div_ceil(DAY).max(1);
        let days = (0..n).map(|_| Tally::default()).collect();
        Self {
            warmup_days,
            days,
            priced,
        }
    }

    /// Where the warm-up ends, in nanoseconds from the start.
    pub(crate) fn warmup_end(&self) -> u128 {
        u128::from(self.warmup_days) * DAY
    }

    /// Whether `at` falls in the warm-up.
    pub(crate) fn in_warmup(&self, at: u128) -> bool {
        at < self.warmup_end()
    }

    /// The day of `at` (anything past the end counts in the last day).
    fn day(&mut self, at: u128) -> &mut Tally {
        let last = self.days.len() - 1;
        let i = usize::try_from(at / DAY).unwrap_or(usize::MAX).min(last);
        &mut self.days[i]
    }

    /// A request arrived at `at`; `immediate` when it got a server at once (a wait of 0).
    pub(crate) fn request(&mut self, at: u128, immediate: bool) {
        let day = self.day(at);
        day.requests += 1;
        if immediate {
            day.immediate += 1;
            day.waits.push(0.0);
        }
    }

    /// A request that arrived at `arrived` got a server after `seconds`.
    pub(crate) fn wait(&mut self, arrived: u128, seconds: f64) {
        self.day(arrived).waits.push(seconds);
    }

    /// The VMs of `counts` lived from `from` to `to`: their time, cut at the days.
    pub(crate) fn vm_time(&mut self, mut from: u128, to: u128, counts: &[Metered]) {
        while from < to {
            let last = (self.days.len() - 1) as u128;
            let day_end = if from / DAY >= last {
                to
            } else {
                (from / DAY + 1) * DAY
            };
            let until = to.min(day_end);
            let tally = self.day(from);
            for m in counts {
                let meter = (m.provider, m.stopped, m.price.map(f64::to_bits));
                *tally.meters.entry(meter).or_default() += (until - from) * u128::from(m.count);
            }
            from = until;
        }
    }

    /// The figures: every day's, and the whole run's without the warm-up. `served` are the
    /// sessions served, `end` the end of the run in seconds, `start` its wall clock.
    pub(crate) fn finish(
        self,
        config: &Config,
        served: &[Served],
        start: Timestamp,
        end: f64,
    ) -> Whole {
        let warmup_days = self.warmup_days;
        let mut after_warmup: BTreeMap<Meter, u128> = BTreeMap::new();
        let mut whole = Whole {
            requests: 0,
            immediate: 0,
            waits: Vec::new(),
            billed: Billed::default(),
            days: Vec::with_capacity(self.days.len()),
        };
        for (i, mut tally) in self.days.into_iter().enumerate() {
            let day = i as u32;
            let warmup = day < warmup_days;
            let (from, to) = (
                86_400.0 * f64::from(day),
                (86_400.0 * f64::from(day + 1)).min(end),
            );
            let billed = Billed::of(&tally.meters, &self.priced);
            let vm_hours = billed.vm_nanos.iter().sum::<u128>() as f64 / 3.6e12;
            let stopped_vm_hours = billed.stopped_nanos.iter().sum::<u128>() as f64 / 3.6e12;
            let oracle = oracle_vm_hours_within(config, served, from, to);
            tally.waits.sort_by(f64::total_cmp);
            let date = start
                .checked_add(SignedDuration::from_hours(24 * i64::from(day)))
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
                .unwrap_or_default();
            whole.days.push(DayMetrics {
                day,
                date,
                warmup,
                requests: tally.requests,
                served_immediately: tally.immediate,
                served_immediately_pct: pct(tally.immediate, tally.requests),
                vm_hours,
                stopped_vm_hours,
                cost: billed.cost(),
                oracle_cost: oracle_cost_within(config, served, from, to),
                oracle_vm_hours: oracle,
                ratio_to_oracle: if oracle > 0.0 { vm_hours / oracle } else { 0.0 },
                wait_p99_s: percentile(&tally.waits, 0.99),
            });
            if !warmup {
                whole.requests += tally.requests;
                whole.immediate += tally.immediate;
                whole.waits.append(&mut tally.waits);
                for (meter, nanos) in &tally.meters {
                    *after_warmup.entry(*meter).or_default() += nanos;
                }
            }
        }
        whole.billed = Billed::of(&after_warmup, &self.priced);
        whole.waits.sort_by(f64::total_cmp);
        whole
    }
}

/// `part` in percent of `all`, 100 when `all` is 0.
pub(crate) fn pct(part: u64, all: u64) -> f64 {
    if all == 0 {
        100.0
    } else {
        100.0 * part as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_time_is_cut_at_the_days_and_overruns_go_to_the_last() {
        let mut l = Ledger::new(2 * DAY + 5, 1, vec![false; 2]);
        assert_eq!(l.days.len(), 3);
        let running = |provider, count| Metered {
            provider,
            stopped: false,
            price: None,
            count,
        };
        l.vm_time(DAY - 10, 2 * DAY + 20, &[running(0, 1), running(1, 2)]);
        let got: Vec<Vec<u128>> = l
            .days
            .iter()
            .map(|d| Billed::of(&d.meters, &[false; 2]).vm_nanos)
            .collect();
        assert_eq!(got, [vec![10, 20], vec![DAY, 2 * DAY], vec![20, 40]]);
        assert!(l.in_warmup(DAY - 1) && !l.in_warmup(DAY));
        l.request(3 * DAY, true);
        assert_eq!(l.days[2].requests, 1);
        assert_eq!(percentile(&[], 0.99), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }

    #[test]
    fn billed_time_costs_its_meters_prices_and_unpriced_time_has_no_cost() {
        let hour = 3_600_000_000_000u128;
        let mut l = Ledger::new(DAY, 0, vec![true, false]);
        let m = |provider, stopped, price, count| Metered {
            provider,
            stopped,
            price,
            count,
        };
        // Provider 0: 2 running VMs at 0.5 an hour and 1 stopped at 0.05, for 2 hours.
        l.vm_time(
            0,
            2 * hour,
            &[m(0, false, Some(0.5), 2), m(0, true, Some(0.05), 1)],
        );
        let b = Billed::of(&l.days[0].meters, &[true, false]);
        assert_eq!(b.vm_nanos, [4 * hour, 0]);
        assert_eq!(b.stopped_nanos, [2 * hour, 0]);
        assert!((b.cost().unwrap() - 2.1).abs() < 1e-9, "{b:?}");
        assert!((b.cost_part(false).unwrap() - 2.0).abs() < 1e-9);
        assert!((b.cost_part(true).unwrap() - 0.1).abs() < 1e-9);
        // Nothing of provider 1 ran: it is unpriced, and the total is provider 0's.
        assert!((b.cost().unwrap() - 2.1).abs() < 1e-9);
        assert_eq!(b.cost_of(1), None);
        // An unpriced run has no cost, not 0.
        assert_eq!(Billed::of(&BTreeMap::new(), &[false]).cost(), None);
        assert_eq!(Billed::of(&BTreeMap::new(), &[false]).cost_part(true), None);
        assert_eq!(Billed::of(&BTreeMap::new(), &[true]).cost(), Some(0.0));
        // Provider 1 runs a VM without a price: its cost and the total are unknown.
        l.vm_time(2 * hour, 3 * hour, &[m(1, false, None, 1)]);
        let b = Billed::of(&l.days[0].meters, &[true, false]);
        assert!((b.cost_of(0).unwrap() - 2.1).abs() < 1e-9);
        assert_eq!(b.cost_of(1), None);
        assert_eq!(b.cost(), None);
        assert_eq!(b.cost_part(true), None);
    }
}
