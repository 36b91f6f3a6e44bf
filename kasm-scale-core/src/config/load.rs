//! Reading a configuration document: format detection, syntax errors with line and column, and
//! element-by-element deserialization that collects every problem instead of stopping at the
//! first.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::provider::{
    AwsVmConfig, AzureVmConfig, MemoryVmConfig, PROVIDER_KINDS, VmProviderConfig,
};
use super::tree::{self, Tree};
use super::{Config, ConfigError, Format, Problem};

/// Sections of the document, in the order they are read.
pub(crate) const SECTIONS: [&str; 8] = [
    "zones",
    "ldap_configs",
    "vm_providers",
    "pools",
    "workspaces",
    "checkin_token",
    "broker_api",
    "state_store",
];

/// Parses `text` as `format` into a JSON tree, or returns the syntax error with its position.
pub(crate) fn parse_tree(text: &str, format: Format, file: &Path) -> Result<Value, ConfigError> {
    // A byte order mark (editors on Windows write one) is not part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // An empty document is an empty table in every format (JSON would call it a syntax error).
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let syntax = |line: usize, column: usize, message: String| ConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        message,
    };
    match format {
        Format::Toml => match text.parse::<toml::Table>() {
            Ok(table) => Ok(toml_to_json(toml::Value::Table(table))),
            Err(e) => {
                let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
                Err(syntax(line, column, toml_message(e.message().trim())))
            }
        },
        Format::Json => serde_json::from_str::<tree::JsonTree>(text)
            .map(|t| t.0)
            .map_err(|e| {
                syntax(
                    e.line().max(1),
                    e.column().max(1),
                    strip_position(&e.to_string()),
                )
            }),
        Format::Yaml => match serde_yaml_ng::from_str::<Tree>(text) {
            Ok(Tree(Value::Null)) => Ok(Value::Object(Map::new())),
            Ok(Tree(v)) => Ok(v),
            Err(e) => {
                let (mut line, mut column) =
                    e.location().map_or((1, 1), |l| (l.line(), l.column()));
                let message = strip_position(&e.to_string());
                // The parser places the error at the start of the mapping: point at the key.
                if let Some(key) = message
                    .split_once("duplicate key `")
                    .and_then(|(_, rest)| rest.split_once('`'))
                    .map(|(key, _)| key)
                    && let Some(at) = second_key(text, line, column, key)
                {
                    (line, column) = at;
                }
                Err(syntax(line, column, message))
            }
        },
    }
}

/// The toml parser's message, with its internal wording for an integer beyond 64 bits replaced.
fn toml_message(message: &str) -> String {
    if message.contains(" as i128, expected") || message.contains("value was too large") {
        return format!(
            "integer out of range: TOML integers are 64-bit ({} to {})",
            i64::MIN,
            i64::MAX
        );
    }
    message.to_owned()
}

/// Where `key` is given the second time in the block mapping whose first key is at `line`,
/// `column` (1-based), if it is written one key per line.
fn second_key(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let mut seen = 0;
    for (n, row) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let indent = row.chars().take_while(|c| *c == ' ').count();
        let rest = row.trim_start_matches(' ');
        let first = n + 1 == line;
        if !first && !rest.is_empty() && !rest.starts_with('#') && indent + 1 < column {
            return None;
        }
        // The mapping's first row may start with the list's `- `.
        let start = if first { column - 1 } else { indent };
        if !first && indent + 1 != column {
            continue;
        }
        let Some(after) = row.get(start..) else {
            continue;
        };
        let named = after
            .strip_prefix(key)
            .or_else(|| after.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| after.strip_prefix(&format!("'{key}'")));
        if named.is_some_and(|r| r.trim_start().starts_with(':')) {
            seen += 1;
            if seen == 2 {
                return Some((n + 1, start + 1));
            }
        }
    }
    None
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Drops a trailing " at line N column M" that the parsers append (we report it separately).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

