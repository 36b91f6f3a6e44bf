//! [`RolloutPolicy`] *(ours)*: how an auto-scale config replaces the servers built from an
//! older generation of its configuration (see [`super::Generation`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a config's outdated servers are replaced (`rollout = { canary = 1, max_surge = "10%",
/// pause_on_failure = true }`).
///
/// Replacements are made first and the old servers go after, so the pool never has fewer free
/// slots than it keeps without a rollout: the first `canary` servers of the new generation must
/// become ready before more are built; then at most `max_surge` servers of the new generation
/// come up at a time for the rollout. A server of the new generation that fails (its create is
/// refused, or it does not check in within `checkin_timeout`) pauses the rollout when
/// `pause_on_failure`: nothing more of the new generation is built until the operator resumes
/// it, reloads a fixed configuration, or rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Servers of the new generation that must be ready before the rest are built (0: none).
    #[serde(default = "one")]
    pub canary: u32,
    /// Servers of the new generation that come up at once for the rollout: a count, or a
    /// percentage (`"10%"`) of the config's servers, rounded up, at least 1.
    #[serde(default)]
    pub max_surge: Surge,
    /// A failed server of the new generation pauses the rollout (default true).
    #[serde(default = "yes")]
    pub pause_on_failure: bool,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self {
            canary: 1,
            max_surge: Surge::default(),
            pause_on_failure: true,
        }
    }
}

impl RolloutPolicy {
    /// Whether it is the default (left out when a configuration is written).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// [`RolloutPolicy::max_surge`]: a number of servers, or a percentage of the config's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SurgeText", try_from = "SurgeText")]
pub enum Surge {
    /// This many servers (at least 1).
    Servers(u32),
    /// This percentage (1 to 100) of the config's servers, rounded up, at least 1.
    Percent(u32),
}

impl Default for Surge {
    fn default() -> Self {
        Surge::Percent(10)
    }
}

impl Surge {
    /// Servers that may come up at once when the config has `servers` servers: at least 1.
    pub fn servers(self, servers: u32) -> u32 {
        match self {
            Surge::Servers(n) => n.max(1),
            Surge::Percent(p) => {
                let n = (u64::from(servers) * u64::from(p)).div_ceil(100);
                u32::try_from(n).unwrap_or(u32::MAX).max(1)
            }
        }
    }
}

impl fmt::Display for Surge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Surge::Servers(n) => write!(f, "{n}"),
            Surge::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How a surge is written: a whole number, or a text `"N"` / `"N%"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SurgeText {
    Count(u64),
    Text(String),
}

impl From<Surge> for SurgeText {
    fn from(s: Surge) -> Self {
        match s {
            Surge::Servers(n) => SurgeText::Count(u64::from(n)),
            Surge::Percent(_) => SurgeText::Text(s.to_string()),
        }
    }
}

impl TryFrom<SurgeText> for Surge {
    type Error = String;
    fn try_from(text: SurgeText) -> Result<Self, String> {
        let servers = |n: u64| match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(Surge::Servers(n)),
            _ => Err(format!(
                "max_surge must be at least 1 server and at most {}, got {n}",
                u32::MAX
            )),
        };
        match text {
            SurgeText::Count(n) => servers(n),
            SurgeText::Text(t) => {
                let t = t.trim();
                match t.strip_suffix('%') {
                    Some(p) => match p.trim().parse::<u32>() {
                        Ok(p @ 1..=100) => Ok(Surge::Percent(p)),
                        _ => Err(format!(
                            "max_surge {t:?}: a percentage is a whole number from 1% to 100%"
                        )),
                    },
                    None => t.parse::<u64>().map_err(|_| {
                        format!("max_surge {t:?}: write a number of servers (2) or a percentage (\"10%\")")
                    }).and_then(servers),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RolloutPolicy, String> {
        toml::from_str::<RolloutPolicy>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_counts_and_percentages() {
        assert_eq!(parse("").unwrap(), RolloutPolicy::default());
        let p = parse("canary = 0\nmax_surge = 3\npause_on_failure = false").unwrap();
        assert_eq!(
            p,
            RolloutPolicy {
                canary: 0,
                max_surge: Surge::Servers(3),
                pause_on_failure: false
            }
        );
        assert_eq!(
            parse("max_surge = \"25%\"").unwrap().max_surge,
            Surge::Percent(25)
        );
        assert_eq!(
            parse("max_surge = \"4\"").unwrap().max_surge,
            Surge::Servers(4)
        );
        assert_eq!(Surge::Percent(10).servers(0), 1);
        assert_eq!(Surge::Percent(10).servers(25), 3);
        assert_eq!(Surge::Percent(100).servers(7), 7);
        assert_eq!(Surge::Servers(5).servers(1), 5);
        let back = toml::to_string(&p).unwrap();
        assert_eq!(parse(&back).unwrap(), p);
    }

    #[test]
    fn bad_surges_say_why() {
        for (text, says) in [
            ("max_surge = 0", "at least 1"),
            ("max_surge = \"0%\"", "1% to 100%"),
            ("max_surge = \"150%\"", "1% to 100%"),
            ("max_surge = \"ten\"", "a number of servers"),
            ("canary = -1", "canary"),
            ("surge = 1", "unknown field"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
