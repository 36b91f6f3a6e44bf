//! `server_hostname_pattern` *(ours)*: the computer names of an auto-scale config's servers,
//! by an enterprise's naming policy (`VDI-{n:3}` → `VDI-001`, `VDI-002`, …).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::engine::ServerId;
use crate::traits::MAX_COMPUTER_NAME_LEN;

/// The widest placeholder: 13 digits (15 characters less a letter and one more character).
const MAX_WIDTH: usize = MAX_COMPUTER_NAME_LEN - 2;

/// How many names a pattern of only random hex digits must offer per server it may have to
/// name: a random name is then free at the first try at least 15 times in 16.
pub const HEX_HEADROOM: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Letters, digits and `-`, upper-cased.
    Literal(String),
    /// `{n:W}`: the lowest free number from 1, zero-padded to `W` digits.
    Counter(usize),
    /// `{hex:W}`: the first `W` hex digits of the server id, upper-cased.
    Hex(usize),
}

/// A parsed `server_hostname_pattern`: letters, digits and `-`, with a counter `{n:W}` and/or
/// random hex digits `{hex:W}` (from the server id). Every name it makes is a valid NetBIOS
/// computer name: at most 15 characters, letters, digits and `-`, never all digits, never
/// starting or ending with `-`. Names are upper case.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::config::HostnamePattern;
/// use kasm_scale_core::engine::ServerId;
///
/// let pattern = HostnamePattern::parse("vdi-{n:3}")?;
/// assert_eq!(pattern.capacity(), 999);
/// let id = ServerId(uuid::Uuid::from_u128(0xabcdef << 104));
/// let taken = ["VDI-001".to_owned(), "VDI-003".to_owned()];
/// let name = pattern.pick(id, |name| taken.iter().any(|t| t == name));
/// assert_eq!(name.as_deref(), Some("VDI-002")); // the lowest free number
///
/// let err = HostnamePattern::parse("DESKTOP-{n:9}").unwrap_err();
/// assert!(err.contains("17 characters"), "{err}");
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HostnamePattern {
    text: String,
    parts: Vec<Part>,
}

impl HostnamePattern {
    /// Parses and checks a pattern; the error names the position (1-based character) and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let position = text[..at].chars().count() + 1;
            match c {
                '{' => {
                    let close = text[at..].find('}').ok_or_else(|| {
                        format!("character {position}: `{{` is not closed by `}}`")
                    })?;
                    let inner = &text[at + 1..at + close];
                    while chars.peek().is_some_and(|(i, _)| *i <= at + close) {
                        chars.next();
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(placeholder(inner, position)?);
                }
                '}' => return Err(format!("character {position}: `}}` without `{{`")),
                c if c.is_ascii_alphanumeric() || c == '-' => literal.push(c.to_ascii_uppercase()),
                c => {
                    return Err(format!(
                        "character {position}: `{c}` is not allowed in a computer name (letters, \
                         digits and `-` only)"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let pattern = Self {
            text: text.to_owned(),
            parts,
        };
        pattern.check()?;
        Ok(pattern)
    }

    fn check(&self) -> Result<(), String> {
        let counters = self.parts.iter().filter(|p| matches!(p, Part::Counter(_)));
        if counters.count() > 1 {
            return Err("at most one counter `{n:W}`".to_owned());
        }
        if self.parts.iter().all(|p| matches!(p, Part::Literal(_))) {
            return Err(
                "needs a counter `{n:W}` or random hex digits `{hex:W}`: without one every \
                 server would get the same name"
                    .to_owned(),
            );
        }
        let letters = self
            .literals()
            .any(|l| l.chars().any(|c| c.is_ascii_alphabetic()));
        if !letters {
            return Err(
                "needs a letter outside the placeholders: a computer name must not be all digits"
                    .to_owned(),
            );
        }
        if self.len() > MAX_COMPUTER_NAME_LEN {
            return Err(format!(
                "makes names of {} characters; a computer name has at most {MAX_COMPUTER_NAME_LEN}",
                self.len()
            ));
        }
        let first = self.parts.first().and_then(literal_of);
        let last = self.parts.last().and_then(literal_of);
        if first.is_some_and(|l| l.starts_with('-')) || last.is_some_and(|l| l.ends_with('-')) {
            return Err("a computer name must not start or end with `-`".to_owned());
        }
        Ok(())
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(literal_of)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of every name it makes.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.len(),
                Part::Counter(w) | Part::Hex(w) => *w,
            })
            .sum()
    }

    /// Always false: a pattern makes names of at least one character.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether it has a counter (names are then numbered from 1, lowest free first).
    pub fn has_counter(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Counter(_)))
    }