/// TOML to JSON, turning TOML's dates and times into their text (`08:00:00`), and `nan` and
/// `inf` into theirs (JSON has no such numbers; a number field refuses the text).
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => tree::float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// What came out of reading the tree: the elements that deserialized, the problems, the names of
/// elements that did not (so that references to them are not reported twice) and the paths of
/// values removed after a problem (so that the rules do not report them twice).
#[derive(Default)]
pub(crate) struct Read {
    pub config: Config,
    pub problems: Vec<Problem>,
    pub broken: Vec<Broken>,
    /// Paths of values that were reported and removed.
    pub removed_paths: Vec<String>,
}

/// An element (or a whole section, when `name` is `None`) that could not be read.
pub(crate) struct Broken {
    pub section: &'static str,
    pub name: Option<String>,
}

/// Deserializes every element of the tree on its own, collecting all problems.
pub(crate) fn read_tree(root: Value) -> Read {
    let mut read = Read::default();
    let Value::Object(mut root) = root else {
        read.problems.push(Problem::error(
            "",
            "the document must be a table / mapping of sections",
        ));
        read.broken.push(Broken {
            section: "",
            name: None,
        });
        return read;
    };
    let unknown: Vec<String> = root
        .keys()
        .filter(|k| !SECTIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        read.problems.push(Problem::error(
            key.clone(),
            unknown_message(&key, &SECTIONS),
        ));
        root.shift_remove(&key);
    }
    if let Some(value) = root.shift_remove("broker_api") {
        read.config.broker_api = element(
            value,
            "broker_api",
            &mut read.problems,
            &mut read.removed_paths,
        );
    }
    if let Some(value) = root.shift_remove("state_store") {
        read.config.state_store = element(
            value,
            "state_store",
            &mut read.problems,
            &mut read.removed_paths,
        );
    }
    if let Some(value) = root.shift_remove("checkin_token") {
        read.config.checkin_token = element(
            value,
            "checkin_token",
            &mut read.problems,
            &mut read.removed_paths,
        );
    }
    for section in SECTIONS {
        let items = match root.shift_remove(section) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(other) => {
                let kind = super::fields::json_kind(&other);
                read.problems.push(Problem::error(
                    section,
                    format!("must be a list, got {kind}"),
                ));
                read.broken.push(Broken {
                    section,
                    name: None,
                });
                continue;
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{section}[{i}]");
            read_item(section, item, &path, &mut read);
        }
    }
    read
}

fn read_item(section: &'static str, item: Value, path: &str, read: &mut Read) {
    let name_key = match section {
        "zones" => "zone_name",
        "pools" => "server_pool_name",
        "workspaces" => "friendly_name",
        _ => "name",
    };
    let raw_name = item
        .get(name_key)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ok = match section {
        "zones" => element(item, path, &mut read.problems, &mut read.removed_paths)
            .map(|z| read.config.zones.push(z)),
        "ldap_configs" => element(item, path, &mut read.problems, &mut read.removed_paths)
            .map(|l| read.config.ldap_configs.push(l)),
        "workspaces" => element(item, path, &mut read.problems, &mut read.removed_paths)
            .map(|w| read.config.workspaces.push(w)),
        "vm_providers" => provider(item, path, read).map(|p| read.config.vm_providers.push(p)),
        _ => pool(item, path, read),
    };
    if ok.is_none() {
        read.broken.push(Broken {
            section,
            name: raw_name,
        });
    }
}

