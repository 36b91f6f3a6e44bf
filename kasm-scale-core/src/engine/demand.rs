//! (ours) Demand history and the estimator of the `demand` standby policy.
//!
//! A pool's history is three small, bounded things the controller keeps in its records (and so
//! in the state store), fed with every session request and every server that becomes ready:
//!
//! - [`RecentDemand`]: arrivals per minute over the last [`RECENT_MINUTES`] minutes (the
//!   *reactive* part reads the arrival rate there), and the count of the 5-minute bin of the
//!   day under way;
//! - [`DemandProfile`]: arrivals per 5-minute bin of the civil day, learned per weekday and per
//!   kind of day (workday, weekend) with an exponentially weighted mean over past days (the
//!   *predictive* part: it knows that the wave comes at 08:30 on workdays before it comes);
//! - [`BootTimes`]: how long the last [`BOOT_SAMPLES`] servers of a config took from creation to
//!   ready, whose 90th percentile is the time a server made now needs to serve.
//!
//! Bins follow the civil time of a time zone (the pool's first schedule's, else UTC), so an
//! office's 08:30 stays 08:30 across daylight-saving changes. Nothing here reads a clock: every
//! function takes `now`, so the engine stays pure and the tests can play any calendar.
//!
//! The engine turns a [`DemandSignal`] (built by [`signal`]) into a standby target with
//! [`DemandSignal::expected_within`] and [`standby_for`]: enough free slots that of the requests expected
//! while a new server boots, the share that finds none is at most 1 − the service target.

use std::collections::VecDeque;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Width of a profile bin, in seconds.
pub const BIN_SECONDS: i64 = 300;
/// Bins in a civil day.
pub const BINS_PER_DAY: usize = 288;
/// Minutes of per-minute arrival counts kept for the recent rate.
pub const RECENT_MINUTES: i64 = 15;
/// Boot times kept per config.
pub const BOOT_SAMPLES: usize = 32;
/// The boot time assumed until a config's first server became ready, in seconds (ours).
pub const DEFAULT_BOOT_SECONDS: f64 = 300.0;
/// Steps of [`BIN_SECONDS`] the forecast of a [`DemandSignal`] covers (65 minutes): boot times
/// beyond that are read as the last step's rate.
pub const FORECAST_STEPS: usize = 13;
/// Weight of the newest day in the learned profile when it saw more arrivals than expected: a
/// new class shows at three quarters the next day (too few free slots cost waits).
const ALPHA_UP: f32 = 0.75;
/// The same when it saw fewer: a holiday halves the expectation for the next such day (too
/// many free slots only cost VM-hours, and the pattern usually comes back).
const ALPHA_DOWN: f32 = 0.5;
/// The longest time a server may take to be ready that the policy plans for, in seconds: the
/// forecast and the simulator's quiet check look this far ahead.
pub const LEAD_MAX_SECONDS: i64 = 3600;
/// Fewer arrivals than this expected while a server boots keep no free slot (ours): one request
/// in twenty boot times is not worth a warm server.
pub const MIN_EXPECTED: f64 = 0.05;
/// A learned bin below this many arrivals is forgotten (set to 0), so that a stray request stops
/// mattering after a week (or seven weeks for its weekday) instead of decaying for years.
const FORGET_BELOW: f32 = 0.01;
/// Most bins folded at once after a gap (a week): older bins would only decay further.
const MAX_GAP_BINS: usize = 7 * BINS_PER_DAY;

/// A bin of a civil day: its date and its index in the day (0 to 287).
type Bin = (Date, u16);

/// The bin `now` falls in, in `tz`.
fn bin_of(now: Timestamp, tz: &TimeZone) -> Bin {
    let local = tz.to_datetime(now);
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    (local.date(), (minute * 60 / BIN_SECONDS as i32) as u16)
}

/// The bin after `bin`.
fn next_bin((date, bin): Bin) -> Bin {
    if usize::from(bin) + 1 < BINS_PER_DAY {
        (date, bin + 1)
    } else {
        (date.tomorrow().unwrap_or(date), 0)
    }
}

/// Recent arrivals of a pool: per minute, and in the bin under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentDemand {
    /// The bin being counted (none before the first arrival or tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bin: Option<Bin>,
    /// Arrivals in it so far.
    #[serde(default)]
    count: u32,
    /// Arrivals per minute (Unix minute, count), oldest first, the last [`RECENT_MINUTES`].
    #[serde(default)]
    minutes: VecDeque<(i64, u32)>,
}

