//! Demand traces: when sessions start and end.
//!
//! CSV, one event a line: `time,event,session,pool[,user]`, `event` being `start`, `end` or
//! `reconnect` (ours: the session's user, disconnected, asks for a session again while it is
//! kept), and `time` either RFC 3339 or seconds from the start of the simulation. A first line
//! `time,event,session,pool,user` (or without `user`) is a header and skipped.

use std::collections::HashMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

/// Whether a session starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A user asks for a session.
    Start,
    /// The user leaves.
    End,
    /// (ours) The user of a session that goes on, disconnected, asks for a session again: a
    /// reconnect (see [`super::Reconnects`]).
    Reconnect,
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Time from the start of the simulation.
    pub at: SignedDuration,
    /// Start or end.
    pub kind: Kind,
    /// The session's name in the trace (pairs a start with its end).
    pub session: String,
    /// The pool.
    pub pool: String,
    /// The user, if given.
    pub user: Option<String>,
    /// The event's 1-based line in the trace file; 0 for a generated event.
    pub line: u64,
}

/// A trace line that cannot be read, or a trace without events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
pub struct TraceError {
    /// 1-based line number; 0 when the problem is the trace as a whole (no events).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Start => "start",
            Kind::End => "end",
            Kind::Reconnect => "reconnect",
        })
    }
}

/// Reads a trace; times in RFC 3339 are taken relative to `start`. The events come back sorted
/// by time (ends, then reconnects, then starts at the same instant), and every session starts
/// once, before it ends once; a reconnect comes after its session's start and before its end,
/// and has a user (its own or its start's). A trace without events (empty, only comments or
/// only the header) is an error: it would measure nothing.
pub fn parse_trace(text: &str, start: Timestamp) -> Result<Vec<TraceEvent>, TraceError> {
    // One event a line, read line by line so that every message names the line in the file
    // (the CSV reader's own count leaves comment and blank lines out).
    let mut events = Vec::new();
    let mut first = true;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .buffer_capacity(raw.len().clamp(64, 8 * 1024))
            .from_reader(raw.as_bytes());
        let mut records = reader.records();
        let csv_error = |e: csv::Error| TraceError {
            line,
            message: e.to_string(),
        };
        let record = match records.next() {
            Some(r) => r.map_err(csv_error)?,
            None => continue,
        };
        if records.next().is_some() {
            return Err(TraceError {
                line,
                message: "holds more than one event (a carriage return inside the line?)".into(),
            });
        }
        let header = std::mem::take(&mut first);
        let err = |message: String| TraceError { line, message };
        if header && record.get(0) == Some("time") && record.get(1) == Some("event") {
            continue;
        }
        if !(4..=5).contains(&record.len()) {
            return Err(err(format!(
                "expected time,event,session,pool[,user], got {} fields",
                record.len()
            )));
        }
        let time = &record[0];
        let at = match time.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => super::limits::event_time(s),
            Ok(s) => return Err(err(format!("time {s} must be seconds ≥ 0"))),
            Err(_) => match time.parse::<Timestamp>() {
                Ok(t) if t >= start => t.duration_since(start),
                Ok(t) => {
                    return Err(err(format!(
                        "time {t} is before the start of the simulation ({start})"
                    )));
                }
                Err(_) => {
                    return Err(err(format!(
                        "`{time}` is neither seconds nor an RFC 3339 time"
                    )));
                }
            },
        };
        if let Some(problem) = super::limits::time_problem(at) {
            return Err(err(format!("time {time} {problem}")));
        }
        let kind = match &record[1] {
            "start" => Kind::Start,
            "end" => Kind::End,
            "reconnect" => Kind::Reconnect,
            other => {
                return Err(err(format!(
                    "event `{other}` must be `start`, `end` or `reconnect`"
                )));
            }
        };
        let (session, pool) = (record[2].to_owned(), record[3].to_owned());
        if session.is_empty() || pool.is_empty() {
            return Err(err("session and pool must not be empty".into()));
        }
        let user = record.get(4).filter(|u| !u.is_empty()).map(str::to_owned);
        events.push((
            line,
            TraceEvent {
                at,
                kind,
                session,
                pool,
                user,
                line,
            },
        ));
    }
    if events.is_empty() {
        return Err(TraceError {
            line: 0,
            message: "the trace has no events: expected lines `time,event,session,pool[,user]` \
                      after the optional header"
                .into(),
        });
    }
    // Each session: one start, then one end at the same time or later; its reconnects in
    // between, strictly.
    let mut seen: HashMap<&str, (Kind, SignedDuration)> = HashMap::new();
    let mut users: HashMap<&str, Option<&str>> = HashMap::new();
    let mut last_reconnect: HashMap<&str, SignedDuration> = HashMap::new();
    for (line, e) in &events {
        let err = |message: String| TraceError {
            line: *line,
            message,
        };
        if e.kind == Kind::Reconnect {
            match seen.get(e.session.as_str()) {
                Some((Kind::Start, at)) if *at < e.at => {}
                Some((Kind::Start, _)) | None => {
                    return Err(err(format!(
                        "session `{}` reconnects before it starts (a reconnect comes after its \
                         start)",
                        e.session
                    )));
                }
                Some(_) => {
                    return Err(err(format!(
                        "session `{}` reconnects after it ended",
                        e.session
                    )));
                }
            }
            if e.user.is_none() && users.get(e.session.as_str()).copied().flatten().is_none() {
                return Err(err(format!(
                    "the reconnect of session `{}` needs its user (on this line or its start)",
                    e.session
                )));
            }
            let last = last_reconnect.entry(&e.session).or_insert(e.at);
            *last = (*last).max(e.at);
            continue;
        }
        if e.kind == Kind::End
            && let Some(r) = last_reconnect.get(e.session.as_str())
            && *r >= e.at
        {
            return Err(err(format!(
                "session `{}` ends at or before its reconnect at {r:#}",
                e.session
            )));
        }
        if e.kind == Kind::Start {
            users.insert(&e.session, e.user.as_deref());
        }
        match (seen.get(e.session.as_str()), e.kind) {
            (None, Kind::Start) => {}
            (None, Kind::End) => {
                return Err(err(format!(
                    "session `{}` ends before it starts",
                    e.session
                )));
            }
            (Some((Kind::Start, at)), Kind::End) if *at <= e.at => {}
            (Some((Kind::Start, _)), Kind::End) => {
                return Err(err(format!(
                    "session `{}` ends before it starts",
                    e.session
                )));
            }
            (Some(_), Kind::Start) => {
                return Err(err(format!("session `{}` starts twice", e.session)));
            }
            (Some((Kind::End, _)), Kind::End) => {
                return Err(err(format!("session `{}` ends twice", e.session)));
            }
            // Reconnects were checked above, and none is recorded.
            (Some((Kind::Reconnect, _)), _) | (_, Kind::Reconnect) => {}
        }
        seen.insert(&e.session, (e.kind, e.at));
    }
    let mut events: Vec<TraceEvent> = events.into_iter().map(|(_, e)| e).collect();
    // A reconnect without a user takes its start's.
    let starts: HashMap<String, Option<String>> = events
        .iter()
        .filter(|e| e.kind == Kind::Start)
        .map(|e| (e.session.clone(), e.user.clone()))
        .collect();
    for e in events
        .iter_mut()
        .filter(|e| e.kind == Kind::Reconnect && e.user.is_none())
    {
        e.user = starts.get(&e.session).cloned().flatten();
    }
    sort(&mut events);
    Ok(events)
}