fn provider(mut item: Value, path: &str, read: &mut Read) -> Option<VmProviderConfig> {
    let (problems, removed) = (&mut read.problems, &mut read.removed_paths);
    let Some(obj) = item.as_object_mut() else {
        problems.push(Problem::error(path, "must be a table / mapping"));
        return None;
    };
    let kind = match obj.shift_remove("provider") {
        None => {
            let msg = format!("missing field; one of {}", quoted(&PROVIDER_KINDS));
            problems.push(Problem::error(format!("{path}.provider"), msg));
            return None;
        }
        Some(Value::String(kind)) => kind,
        Some(_) => {
            let msg = format!("must be a string, one of {}", quoted(&PROVIDER_KINDS));
            problems.push(Problem::error(format!("{path}.provider"), msg));
            return None;
        }
    };
    match kind.as_str() {
        "aws" => element::<AwsVmConfig>(item, path, problems, removed).map(VmProviderConfig::Aws),
        "azure" => {
            element::<AzureVmConfig>(item, path, problems, removed).map(VmProviderConfig::Azure)
        }
        "memory" => {
            element::<MemoryVmConfig>(item, path, problems, removed).map(VmProviderConfig::Memory)
        }
        other => {
            let msg = unknown_message(other, &PROVIDER_KINDS)
                .replace("unknown field", "unknown provider");
            problems.push(Problem::error(format!("{path}.provider"), msg));
            None
        }
    }
}

fn pool(mut item: Value, path: &str, read: &mut Read) -> Option<()> {
    let configs = match item
        .as_object_mut()
        .and_then(|o| o.shift_remove("autoscale"))
    {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => {
            let kind = super::fields::json_kind(&other);
            read.problems.push(Problem::error(
                format!("{path}.autoscale"),
                format!("must be a list, got {kind}"),
            ));
            Vec::new()
        }
    };
    let pool = element::<super::Pool>(item, path, &mut read.problems, &mut read.removed_paths);
    let mut autoscale = Vec::new();
    for (j, config) in configs.into_iter().enumerate() {
        let raw_name = config
            .get("autoscale_config_name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match element(
            config,
            &format!("{path}.autoscale[{j}]"),
            &mut read.problems,
            &mut read.removed_paths,
        ) {
            Some(c) => autoscale.push(c),
            None => read.broken.push(Broken {
                section: "autoscale",
                name: raw_name,
            }),
        }
    }
    let mut pool = pool?;
    pool.autoscale = autoscale;
    read.config.pools.push(pool);
    Some(())
}

/// Deserializes one element, reporting every type error and unknown field in it: after each
/// error the offending value is removed and deserialization is tried again.
///
/// When the rest of the element still deserializes, it is returned (the problems already
/// recorded make the load fail) so that the semantic rules can check it too; the paths of the
/// removed values are added to `removed` so that those rules do not report them again.
pub(crate) fn element<T: DeserializeOwned>(
    mut value: Value,
    path: &str,
    problems: &mut Vec<Problem>,
    removed_paths: &mut Vec<String>,
) -> Option<T> {
    // Paths (in the element as written) of values removed so far, and array elements removed
    // (array path, index as written), which shift the indices serde reports afterwards.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    let mut gone: Vec<(Vec<Step>, usize)> = Vec::new();
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut now: Vec<Step> = err.path().iter().filter_map(Step::from_segment).collect();
        let message = err.inner().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            now.push(Step::Key(field.to_owned()));
            let written = as_written(&now, &gone);
            if !removed.contains(&written) {
                problems.push(Problem::error(join(path, &written), "missing (required)"));
            }
            // The struct lacking the field cannot be read: drop it and read the rest.
            now.pop();
        } else {
            if let Some((found, _)) = parse_unknown(&message, "unknown field")
                && written_last(&as_written(&now, &gone)) != found
            {
                // Inside an internally tagged enum (`kind = "file"`) serde reports the unknown
                // key without it in the path.
                now.push(Step::Key(found));
            }
            let written = as_written(&now, &gone);
            let text = if let Some((_, expected)) = parse_unknown(&message, "unknown field") {
                // The path ends with the unknown key.
                unknown_message(written_last(&written), &expected)
            } else if let Some((found, expected)) = parse_unknown(&message, "unknown variant") {
                unknown_message(&found, &expected).replace("unknown field", "unknown value")
            } else {
                tree::non_finite_message(&message).unwrap_or(message)
            };
            problems.push(Problem::error(join(path, &written), text));
        }
        let written = as_written(&now, &gone);
        if now.is_empty() || !remove_at(&mut value, &now) {
            return None;
        }
        if let Some((Step::Index(i), parent)) = written.split_last() {
            gone.push((parent.to_vec(), *i));
        }
        removed_paths.push(join(path, &written));
        removed.push(written);
    }
}