impl RecentDemand {
    /// The bin being counted, if any.
    pub fn bin_under_way(&self) -> Option<(Date, u16)> {
        self.bin
    }
}

/// Arrivals learned per bin: per weekday, and per kind of day (workdays, weekends). A stored
/// profile of another shape, or with values that are not finite and non-negative, reads as an
/// empty one: it is learned again rather than trusted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemandProfile {
    /// Mean arrivals per bin, weekday by weekday (Monday first), `7 × BINS_PER_DAY` values.
    weekly: Vec<f32>,
    /// Days folded into each weekly bin (saturating).
    weekly_days: Vec<u8>,
    /// Mean arrivals per bin of workdays then of weekend days, `2 × BINS_PER_DAY` values.
    kind: Vec<f32>,
    /// Days folded into each of those bins (saturating).
    kind_days: Vec<u8>,
}

impl Default for DemandProfile {
    fn default() -> Self {
        Self {
            weekly: vec![0.0; 7 * BINS_PER_DAY],
            weekly_days: vec![0; 7 * BINS_PER_DAY],
            kind: vec![0.0; 2 * BINS_PER_DAY],
            kind_days: vec![0; 2 * BINS_PER_DAY],
        }
    }
}

impl<'de> Deserialize<'de> for DemandProfile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            weekly: Vec<f32>,
            weekly_days: Vec<u8>,
            kind: Vec<f32>,
            kind_days: Vec<u8>,
        }
        let r = Raw::deserialize(d)?;
        Ok(DemandProfile {
            weekly: r.weekly,
            weekly_days: r.weekly_days,
            kind: r.kind,
            kind_days: r.kind_days,
        }
        .checked())
    }
}

fn weekday_index(date: Date) -> usize {
    date.weekday().to_monday_zero_offset() as usize
}

fn kind_index(date: Date) -> usize {
    usize::from(matches!(
        date.weekday(),
        Weekday::Saturday | Weekday::Sunday
    ))
}

impl DemandProfile {
    /// A profile read from storage, or a fresh one when its shape is not this version's.
    pub fn checked(self) -> Self {
        if self.weekly.len() == 7 * BINS_PER_DAY
            && self.weekly_days.len() == self.weekly.len()
            && self.kind.len() == 2 * BINS_PER_DAY
            && self.kind_days.len() == self.kind.len()
            && self
                .weekly
                .iter()
                .chain(&self.kind)
                .all(|v| v.is_finite() && *v >= 0.0)
        {
            self
        } else {
            Self::default()
        }
    }

    /// Folds a finished bin with `count` arrivals into the means.
    fn fold(&mut self, (date, bin): Bin, count: u32) {
        let count = count as f32;
        let fold = |values: &mut Vec<f32>, days: &mut Vec<u8>, i: usize| {
            if let (Some(v), Some(n)) = (values.get_mut(i), days.get_mut(i)) {
                let alpha = if count > *v { ALPHA_UP } else { ALPHA_DOWN };
                *v = if *n == 0 {
                    count
                } else {
                    alpha * count + (1.0 - alpha) * *v
                };
                if *v < FORGET_BELOW {
                    *v = 0.0;
                }
                *n = n.saturating_add(1);
            }
        };
        let bin = usize::from(bin);
        fold(
            &mut self.weekly,
            &mut self.weekly_days,
            weekday_index(date) * BINS_PER_DAY + bin,
        );
        fold(
            &mut self.kind,
            &mut self.kind_days,
            kind_index(date) * BINS_PER_DAY + bin,
        );
    }

    /// Expected arrivals in a bin: the larger of its weekday's mean and its kind of day's
    /// (each once learned), so that a pattern new on every workday shows the next day and one
    /// of a single weekday shows a week later; 0 before anything was learned.
    pub fn expected(&self, (date, bin): Bin) -> f64 {
        let bin = usize::from(bin).min(BINS_PER_DAY - 1);
        let read = |values: &[f32], days: &[u8], i: usize| {
            (days.get(i).copied().unwrap_or(0) > 0)
                .then(|| f64::from(values.get(i).copied().unwrap_or(0.0)))
        };
        let weekly = read(
            &self.weekly,
            &self.weekly_days,
            weekday_index(date) * BINS_PER_DAY + bin,
        );
        let kind = read(
            &self.kind,
            &self.kind_days,
            kind_index(date) * BINS_PER_DAY + bin,
        );
        weekly.unwrap_or(0.0).max(kind.unwrap_or(0.0))
    }