/// Sorts events by time; at one instant ends first, then reconnects, then starts (a stable
/// sort: otherwise in their order).
pub(crate) fn sort(events: &mut [TraceEvent]) {
    events.sort_by_key(|e| {
        let rank = match e.kind {
            Kind::End => 0u8,
            Kind::Reconnect => 1,
            Kind::Start => 2,
        };
        (e.at, rank)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Timestamp {
        "2026-11-30T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn reads_seconds_and_rfc3339() {
        let text = "time,event,session,pool,user\n0,start,a,p,alice\n2026-11-30T08:10:00Z,end,a,p\n# a comment\n30.5,start,b,p\n";
        let t = parse_trace(text, start()).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].at, t[0].user.as_deref()),
            (SignedDuration::ZERO, Some("alice"))
        );
        assert_eq!(
            (t[1].session.as_str(), t[1].at),
            ("b", SignedDuration::from_millis(30_500))
        );
        assert_eq!(
            (t[2].kind, t[2].at),
            (Kind::End, SignedDuration::from_mins(10))
        );
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let cases = [
            (
                "0,start,a,p\nsoon,end,a,p\n",
                "line 2: `soon` is neither seconds nor an RFC 3339 time",
            ),
            (
                "0,start,a,p\n5,stop,a,p\n",
                "line 2: event `stop` must be `start`, `end` or `reconnect`",
            ),
            (
                "0,start,a,p\r5,start,b,p\n",
                "line 1: holds more than one event (a carriage return inside the line?)",
            ),
            (
                "# a comment\n0,start,a,p\n\n# another\n5,stop,a,p\n",
                "line 5: event `stop` must be `start`, `end` or `reconnect`",
            ),
            (
                "0,start,a\n",
                "line 1: expected time,event,session,pool[,user], got 3 fields",
            ),
            ("0,end,a,p\n", "line 1: session `a` ends before it starts"),
            (
                "0,start,a,p\n1,start,a,p\n",
                "line 2: session `a` starts twice",
            ),
            ("-1,start,a,p\n", "line 1: time -1 must be seconds ≥ 0"),
            (
                "1e300,start,a,p\n",
                "line 1: time 1e300 must be from 0 to 31622400 seconds (366 days) after the start",
            ),
            (
                "9999-01-01T00:00:00Z,start,a,p\n",
                "line 1: time 9999-01-01T00:00:00Z must be from 0 to 31622400 seconds (366 days) after the start",
            ),
            (
                "2026-11-30T07:00:00Z,start,a,p\n",
                "line 1: time 2026-11-30T07:00:00Z is before the start of the simulation (2026-11-30T08:00:00Z)",
            ),
        ];
        for text in ["", "time,event,session,pool,user\n", "# nothing\n\n"] {
            assert_eq!(
                parse_trace(text, start()).unwrap_err().to_string(),
                "the trace has no events: expected lines `time,event,session,pool[,user]` after the optional header",
                "{text:?}"
            );
        }
        for (text, want) in cases {
            assert_eq!(
                parse_trace(text, start()).unwrap_err().to_string(),
                want,
                "{text:?}"
            );
        }
    }
}
