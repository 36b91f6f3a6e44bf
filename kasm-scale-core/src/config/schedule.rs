//! [`Schedule`]: the active windows of an auto-scale config, in a named time zone.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// One active window of an auto-scale config (Kasm's `schedules`).
///
/// The window runs from `active_start_time` (inclusive) to `active_end_time` (exclusive) in wall
/// clock time of `timezone`, on each day of `days_of_the_week`. When the end is earlier than the
/// start the window crosses midnight and belongs to the day it starts on (22:00–06:00 on Friday
/// runs into Saturday morning). When they are equal the window lasts the whole day.
/// Wall-clock comparison makes it correct across daylight-saving changes: a 08:00–18:00 window
/// opens at 08:00 local time on both sides of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Start of the window, `HH:MM:SS` (or `HH:MM`), local time.
    pub active_start_time: LocalTime,
    /// End of the window, `HH:MM:SS` (or `HH:MM`), local time, exclusive.
    pub active_end_time: LocalTime,
    /// IANA time zone name, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default)]
    pub timezone: TimeZoneName,
    /// Days on which the window opens: names (`Monday`, `mon`) or ISO numbers (1 = Monday …
    /// 7 = Sunday). Default: every day.
    #[serde(default = "Weekday::all")]
    pub days_of_the_week: Vec<Weekday>,
    /// (ours) Free session slots to keep while this window is active, overriding the config's
    /// `minimum_pool_standby_sessions` (e.g. warm 20 slots from 08:00 to 09:30).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::bounds::opt_standby_sessions"
    )]
    pub minimum_pool_standby_sessions: Option<u32>,
}

impl Schedule {
    /// Whether the window is open at `instant`.
    pub fn is_active_at(&self, instant: Timestamp) -> bool {
        let local = instant.to_zoned(self.timezone.zone.clone()).datetime();
        let (date, time) = (local.date(), local.time());
        let (start, end) = (self.active_start_time.0, self.active_end_time.0);
        let on = |d: jiff::civil::Date| self.days_of_the_week.contains(&Weekday::from(d.weekday()));
        let yesterday = || date.checked_sub(1.day()).ok();
        if start < end {
            on(date) && time >= start && time < end
        } else {
            // Crosses midnight (or, when equal, lasts 24 hours from the start).
            (on(date) && time >= start) || (time < end && yesterday().is_some_and(on))
        }
    }
}

/// A wall-clock time of day, written `HH:MM:SS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(pub Time);

impl FromStr for LocalTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("`{s}` is not a time of day in HH:MM:SS form");
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        let num = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<i8>());
        let (h, m, sec) = (
            num(0).map_err(|_| bad())?,
            num(1).map_err(|_| bad())?,
            num(2).map_err(|_| bad())?,
        );
        Time::new(h, m, sec, 0).map(LocalTime).map_err(|_| {
            format!("`{s}` is not a valid time of day (hours 00-23, minutes and seconds 00-59)")
        })
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}:{:02}",
            self.0.hour(),
            self.0.minute(),
            self.0.second()
        )
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// An IANA time zone, checked against the bundled time zone database when loaded.
#[derive(Clone)]
pub struct TimeZoneName {
    name: String,
    zone: TimeZone,
}

impl TimeZoneName {
    /// Looks a zone up by its IANA name (`Europe/Berlin`, `UTC`).
    pub fn new(name: &str) -> Result<Self, String> {
        TimeZone::get(name)
            .map(|zone| Self {
                name: name.to_owned(),
                zone,
            })
            .map_err(|_| {
                format!("unknown time zone `{name}` (use an IANA name such as `Europe/Berlin`)")
            })
    }

    /// The IANA name as written in the configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rules.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }
}

impl PartialEq for TimeZoneName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZoneName({:?})", self.name)
    }
}

impl Serialize for TimeZoneName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TimeZoneName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

const DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

impl Weekday {
    /// Every day, Monday first.
    pub fn all() -> Vec<Weekday> {
        DAYS.to_vec()
    }

    /// The English name, `Monday` … `Sunday`.
    pub fn name(self) -> &'static str {
        [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ][self as usize]
    }

    /// The day for ISO number 1 (Monday) to 7 (Sunday).
    pub fn from_iso(n: i64) -> Option<Weekday> {
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| DAYS.get(i).copied())
    }
}

impl From<jiff::civil::Weekday> for Weekday {
    fn from(d: jiff::civil::Weekday) -> Self {
        DAYS[usize::from(d.to_monday_zero_offset() as u8)]
    }
}

impl FromStr for Weekday {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        DAYS.into_iter()
            .find(|d| {
                let name = d.name().to_ascii_lowercase();
                lower == name || (lower.len() >= 3 && name.starts_with(&lower))
            })
            .ok_or_else(|| format!("`{s}` is not a day of the week (Monday … Sunday, or 1 … 7)"))
    }
}