    /// Whether anything was learned.
    pub fn is_empty(&self) -> bool {
        self.kind_days.iter().all(|n| *n == 0)
    }
}

/// Brings the history up to `now`: every bin that ended since the last call is folded into the
/// profile (bins without arrivals as 0, at most a week of them), and per-minute counts older
/// than [`RECENT_MINUTES`] are dropped. A clock that went back (or the hour repeated when
/// daylight saving ends) folds the bin under way and counts on from `now`'s bin.
pub fn roll(recent: &mut RecentDemand, profile: &mut DemandProfile, now: Timestamp, tz: &TimeZone) {
    let current = bin_of(now, tz);
    match recent.bin {
        None => {
            recent.bin = Some(current);
            recent.count = 0;
        }
        Some(bin) if bin == current => {}
        Some(bin) => {
            profile.fold(bin, recent.count);
            if bin < current {
                let mut gap = next_bin(bin);
                let mut folded = 0;
                while gap < current && folded < MAX_GAP_BINS {
                    profile.fold(gap, 0);
                    gap = next_bin(gap);
                    folded += 1;
                }
            }
            recent.bin = Some(current);
            recent.count = 0;
        }
    }
    let minute = now.as_second().div_euclid(60);
    recent
        .minutes
        .retain(|(m, _)| *m > minute - RECENT_MINUTES && *m <= minute);
}

/// Counts one session request that arrived at `now`.
pub fn record_arrival(
    recent: &mut RecentDemand,
    profile: &mut DemandProfile,
    now: Timestamp,
    tz: &TimeZone,
) {
    roll(recent, profile, now, tz);
    recent.count = recent.count.saturating_add(1);
    let minute = now.as_second().div_euclid(60);
    match recent.minutes.back_mut() {
        Some((m, n)) if *m == minute => *n = n.saturating_add(1),
        _ => recent.minutes.push_back((minute, 1)),
    }
}

/// Arrivals per second lately: the larger of the rates over the last 3 and the last 10
/// minutes (the minute under way included), so that a burst shows at once and a steady rise
/// is not forgotten.
pub fn recent_rate(recent: &RecentDemand, now: Timestamp) -> f64 {
    let minute = now.as_second().div_euclid(60);
    let into = (now.as_second().rem_euclid(60) as f64).max(1.0);
    let rate = |minutes: i64| {
        let n: u32 = recent
            .minutes
            .iter()
            .filter(|(m, _)| *m > minute - minutes && *m <= minute)
            .map(|(_, n)| n)
            .sum();
        f64::from(n) / ((minutes - 1) as f64 * 60.0 + into)
    };
    rate(3).max(rate(10))
}

/// Until when the pool's demand signal stays nothing but zero if no request comes: `now` when
/// requests came in the last minutes, else the start of the first bin with an expectation
/// less the longest boot time the engine looks ahead (an hour), or `until` when no bin before
/// it expects anything. The simulator skips idle ticks up to there.
pub fn quiet_until(
    recent: &RecentDemand,
    profile: &DemandProfile,
    now: Timestamp,
    until: Timestamp,
    tz: &TimeZone,
) -> Timestamp {
    if recent_rate(recent, now) > 0.0 {
        return now;
    }
    if profile.is_empty() {
        return until.max(now);
    }
    let look = jiff::SignedDuration::from_secs(LEAD_MAX_SECONDS);
    let step = jiff::SignedDuration::from_secs(BIN_SECONDS);
    let first = now.as_second().div_euclid(BIN_SECONDS) * BIN_SECONDS;
    let Ok(mut t) = Timestamp::from_second(first) else {
        return now;
    };
    let end = until.saturating_add(look).unwrap_or(until);
    while t < end {
        if profile.expected(bin_of(t, tz)) > 0.0 {
            return t.saturating_sub(look).unwrap_or(now).max(now);
        }
        match t.checked_add(step) {
            Ok(next) => t = next,
            Err(_) => break,
        }
    }
    until.max(now)
}