/// The last key of a path, for suggestions.
fn written_last(steps: &[Step]) -> &str {
    match steps.last() {
        Some(Step::Key(k)) => k,
        _ => "",
    }
}

/// Maps a path in the current (partly removed) element back to the element as written.
fn as_written(steps: &[Step], gone: &[(Vec<Step>, usize)]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        let mapped = match step {
            Step::Index(i) => {
                let mut taken: Vec<usize> = gone
                    .iter()
                    .filter(|(p, _)| *p == out)
                    .map(|(_, j)| *j)
                    .collect();
                taken.sort_unstable();
                let mut index = *i;
                for t in taken {
                    if t <= index {
                        index += 1;
                    }
                }
                Step::Index(index)
            }
            key => key.clone(),
        };
        out.push(mapped);
    }
    out
}

/// One step of a path inside an element.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    fn from_segment(segment: &serde_path_to_error::Segment) -> Option<Step> {
        match segment {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        }
    }
}

fn join(base: &str, steps: &[Step]) -> String {
    let mut out = base.to_owned();
    for step in steps {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn remove_at(value: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut cur = value;
    for step in parents {
        cur = match (step, cur) {
            (Step::Key(k), Value::Object(o)) => match o.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(o)) => o.shift_remove(k).is_some(),
        (Step::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`", or
/// "there are no fields") into the name and the expected names.
fn parse_unknown(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?.strip_prefix(" `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), expected))
}

/// "unknown field, did you mean `x`?" or "unknown field; expected one of `a`, `b`".
pub(crate) fn unknown_message<S: AsRef<str>>(name: &str, expected: &[S]) -> String {
    let best = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(name, e.as_ref()), e.as_ref()))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, e)) => format!("unknown field, did you mean `{e}`?"),
        None if expected.is_empty() => "unknown field".to_owned(),
        None => format!("unknown field; expected one of {}", quoted(expected)),
    }
}

fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serde_unknown_messages() {
        let (n, e) = parse_unknown(
            "unknown field `prot`, expected `port` or `host`",
            "unknown field",
        )
        .unwrap();
        assert_eq!(
            (n.as_str(), e),
            ("prot", vec!["port".to_owned(), "host".to_owned()])
        );
        let (n, e) =
            parse_unknown("unknown field `x`, there are no fields", "unknown field").unwrap();
        assert_eq!((n.as_str(), e.len()), ("x", 0));
        assert_eq!(
            unknown_message("conection_port", &["connection_port", "zone_id"]),
            "unknown field, did you mean `connection_port`?"
        );
        assert_eq!(
            unknown_message("zzz", &["a", "b"]),
            "unknown field; expected one of `a`, `b`"
        );
    }

    #[test]
    fn syntax_positions() {
        let f = Path::new("x");
        let ConfigError::Syntax { line, column, .. } =
            parse_tree("a = 1\nb = = 2\n", Format::Toml, f).unwrap_err()
        else {
            panic!()
        };
        assert_eq!((line, column), (2, 5));
        let ConfigError::Syntax {
            line,
            column,
            message,
            ..
        } = parse_tree("{\n  \"a\": ,\n}", Format::Json, f).unwrap_err()
        else {
            panic!()
        };
        assert_eq!((line, column), (2, 8));
        assert!(!message.contains("at line"), "{message}");
        let ConfigError::Syntax { line, .. } =
            parse_tree("a: [1,\nb: 2\n  - c\n", Format::Yaml, f).unwrap_err()
        else {
            panic!()
        };
        assert!(line >= 2);
    }
}
