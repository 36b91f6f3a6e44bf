//! Durations as people write them for a simulation: `90m`, `8h`, `7d`, `1w`, `1h30m`,
//! `1.5h`, `2 days 4 hours`.
//!
//! A small parser of our own rather than jiff's: `SignedDuration`'s parser refuses days and
//! weeks (they are calendar units to jiff), and its `Span` parser reports an out-of-range number
//! in its own internal terms. Here a day is 24 hours and a week 7 days (a simulation runs on a
//! clock without time zones), negative durations are refused, and anything longer than
//! [`MAX_SIM_DURATION`] is refused with that bound, before any arithmetic can overflow.

use jiff::SignedDuration;

use super::limits::MAX_SIM_DURATION;

/// Units and their length in seconds; the first name of each is the one shown in messages.
const UNITS: &[(&[&str], u64)] = &[
    (&["w", "week", "weeks"], 7 * 86_400),
    (&["d", "day", "days"], 86_400),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["s", "sec", "secs", "second", "seconds"], 1),
];

const HINT: &str = "write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m";

/// Reads a simulation duration: one or more `<number><unit>` parts (`1h30m`, `2d 4h`), each
/// number whole or decimal (`1.5h`), units `s`, `m`, `h`, `d` (24 hours), `w` (7 days) or their
/// words (`minutes`, `days`, …). Zero is allowed; negative durations and durations over
/// [`MAX_SIM_DURATION`] are refused, each with a message that names the input.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let input = text.trim();
    if input.is_empty() {
        return Err(format!("no duration given: {HINT}"));
    }
    if input.starts_with('-') {
        return Err(format!(
            "`{input}` is negative: a simulation runs forward, {HINT}"
        ));
    }
    let rest = input.strip_prefix('+').unwrap_or(input);
    let limit_nanos = u128::from(MAX_SIM_DURATION.as_secs().unsigned_abs()) * 1_000_000_000;
    let too_long = || {
        format!(
            "`{input}` is too long: a simulation covers at most {} days",
            MAX_SIM_DURATION.as_hours() / 24
        )
    };
    let mut total: u128 = 0;
    let mut chars = rest.char_indices().peekable();
    let mut parts = 0;
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(begin, _)) = chars.peek() else {
            break;
        };
        // The number: digits, optionally a point and more digits.
        let mut end = begin;
        while let Some((i, c)) = chars.next_if(|(_, c)| c.is_ascii_digit() || *c == '.') {
            end = i + c.len_utf8();
        }
        let number = &rest[begin..end];
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let unit_begin = chars.peek().map_or(rest.len(), |(i, _)| *i);
        let mut unit_end = unit_begin;
        while let Some((i, c)) = chars.next_if(|(_, c)| c.is_alphabetic()) {
            unit_end = i + c.len_utf8();
        }
        let unit = &rest[unit_begin..unit_end];
        if number.is_empty() {
            return Err(format!("`{input}` is not a duration: {HINT}"));
        }
        if unit.is_empty() {
            return Err(format!(
                "`{input}` needs a unit after {number}: {HINT} (s, m, h, d, w)"
            ));
        }
        let Some(seconds) = UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit.to_ascii_lowercase().as_str()))
            .map(|(_, s)| *s)
        else {
            return Err(format!(
                "`{input}`: unknown unit `{unit}`; use s, m, h, d (24 hours) or w (7 days)"
            ));
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("`{input}`: `{number}` is not a number"));
        }
        let unit_nanos = u128::from(seconds) * 1_000_000_000;
        // More digits than any number within the bound has: too long, not an overflow.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 20 {
            return Err(too_long());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        // Nanosecond precision at most: later digits of a fraction are dropped.
        let digits = &fraction[..fraction.len().min(18)];
        let part = if digits.is_empty() {
            0
        } else {
            let scale = 10u128.pow(digits.len() as u32);
            digits.parse::<u128>().map_err(|_| too_long())? * unit_nanos / scale
        };
        total = whole
            .checked_mul(unit_nanos)
            .and_then(|w| w.checked_add(part))
            .and_then(|w| w.checked_add(total))
            .ok_or_else(too_long)?;
        if total > limit_nanos {
            return Err(too_long());
        }
        parts += 1;
    }
    if parts == 0 {
        return Err(format!("`{input}` is not a duration: {HINT}"));
    }
    let nanos = i128::try_from(total).map_err(|_| too_long())?;
    SignedDuration::try_from_nanos_i128(nanos).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_people_write() {
        let h = SignedDuration::from_hours;
        for (text, want) in [
            ("90m", SignedDuration::from_mins(90)),
            ("8h", h(8)),
            ("7d", h(7 * 24)),
            ("1w", h(7 * 24)),
            ("1h30m", SignedDuration::from_mins(90)),
            ("1h 30m", SignedDuration::from_mins(90)),
            ("2 days 4 hours", h(52)),
            ("1.5h", SignedDuration::from_mins(90)),
            ("0.5m", SignedDuration::from_secs(30)),
            ("45s", SignedDuration::from_secs(45)),
            ("0s", SignedDuration::ZERO),
            ("366d", MAX_SIM_DURATION),
            ("+2H", h(2)),
            ("52w 2d", MAX_SIM_DURATION),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused_in_plain_words() {
        for (text, want) in [
            (
                "-1h",
                "`-1h` is negative: a simulation runs forward, write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m",
            ),
            (
                "367d",
                "`367d` is too long: a simulation covers at most 366 days",
            ),
            (
                "99999999999h",
                "`99999999999h` is too long: a simulation covers at most 366 days",
            ),
            (
                "1000000000000000000000000000000000000000h",
                "`1000000000000000000000000000000000000000h` is too long: a simulation covers at most 366 days",
            ),
            (
                "3600",
                "`3600` needs a unit after 3600: write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m (s, m, h, d, w)",
            ),
            (
                "5y",
                "`5y`: unknown unit `y`; use s, m, h, d (24 hours) or w (7 days)",
            ),
            ("1.2.3h", "`1.2.3h`: `1.2.3` is not a number"),
            (".h", "`.h`: `.` is not a number"),
            (
                "h",
                "`h` is not a duration: write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m",
            ),
            (
                "",
                "no duration given: write a number and a unit, e.g. 90m, 8h, 7d, 1w or 1h30m",
            ),
            (
                "1e300h",
                "`1e300h`: unknown unit `e`; use s, m, h, d (24 hours) or w (7 days)",
            ),
        ] {
            assert_eq!(parse_duration(text).unwrap_err(), want, "{text:?}");
        }
    }
}