/// How long the last servers of a config took from creation to ready, newest last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootTimes {
    /// Seconds, at most [`BOOT_SAMPLES`].
    seconds: VecDeque<f64>,
}

impl BootTimes {
    /// Adds one (a negative or non-finite time is ignored).
    pub fn record(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            if self.seconds.len() == BOOT_SAMPLES {
                self.seconds.pop_front();
            }
            self.seconds.push_back(seconds);
        }
    }

    /// The 90th percentile (nearest rank), none before the first.
    pub fn p90(&self) -> Option<f64> {
        let mut s: Vec<f64> = self
            .seconds
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let rank = (0.9 * s.len() as f64).ceil() as usize;
        Some(s[rank.clamp(1, s.len()) - 1])
    }
}

/// What the engine needs of a pool's demand at `now` (see [`signal`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemandSignal {
    /// Arrivals per second lately ([`recent_rate`]).
    pub recent_rate: f64,
    /// Expected arrivals per second from the learned profile, bin by bin from the one `now`
    /// falls in ([`FORECAST_STEPS`] bins; empty before anything was learned).
    pub forecast: Vec<f64>,
    /// Seconds of the first forecast bin already past at `now`.
    pub into_bin: f64,
    /// Arrivals so far in the bin under way.
    pub seen_in_bin: f64,
    /// Arrivals in the last [`RECENT_WINDOW`] seconds.
    pub seen_recent: f64,
    /// Arrivals the profile expected in those seconds.
    pub expected_recent: f64,
    /// Per config of the pool (in its order), the 90th percentile of its boot times, when known.
    pub boot_p90: Vec<Option<f64>>,
    /// (ours) Per config of the pool (in its order), the 90th percentile of its warm starts
    /// (from a start to ready again), when known.
    pub start_p90: Vec<Option<f64>>,
}

/// The window over which arrivals are compared with the profile, in seconds (10 minutes).
pub const RECENT_WINDOW: i64 = 600;

impl DemandSignal {
    /// Arrivals the profile expects in the next `seconds`: what is left of the bin under way
    /// (its expectation less the arrivals already seen in it), and every later bin that begins
    /// within them, whole (a class that logs in at the top of the hour comes at the start of its
    /// bin, not spread over it). Beyond the forecast, its last bin's rate.
    pub fn expected_within(&self, seconds: f64) -> f64 {
        let Some(&last) = self.forecast.last() else {
            return 0.0;
        };
        let step = BIN_SECONDS as f64;
        let seconds = seconds.max(0.0);
        let rest = (step - self.into_bin).clamp(0.0, step);
        let left_in_bin = (self.forecast[0] * step - self.seen_in_bin).max(0.0);
        let mut total = if rest > 0.0 {
            left_in_bin * (rest.min(seconds) / rest)
        } else {
            0.0
        };
        let mut start = rest;
        for rate in self.forecast.iter().skip(1) {
            if start >= seconds {
                return total;
            }
            total += rate * step;
            start += step;
        }
        if start < seconds {
            total += last * (seconds - start);
        }
        total
    }

    /// Whether the last minutes' arrivals are what the profile expected (at most a quarter
    /// more, and one): the profile then knows this demand, and what it expects next is trusted
    /// alone; a surprise brings the recent rate in.
    pub fn as_expected(&self) -> bool {
        !self.forecast.is_empty() && self.seen_recent <= 1.25 * self.expected_recent + 1.0
    }
}

