//! Demand generators: a workday, a class, random arrivals.

use jiff::SignedDuration;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::trace::{Kind, TraceEvent};
use crate::config::Distribution;
use crate::memory::sample;

fn secs(s: f64) -> SignedDuration {
    super::limits::event_time(s)
}

fn push(events: &mut Vec<TraceEvent>, pool: &str, id: &str, user: &str, from: f64, to: f64) {
    if to <= from {
        return;
    }
    for (kind, at) in [(Kind::Start, from), (Kind::End, to)] {
        events.push(TraceEvent {
            at: secs(at),
            kind,
            session: id.into(),
            pool: pool.into(),
            user: Some(user.into()),
            line: 0,
        });
    }
}

fn sorted(mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
    events.sort_by_key(|e| (e.at, e.kind == Kind::Start));
    events
}

/// A workday of `users` in `pool`, times from midnight: a morning ramp (arrivals around 08:30),
/// a lunch dip (most leave for 30–60 minutes around 12:15), departures around 17:15, and an
/// evening tail (one in ten works again from about 19:30 for an hour or two).
pub fn workday(pool: &str, users: u32, seed: u64) -> Vec<TraceEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = |rng: &mut ChaCha8Rng, mean: f64, sd: f64| {
        sample(&Distribution::Normal { mean, std_dev: sd }, rng).as_secs_f64()
    };
    let mut events = Vec::new();
    for u in 0..users {
        let user = format!("user{u:04}");
        let arrive = normal(&mut rng, 8.5 * 3600.0, 40.0 * 60.0);
        let leave = normal(&mut rng, 17.25 * 3600.0, 50.0 * 60.0).max(arrive + 3600.0);
        if rng.random::<f64>() < 0.8 {
            let lunch = normal(&mut rng, 12.25 * 3600.0, 25.0 * 60.0)
                .clamp(arrive + 1800.0, leave - 1800.0);
            let back = lunch + rng.random_range(30.0..60.0) * 60.0;
            push(
                &mut events,
                pool,
                &format!("{user}-am"),
                &user,
                arrive,
                lunch,
            );
            push(&mut events, pool, &format!("{user}-pm"), &user, back, leave);
        } else {
            push(
                &mut events,
                pool,
                &format!("{user}-day"),
                &user,
                arrive,
                leave,
            );
        }
        if rng.random::<f64>() < 0.1 {
            let from = normal(&mut rng, 19.5 * 3600.0, 30.0 * 60.0).max(leave + 600.0);
            push(
                &mut events,
                pool,
                &format!("{user}-eve"),
                &user,
                from,
                from + rng.random_range(60.0..120.0) * 60.0,
            );
        }
    }
    sorted(events)
}

/// `days` workdays of `users` in `pool` one after the other (weekends included), each drawn
/// afresh (day `d` from seed `seed + d`), times from midnight of the first day. Session names
/// carry the day (`d1-user0001-am`); day 0 is [`workday`] itself.
pub fn workdays(pool: &str, users: u32, days: u32, seed: u64) -> Vec<TraceEvent> {
    let mut events = Vec::new();
    for d in 0..days {
        let shift = SignedDuration::from_hours(24 * i64::from(d));
        events.extend(
            workday(pool, users, seed.wrapping_add(u64::from(d)))
                .into_iter()
                .map(|mut e| {
                    e.at += shift;
                    if d > 0 {
                        e.session = format!("d{d}-{}", e.session);
                    }
                    e
                }),
        );
    }
    sorted(events)
}

/// A class: `users` log in within two minutes of `at` (seconds from the start) and stay for
/// `minutes`.
pub fn class(pool: &str, users: u32, at: f64, minutes: f64, seed: u64) -> Vec<TraceEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut events = Vec::new();
    for u in 0..users {
        let from = at + rng.random_range(0.0..120.0);
        push(
            &mut events,
            pool,
            &format!("class-{u:04}"),
            &format!("student{u:04}"),
            from,
            from + minutes * 60.0,
        );
    }
    sorted(events)
}

/// Random arrivals: on average `per_hour` sessions an hour for `hours`, each lasting a draw of
/// `length` seconds.
pub fn random_arrivals(
    pool: &str,
    per_hour: f64,
    hours: f64,
    length: &Distribution,
    seed: u64,
) -> Vec<TraceEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut events = Vec::new();
    let (mut t, mut n) = (0.0, 0u32);
    // No arrivals past the longest simulation.
    let end = (hours * 3600.0).min(super::limits::MAX_SIM_DURATION.as_secs_f64());
    if !(per_hour > 0.0 && per_hour.is_finite()) {
        return events;
    }
    loop {
        // Exponential gaps: a Poisson process.
        t += -(1.0 - rng.random::<f64>()).ln() * 3600.0 / per_hour;
        if t >= end {
            break;
        }
        let len = sample(length, &mut rng).as_secs_f64().max(1.0);
        push(
            &mut events,
            pool,
            &format!("r{n:06}"),
            &format!("u{n:06}"),
            t,
            t + len,
        );
        n += 1;
    }
    sorted(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_paired() {
        let day = workday("p", 200, 1);
        assert_eq!(day, workday("p", 200, 1));
        let starts = day.iter().filter(|e| e.kind == Kind::Start).count();
        assert_eq!(starts * 2, day.len());
        assert!(starts >= 200);
        let at_10 = SignedDuration::from_hours(10);
        let at_3 = SignedDuration::from_hours(3);
        let active = |t: SignedDuration| {
            day.iter()
                .filter(|e| e.at <= t)
                .map(|e| if e.kind == Kind::Start { 1i32 } else { -1 })
                .sum::<i32>()
        };
        assert!(
            active(at_10) > 150,
            "most users work at 10:00: {}",
            active(at_10)
        );
        assert_eq!(active(at_3), 0);
        assert_eq!(class("p", 30, 600.0, 45.0, 2).len(), 60);
        assert_eq!(workdays("p", 200, 1, 1), day);
        let week = workdays("p", 50, 7, 9);
        let day_6 = workday("p", 50, 15);
        let shifted: Vec<_> = week
            .iter()
            .filter(|e| e.session.starts_with("d6-"))
            .map(|e| e.at - SignedDuration::from_hours(6 * 24))
            .collect();
        assert_eq!(shifted, day_6.iter().map(|e| e.at).collect::<Vec<_>>());
        let r = random_arrivals("p", 60.0, 2.0, &Distribution::Fixed(600.0), 3);
        assert!((80..=160).contains(&(r.len() / 2)), "{}", r.len() / 2);
    }
}