    /// How many different names it can make (saturating).
    pub fn capacity(&self) -> u64 {
        self.parts.iter().fold(1u64, |n, p| match p {
            Part::Literal(_) => n,
            Part::Counter(w) => n.saturating_mul(10u64.saturating_pow(*w as u32) - 1),
            Part::Hex(w) => n.saturating_mul(16u64.saturating_pow(*w as u32)),
        })
    }

    /// The most servers it can name: all its names with a counter, a sixteenth of them when the
    /// names are random hex digits only ([`HEX_HEADROOM`]).
    pub fn servers(&self) -> u64 {
        if self.has_counter() {
            self.capacity()
        } else {
            self.capacity() / HEX_HEADROOM
        }
    }

    /// The name for counter value `n` and server `id`.
    pub fn render(&self, n: u64, id: ServerId) -> String {
        let hex = id.0.simple().to_string().to_ascii_uppercase();
        let mut name = String::with_capacity(self.len());
        for part in &self.parts {
            match part {
                Part::Literal(l) => name.push_str(l),
                Part::Counter(w) => name.push_str(&format!("{n:0w$}", w = *w)),
                Part::Hex(w) => name.push_str(&hex[..*w]),
            }
        }
        name
    }

    /// The name of a new server `id`: the lowest counter value whose name `taken` does not hold,
    /// or with no counter the one name of `id` when it is free. `None` when no name is free.
    pub fn pick(&self, id: ServerId, taken: impl Fn(&str) -> bool) -> Option<String> {
        if !self.has_counter() {
            let name = self.render(0, id);
            return (!taken(&name)).then_some(name);
        }
        let most = self
            .parts
            .iter()
            .find_map(|p| match p {
                Part::Counter(w) => Some(10u64.saturating_pow(*w as u32) - 1),
                _ => None,
            })
            .unwrap_or(0);
        (1..=most)
            .map(|n| self.render(n, id))
            .find(|name| !taken(name))
    }
}

fn literal_of(part: &Part) -> Option<&str> {
    match part {
        Part::Literal(l) => Some(l),
        _ => None,
    }
}

/// `n:W` or `hex:W` at `position` (of its `{`).
fn placeholder(inner: &str, position: usize) -> Result<Part, String> {
    let (kind, width) = inner.split_once(':').ok_or_else(|| {
        format!("character {position}: `{{{inner}}}` is not `{{n:W}}` or `{{hex:W}}`")
    })?;
    let width: usize = width
        .parse()
        .ok()
        .filter(|w| (1..=MAX_WIDTH).contains(w))
        .ok_or_else(|| {
            format!(
                "character {position}: the width `{width}` must be a number from 1 to {MAX_WIDTH}"
            )
        })?;
    match kind {
        "n" => Ok(Part::Counter(width)),
        "hex" => Ok(Part::Hex(width)),
        _ => Err(format!(
            "character {position}: `{kind}` is not a placeholder (`n` for a counter, `hex` for \
             random hex digits)"
        )),
    }
}

impl fmt::Debug for HostnamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostnamePattern({:?})", self.text)
    }
}

