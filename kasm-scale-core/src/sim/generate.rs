//! Demand generators: a workday, an office week, a class, a week of classes, random arrivals.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
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
    days_of(pool, users, days, seed, |_| true)
}

/// An office week (or several): like [`workdays`], but only the days that fall on Monday to
/// Friday in UTC get demand; Saturdays and Sundays stay empty. Day `d` is the 24 hours from
/// `start + d × 24 h` (usually a Monday at midnight; a start at another hour still cuts 24-hour
/// days from it, each named by the UTC weekday it begins on), and its workday is the one
/// [`workdays`] draws for that day, so the two agree on every weekday.
pub fn office_week(
    pool: &str,
    users: u32,
    days: u32,
    start: Timestamp,
    seed: u64,
) -> Vec<TraceEvent> {
    days_of(pool, users, days, seed, |d| is_weekday(start, d))
}

/// Whether day `d` from `start` (24-hour blocks) begins on Monday to Friday in UTC; a day
/// beyond the calendar's range is none.
fn is_weekday(start: Timestamp, d: u32) -> bool {
    start
        .checked_add(SignedDuration::from_hours(24 * i64::from(d)))
        .map(|t| t.to_zoned(TimeZone::UTC).weekday())
        .is_ok_and(|w| !matches!(w, Weekday::Saturday | Weekday::Sunday))
}

/// The workdays of the days `keep` accepts, each shifted to its day.
fn days_of(
    pool: &str,
    users: u32,
    days: u32,
    seed: u64,
    keep: impl Fn(u32) -> bool,
) -> Vec<TraceEvent> {
    let mut events = Vec::new();
    for d in (0..days).filter(|d| keep(*d)) {
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

/// Students in each class of [`class_week`].
pub const CLASS_SIZE: u32 = 30;

/// A school's weeks: on every day of `days` that falls on Monday to Friday in UTC (days are
/// 24-hour blocks from `start`, as in [`office_week`]), three classes of [`CLASS_SIZE`]
/// students, at 09:00, 10:00 and 11:00 from the day's start. Each student's request arrives
/// within 4 minutes after the hour (uniformly) and the session lasts 50 minutes, give or take
/// up to 5. Sessions are named `d{day}-c{hour}-s{n}` and users `student{n}` (the same
/// students in every class). Day `d` is drawn from seed `seed + d`.
pub fn class_week(pool: &str, days: u32, start: Timestamp, seed: u64) -> Vec<TraceEvent> {
    let mut events = Vec::new();
    for d in (0..days).filter(|d| is_weekday(start, *d)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(u64::from(d)));
        let day = 86_400.0 * f64::from(d);
        for hour in [9u32, 10, 11] {
            for n in 0..CLASS_SIZE {
                let from = day + f64::from(hour) * 3600.0 + rng.random_range(0.0..240.0);
                let length = 50.0 * 60.0 + rng.random_range(-300.0..=300.0);
                push(
                    &mut events,
                    pool,
                    &format!("d{d}-c{hour}-s{n}"),
                    &format!("student{n}"),
                    from,
                    from + length,
                );
            }
        }
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

    fn monday() -> Timestamp {
        "2026-11-30T00:00:00Z".parse().unwrap()
    }

    /// The days (24-hour blocks from the start) that have a session start.
    fn busy_days(events: &[TraceEvent]) -> Vec<i64> {
        let mut days: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == Kind::Start)
            .map(|e| e.at.as_secs() / 86_400)
            .collect();
        days.dedup();
        days
    }

    #[test]
    fn an_office_week_leaves_weekends_empty() {
        let week = office_week("p", 40, 9, monday(), 5);
        assert_eq!(week, office_week("p", 40, 9, monday(), 5));
        // Monday 30 November to Tuesday 8 December: Saturday 5 and Sunday 6 are days 5 and 6.
        assert_eq!(busy_days(&week), [0, 1, 2, 3, 4, 7, 8]);
        // Its weekdays are exactly those of `workdays`.
        let all = workdays("p", 40, 9, 5);
        let weekdays: Vec<_> = all
            .iter()
            .filter(|e| ![5, 6].contains(&(e.at.as_secs() / 86_400)))
            .cloned()
            .collect();
        // (An evening session of Friday may run past midnight into Saturday: day of its start.)
        let friday_late: Vec<_> = all
            .iter()
            .filter(|e| e.session.starts_with("d4-") && e.at.as_secs() >= 5 * 86_400)
            .cloned()
            .collect();
        let mut want = weekdays;
        want.extend(friday_late);
        assert_eq!(week, sorted(want));
        // A Saturday start: days 0 and 1 are the weekend; 24-hour days from 06:00.
        let saturday: Timestamp = "2026-12-05T06:00:00Z".parse().unwrap();
        assert_eq!(busy_days(&office_week("p", 10, 4, saturday, 1)), [2, 3]);
        assert!(office_week("p", 10, 2, saturday, 1).is_empty());
    }

    #[test]
    fn a_class_week_has_three_classes_of_thirty_each_workday() {
        let week = class_week("p", 7, monday(), 3);
        assert_eq!(week, class_week("p", 7, monday(), 3));
        assert_ne!(week, class_week("p", 7, monday(), 4));
        let starts: Vec<&TraceEvent> = week.iter().filter(|e| e.kind == Kind::Start).collect();
        assert_eq!(starts.len(), 5 * 3 * 30);
        assert_eq!(busy_days(&week), [0, 1, 2, 3, 4]);
        let mut ids: Vec<&str> = starts.iter().map(|e| e.session.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), starts.len(), "distinct session ids");
        for e in &starts {
            let within = e.at.as_secs_f64() % 86_400.0;
            let hour: u32 = e
                .session
                .split("-c")
                .nth(1)
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let after = within - f64::from(hour) * 3600.0;
            assert!((0.0..240.0).contains(&after), "{} at {within}", e.session);
            assert!(e.user.as_deref().unwrap().starts_with("student"));
            let end = week
                .iter()
                .find(|x| x.kind == Kind::End && x.session == e.session)
                .unwrap();
            let minutes = (end.at - e.at).as_secs_f64() / 60.0;
            assert!((45.0..=55.0).contains(&minutes), "{minutes}");
        }
        assert!(starts.iter().any(|e| e.session == "d4-c11-s29"));
    }
}
