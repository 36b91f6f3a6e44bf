//! Disconnects and reconnects *(ours)*: a user whose session disconnects comes back while the
//! session is kept, and asks the pool for a session again (trace event `reconnect`). With the
//! pool's `user_affinity` the controller answers with the session the user has, on its
//! server; [`Reconnects`] counts how each reconnect landed.

use jiff::SignedDuration;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::trace::{Kind, TraceEvent};

/// How the reconnects of a trace landed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconnects {
    /// Reconnect requests (trace events `reconnect` of a session still going).
    pub requests: u64,
    /// Those answered with the user's own session on the server it was seated on.
    pub same_server: u64,
    /// Those whose session still waited for a server, answered with the same waiting session.
    pub still_waiting: u64,
    /// Those answered with another session or another server: the user would hold two.
    pub elsewhere: u64,
    /// `same_server` in percent of the reconnects of seated sessions (`requests` −
    /// `still_waiting`); 100 when there were none.
    pub same_server_pct: f64,
}

impl Reconnects {
    /// Whether the trace had no reconnect.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    pub(crate) fn finish(mut self) -> Self {
        let seated = self.requests - self.still_waiting;
        self.same_server_pct = if seated == 0 {
            100.0
        } else {
            100.0 * self.same_server as f64 / seated as f64
        };
        self
    }
}

/// `trace` with disconnects: each session that has a user and an end disconnects once with
/// probability `share` (0 to 1), at a uniformly drawn moment of its life, and its user comes
/// back after a uniform draw of up to `within` (a `reconnect` event), if the session has not
/// ended by then. Deterministic for a seed; the events come back sorted as a trace's are.
///
/// # Examples
///
/// ```
/// use jiff::SignedDuration;
/// use kasm_scale_core::sim::{Kind, with_disconnects, workday};
///
/// let day = workday("office", 50, 1);
/// let with = with_disconnects(&day, 0.5, SignedDuration::from_mins(10), 7);
/// let reconnects = with.iter().filter(|e| e.kind == Kind::Reconnect).count();
/// assert!(reconnects > 10, "{reconnects}");
/// assert_eq!(with.len(), day.len() + reconnects);
/// ```
pub fn with_disconnects(
    trace: &[TraceEvent],
    share: f64,
    within: SignedDuration,
    seed: u64,
) -> Vec<TraceEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let within = within.as_secs_f64().max(0.0);
    let mut starts: std::collections::HashMap<&str, &TraceEvent> = Default::default();
    let mut out: Vec<TraceEvent> = trace.to_vec();
    for e in trace {
        match e.kind {
            Kind::Start => {
                starts.insert(&e.session, e);
            }
            Kind::End => {
                let Some(start) = starts.remove(e.session.as_str()) else {
                    continue;
                };
                // Every session draws the same numbers whether or not it disconnects.
                let (p, when, back) = (
                    rng.random::<f64>(),
                    rng.random::<f64>(),
                    rng.random::<f64>(),
                );
                if start.user.is_none() || p >= share {
                    continue;
                }
                let (from, to) = (start.at.as_secs_f64(), e.at.as_secs_f64());
                let at = from + when * (to - from) + back * within;
                let at = super::limits::event_time(at);
                if at <= start.at || at >= e.at {
                    continue;
                }
                out.push(TraceEvent {
                    at,
                    kind: Kind::Reconnect,
                    session: e.session.clone(),
                    pool: start.pool.clone(),
                    user: start.user.clone(),
                    line: 0,
                });
            }
            Kind::Reconnect => {}
        }
    }
    super::trace::sort(&mut out);
    out
}