impl fmt::Display for HostnamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HostnamePattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostnamePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::check_computer_name;

    fn id(n: u128) -> ServerId {
        ServerId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_counter_takes_the_lowest_free_number_zero_padded() {
        let p = HostnamePattern::parse("VDI-{n:3}").unwrap();
        assert_eq!(p.pick(id(1), |_| false).as_deref(), Some("VDI-001"));
        let taken = |n: &str| n == "VDI-001" || n == "VDI-002";
        assert_eq!(p.pick(id(1), taken).as_deref(), Some("VDI-003"));
        assert_eq!(p.capacity(), 999);
        assert_eq!(p.servers(), 999);
    }

    #[test]
    fn an_exhausted_counter_names_nothing() {
        let p = HostnamePattern::parse("VDI{n:1}").unwrap();
        assert_eq!(p.pick(id(1), |_| true), None);
        assert_eq!(p.capacity(), 9);
    }

    #[test]
    fn hex_digits_come_from_the_server_id_upper_case() {
        let p = HostnamePattern::parse("pc-{hex:6}").unwrap();
        let server = id(0xabcdef12_3456_7890_abcd_ef1234567890);
        assert_eq!(p.pick(server, |_| false).as_deref(), Some("PC-ABCDEF"));
        assert_eq!(p.pick(server, |n| n == "PC-ABCDEF"), None);
        assert_eq!(p.servers(), 16u64.pow(6) / 16);
    }

    #[test]
    fn counter_and_hex_together() {
        let p = HostnamePattern::parse("W{n:2}-{hex:4}").unwrap();
        let name = p.pick(id(0x1234 << 112), |_| false).unwrap();
        assert_eq!(name, "W01-1234");
        assert_eq!(p.capacity(), 99 * 65536);
    }

    #[test]
    fn bad_patterns_say_where_and_why() {
        for (text, why) in [
            ("VDI_{n:3}", "character 4: `_` is not allowed"),
            ("VDI-{n:3", "character 5: `{` is not closed"),
            ("VDI-n3}", "character 7: `}` without `{`"),
            ("VDI-{x:3}", "character 5: `x` is not a placeholder"),
            ("VDI-{n}", "character 5: `{n}` is not"),
            ("VDI-{n:0}", "the width `0` must be a number from 1 to 13"),
            ("VDI-{n:14}", "the width `14`"),
            ("VDI", "needs a counter"),
            ("{n:3}", "needs a letter"),
            ("12-{hex:4}", "needs a letter"),
            ("DESKTOP-{n:9}", "names of 17 characters"),
            ("-VDI{n:3}", "must not start or end with `-`"),
            ("VDI{n:3}-", "must not start or end with `-`"),
            ("A{n:2}B{n:2}", "at most one counter"),
        ] {
            let err = HostnamePattern::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn every_name_of_a_valid_pattern_is_a_valid_computer_name() {
        for text in ["VDI-{n:3}", "{n:4}X", "W{hex:13}", "a-{n:2}-{hex:3}"] {
            let p = HostnamePattern::parse(text).unwrap();
            for n in [1, 7, 99] {
                check_computer_name(&p.render(n, id(u128::MAX - n as u128))).unwrap();
            }
        }
        let widest = HostnamePattern::parse("AB{n:13}X").unwrap_err();
        assert!(widest.contains("15"), "{widest}");
        let p = HostnamePattern::parse("A{n:13}").unwrap();
        check_computer_name(&p.render(9_999_999_999_999, id(1))).unwrap();
    }

    const CONFIG: &str = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "cloud"
max_instances = 100

[[pools]]
server_pool_name = "desktops"

[[pools.autoscale]]
autoscale_config_name = "desktops-cloud"
vm_provider_config_id = "cloud"
connection_type = "RDP"
"#;

    fn load(pattern: &str) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        let text = format!("{CONFIG}server_hostname_pattern = {pattern:?}\n");
        crate::config::load_str(&text, crate::config::Format::Toml)
    }

    fn problems(pattern: &str) -> Vec<String> {
        match load(pattern) {
            Err(crate::config::ConfigError::Invalid { problems }) => problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
            other => panic!("{pattern}: {other:?}"),
        }
    }

    #[test]
    fn a_pattern_loads_and_its_names_are_the_configs() {
        let config = load("vdi-{n:3}").unwrap().config;
        let (_, c) = config.autoscale_configs().next().unwrap();
        let pattern = c.server_hostname_pattern.as_ref().unwrap();
        assert_eq!(pattern.as_str(), "vdi-{n:3}");
        assert_eq!(pattern.pick(id(1), |_| false).as_deref(), Some("VDI-001"));
    }

    #[test]
    fn a_pattern_with_too_few_names_for_max_instances_is_refused_at_load() {
        let found = problems("VDI{n:1}");
        assert_eq!(
            found,
            [
                "pools[0].autoscale[0].server_hostname_pattern: `VDI{n:1}` makes 9 names; VM \
              provider config `cloud` may have 100 servers (max_instances)"
            ]
        );
        let found = problems("PC-{hex:2}");
        assert!(
            found[0].starts_with("pools[0].autoscale[0].server_hostname_pattern: `PC-{hex:2}` makes 256 random names, enough for 16 servers"),
            "{found:?}"
        );
        assert_eq!(problems("VDI{n:2}").len(), 1, "99 names for 100 servers");
        assert!(load("VDI{n:3}").is_ok(), "999 names for 100 servers");
    }

    #[test]
    fn a_bad_pattern_is_refused_at_load_with_its_path_and_position() {
        let found = problems("VDI_{n:3}");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("pools[0].autoscale[0].server_hostname_pattern: character 4: `_`"),
            "{found:?}"
        );
    }
}