impl Serialize for Weekday {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Weekday::from_iso(n).ok_or_else(|| {
                de::Error::custom(format!("{n} is not a day number (1 = Monday … 7 = Sunday)"))
            }),
            Raw::Name(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(start: &str, end: &str, tz: &str, days: &[Weekday]) -> Schedule {
        Schedule {
            active_start_time: start.parse().unwrap(),
            active_end_time: end.parse().unwrap(),
            timezone: TimeZoneName::new(tz).unwrap(),
            days_of_the_week: days.to_vec(),
            minimum_pool_standby_sessions: None,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn workday_window_in_berlin_follows_dst() {
        let s = sched(
            "08:00:00",
            "18:00:00",
            "Europe/Berlin",
            &Weekday::all()[..5],
        );
        // Winter: UTC+1. 2026-03-27 is a Friday.
        assert!(!s.is_active_at(at("2026-03-27T06:59:59Z")));
        assert!(s.is_active_at(at("2026-03-27T07:00:00Z")));
        assert!(s.is_active_at(at("2026-03-27T16:59:59Z")));
        assert!(!s.is_active_at(at("2026-03-27T17:00:00Z")));
        // Clocks go forward on Sunday 2026-03-29; Monday 03-30 is UTC+2.
        assert!(
            !s.is_active_at(at("2026-03-30T05:30:00Z")),
            "07:30 wall clock is closed"
        );
        assert!(s.is_active_at(at("2026-03-30T06:00:00Z")));
        assert!(!s.is_active_at(at("2026-03-30T16:00:00Z")));
        // Weekend closed.
        assert!(!s.is_active_at(at("2026-03-28T10:00:00Z")));
    }

    #[test]
    fn window_in_the_dst_gap_and_overlap() {
        // US: 2026-03-08 02:00 does not exist in New York; 2026-11-01 01:00-02:00 happens twice.
        let s = sched("01:30:00", "03:00:00", "America/New_York", &Weekday::all());
        assert!(s.is_active_at(at("2026-03-08T06:30:00Z")), "01:30 EST");
        assert!(s.is_active_at(at("2026-03-08T06:59:59Z")), "01:59:59 EST");
        assert!(
            !s.is_active_at(at("2026-03-08T07:00:00Z")),
            "jumps to 03:00 EDT"
        );
        assert!(
            s.is_active_at(at("2026-11-01T05:30:00Z")),
            "first 01:30 (EDT)"
        );
        assert!(
            s.is_active_at(at("2026-11-01T06:30:00Z")),
            "second 01:30 (EST)"
        );
        assert!(s.is_active_at(at("2026-11-01T07:59:59Z")), "02:59:59 EST");
        assert!(!s.is_active_at(at("2026-11-01T08:00:00Z")));
    }

    #[test]
    fn overnight_window_belongs_to_its_start_day() {
        let s = sched("22:00", "06:00", "UTC", &[Weekday::Friday]);
        assert!(s.is_active_at(at("2026-11-27T22:00:00Z")), "Friday 22:00");
        assert!(s.is_active_at(at("2026-11-28T05:59:59Z")), "Saturday 05:59");
        assert!(!s.is_active_at(at("2026-11-28T06:00:00Z")));
        assert!(
            !s.is_active_at(at("2026-11-28T22:30:00Z")),
            "Saturday night is not Friday"
        );
        assert!(
            !s.is_active_at(at("2026-11-27T05:00:00Z")),
            "Friday morning belongs to Thursday"
        );
    }

    #[test]
    fn equal_start_and_end_is_a_whole_day() {
        let s = sched("00:00:00", "00:00:00", "UTC", &[Weekday::Sunday]);
        assert!(s.is_active_at(at("2026-11-29T00:00:00Z")));
        assert!(s.is_active_at(at("2026-11-29T23:59:59Z")));
        assert!(!s.is_active_at(at("2026-11-30T00:00:00Z")));
    }

    #[test]
    fn parsing_days_times_and_zones() {
        assert_eq!("mon".parse::<Weekday>().unwrap(), Weekday::Monday);
        assert_eq!("SUNDAY".parse::<Weekday>().unwrap(), Weekday::Sunday);
        assert!("mo".parse::<Weekday>().is_err());
        let days: Vec<Weekday> = serde_json::from_str(r#"[1, "Tue", 7]"#).unwrap();
        assert_eq!(days, [Weekday::Monday, Weekday::Tuesday, Weekday::Sunday]);
        let e = serde_json::from_str::<Weekday>("0")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("0 is not a day number"), "{e}");
        assert_eq!(
            "08:00".parse::<LocalTime>().unwrap().to_string(),
            "08:00:00"
        );
        assert!(
            "24:00:00"
                .parse::<LocalTime>()
                .unwrap_err()
                .contains("not a valid time")
        );
        assert!(
            "8:00"
                .parse::<LocalTime>()
                .unwrap_err()
                .contains("HH:MM:SS")
        );
        assert!(
            TimeZoneName::new("Europe/Berln")
                .unwrap_err()
                .contains("unknown time zone")
        );
    }
}