/// The signal of a pool at `now`: its recent rate, the forecast from its profile, how the last
/// minutes compare with it, and the boot and warm start times of its configs.
pub fn signal(
    recent: &RecentDemand,
    profile: &DemandProfile,
    boots: &[Option<&BootTimes>],
    starts: &[Option<&BootTimes>],
    now: Timestamp,
    tz: &TimeZone,
) -> DemandSignal {
    // Offsets of time zones are whole multiples of 5 minutes: bins start on multiples of
    // BIN_SECONDS of Unix time. Stepping by real time (not by civil bins) skips the hour that
    // does not exist when summer time begins.
    let second = now.as_second();
    let into_bin = second.rem_euclid(BIN_SECONDS) as f64 + f64::from(now.subsec_nanosecond()) / 1e9;
    let bin_start = second - second.rem_euclid(BIN_SECONDS);
    let rate_at = |k: i64| {
        Timestamp::from_second(bin_start.saturating_add(k.saturating_mul(BIN_SECONDS)))
            .map_or(0.0, |t| {
                profile.expected(bin_of(t, tz)) / BIN_SECONDS as f64
            })
    };
    let (mut forecast, mut expected_recent) = (Vec::new(), 0.0);
    if !profile.is_empty() {
        forecast = (0..FORECAST_STEPS as i64).map(rate_at).collect();
        // The last RECENT_WINDOW seconds: this bin whole (its requests may all come at its
        // start), the bins before, and the end of the first of them.
        let step = BIN_SECONDS as f64;
        let whole = RECENT_WINDOW / BIN_SECONDS;
        expected_recent = forecast[0] * step
            + (1..whole).map(|k| rate_at(-k) * step).sum::<f64>()
            + rate_at(-whole) * (step - into_bin);
    }
    let current = bin_of(now, tz);
    let minute = second.div_euclid(60);
    let window = RECENT_WINDOW / 60;
    let seen_recent: u32 = recent
        .minutes
        .iter()
        .filter(|(m, _)| *m > minute - window && *m <= minute)
        .map(|(_, n)| n)
        .sum();
    DemandSignal {
        recent_rate: recent_rate(recent, now),
        forecast,
        into_bin,
        seen_in_bin: if recent.bin == Some(current) {
            f64::from(recent.count)
        } else {
            0.0
        },
        seen_recent: f64::from(seen_recent),
        expected_recent,
        boot_p90: boots.iter().map(|b| b.and_then(BootTimes::p90)).collect(),
        start_p90: starts.iter().map(|b| b.and_then(BootTimes::p90)).collect(),
    }
}

/// ln(k!) (exact below 20, Stirling's series above).
fn ln_factorial(k: u64) -> f64 {
    if k < 20 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    let x = k as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x.powi(3))
}

/// The least number of free slots `s` such that, when a Poisson number of requests of mean
/// `mean` arrives, the share of them that finds no slot, E\[(D − s)⁺\] / E\[D\], is at most
/// 1 − `level` (the *fill rate* of inventory theory: the share of requests served at once, which
/// is what `target_immediate_service` means). 0 for a mean below [`MIN_EXPECTED`]; `level` is
/// clamped to 0.5–0.9999.
pub fn standby_for(mean: f64, level: f64) -> u64 {
    if mean.is_nan() || mean < MIN_EXPECTED || !mean.is_finite() {
        return 0;
    }
    let level = level.clamp(0.5, 0.9999);
    let allowed = (1.0 - level) * mean;
    // Start where the lower tail is negligible (below 1e-30): up to there every slot is used
    // (P(D > k) is 1), so E[min(D, s)] is s.
    let sd = mean.sqrt();
    let mut s = (mean - 12.0 * sd - 5.0).max(0.0).floor() as u64;
    let mut term = (-mean + s as f64 * mean.ln() - ln_factorial(s)).exp();
    // P(D > s), kept directly (1 − P(D ≤ s) loses everything when the mean is small).
    let mut tail = if s == 0 {
        -(-mean).exp_m1()
    } else {
        1.0 - term
    };
    let mut used = s as f64; // E[min(D, s)]
    let stop = (mean + 40.0 * sd + 50.0) as u64;
    while mean - used > allowed && s < stop {
        used += tail;
        s += 1;
        term *= mean / s as f64;
        tail = (tail - term).max(0.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn standby_meets_the_fill_rate_and_no_less() {
        // E[(D − s)⁺] for a Poisson mean, summed directly.
        fn shortfall(mean: f64, s: u64) -> f64 {
            let mut p = (-mean).exp();
            let mut e = 0.0;
            for k in 0..2000u64 {
                if k > s {
                    e += (k - s) as f64 * p;
                }
                p *= mean / (k + 1) as f64;
            }
            e
        }
        for mean in [0.05, 0.3, 1.0, 4.0, 14.0, 60.0, 300.0] {
            for level in [0.9, 0.99, 0.999] {
                let s = standby_for(mean, level);
                assert!(
                    shortfall(mean, s) <= (1.0 - level) * mean + 1e-9,
                    "{mean} {level} {s}"
                );
                assert!(
                    s == 0 || shortfall(mean, s - 1) > (1.0 - level) * mean,
                    "{mean} {level} {s} is not the least"
                );
            }
        }
        assert_eq!(standby_for(0.0, 0.99), 0);
        // Vanishing means keep nothing, at any level (they once asked for 50).
        for tiny in [1e-300, 1e-20, 1e-14, 1e-3, 0.049] {
            assert_eq!(standby_for(tiny, 0.9999), 0, "{tiny}");
        }
        assert!(standby_for(0.05, 0.99) >= 1);
        assert_eq!(standby_for(f64::NAN, 0.99), 0);
        assert_eq!(standby_for(f64::INFINITY, 0.99), 0);
        // Large means stay near the mean (1% may wait), and are fast.
        let big = standby_for(50_000.0, 0.99);
        assert!((49_000..50_600).contains(&big), "{big}");
    }

    #[test]
    fn boot_p90_is_the_nearest_rank() {
        let mut b = BootTimes::default();
        assert_eq!(b.p90(), None);
        for s in 1..=10 {
            b.record(f64::from(s) * 10.0);
        }
        b.record(f64::NAN);
        assert_eq!(b.p90(), Some(90.0));
        for _ in 0..BOOT_SAMPLES {
            b.record(200.0);
        }
        assert_eq!(b.p90(), Some(200.0));
    }

    #[test]
    fn a_damaged_profile_is_replaced() {
        let p = DemandProfile {
            weekly: vec![1.0; 3],
            ..DemandProfile::default()
        };
        assert_eq!(p.checked(), DemandProfile::default());
        let mut p = DemandProfile::default();
        p.kind[0] = f32::NAN;
        assert_eq!(p.checked(), DemandProfile::default());
    }

    #[test]
    fn expected_within_integrates_the_forecast_from_now() {
        let mut s = DemandSignal::default();
        assert_eq!(s.expected_within(600.0), 0.0);
        s.forecast = vec![0.1, 0.2];
        assert!((s.expected_within(150.0) - 15.0).abs() < 1e-9);
        // The second bin begins within 450 s: all of it.
        assert!((s.expected_within(450.0) - 90.0).abs() < 1e-9);
        // Beyond the forecast, its last rate.
        assert!((s.expected_within(900.0) - 150.0).abs() < 1e-9);
        // 200 s into the first bin with none of its 30 seen: they may all still come in the
        // 100 s left, then the whole second bin.
        s.into_bin = 200.0;
        assert!((s.expected_within(150.0) - 90.0).abs() < 1e-9);
        assert!((s.expected_within(50.0) - 15.0).abs() < 1e-9);
        // 25 of the first bin's 30 already came: 5 are left.
        s.seen_in_bin = 25.0;
        assert!((s.expected_within(100.0) - 5.0).abs() < 1e-9);
        s.seen_in_bin = 0.0;
        s.into_bin = 0.0;
        s.forecast = vec![0.1];
        assert!((s.expected_within(400.0) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn bins_follow_the_civil_time() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 07:30 UTC is 08:30 in Berlin in winter, 09:30 in summer.
        let (_, winter) = bin_of(at("2026-01-05T07:30:00Z"), &tz);
        let (_, summer) = bin_of(at("2026-07-06T06:30:00Z"), &tz);
        assert_eq!(winter, 102);
        assert_eq!(summer, 102);
    }

    #[test]
    fn recent_rate_reads_the_last_minutes() {
        let tz = TimeZone::UTC;
        let (mut r, mut p) = (RecentDemand::default(), DemandProfile::default());
        let t0 = at("2026-11-30T08:00:30Z");
        assert_eq!(recent_rate(&r, t0), 0.0);
        for i in 0..30 {
            record_arrival(&mut r, &mut p, t0 + jiff::SignedDuration::from_secs(i), &tz);
        }
        // 30 arrivals in the 60 s of the minute under way (2 m + 59 s window).
        let rate = recent_rate(&r, at("2026-11-30T08:00:59Z"));
        assert!((rate - 30.0 / 179.0).abs() < 1e-9, "{rate}");
        // Twenty minutes later they are forgotten.
        roll(&mut r, &mut p, at("2026-11-30T08:20:00Z"), &tz);
        assert_eq!(recent_rate(&r, at("2026-11-30T08:20:00Z")), 0.0);
        assert!(r.minutes.is_empty());
    }
}
