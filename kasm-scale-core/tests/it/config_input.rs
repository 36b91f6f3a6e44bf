//! Unusual input to the config loader (issue: hostile and unusual input): duplicate keys, YAML
//! merge keys, a byte order mark, empty documents and numbers beyond every range get a clear
//! answer with the position or the field, the same in every format.

use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::{ConfigError, Format, load_str};

fn syntax(text: &str, format: Format) -> (usize, usize, String) {
    match load_str(text, format) {
        Err(ConfigError::Syntax {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("{format:?}: a syntax error expected, got {other:?}"),
    }
}

fn invalid(text: &str, format: Format) -> Vec<String> {
    match load_str(text, format) {
        Err(ConfigError::Invalid { problems }) => problems.iter().map(|p| p.to_string()).collect(),
        other => panic!("{format:?}: invalid expected, got {other:?}"),
    }
}

#[test]
fn a_key_given_twice_is_refused_with_its_position_in_json_and_yaml() {
    let json = "{\"vm_providers\": [{\"provider\": \"memory\", \"name\": \"m\",\n  \"max_instances\": 0,\n  \"max_instances\": 8}]}";
    let (line, column, message) = syntax(json, Format::Json);
    assert_eq!(message, "duplicate key `max_instances`");
    assert_eq!(line, 3, "the second one");
    assert!(column > 1, "{column}");

    let yaml =
        "vm_providers:\n- provider: memory\n  name: m\n  max_instances: 0\n  max_instances: 8\n";
    let (line, _, message) = syntax(yaml, Format::Yaml);
    assert!(
        message.contains("duplicate") && message.contains("max_instances"),
        "{message}"
    );
    assert_eq!(line, 5, "the second one: {message}");

    // TOML refused it already; it still does.
    let toml = "[[vm_providers]]\nprovider = \"memory\"\nname = \"m\"\nmax_instances = 0\nmax_instances = 8\n";
    let (line, _, _) = syntax(toml, Format::Toml);
    assert_eq!(line, 5);
}

#[test]
fn yaml_merge_keys_apply_and_the_mapping_s_own_keys_win() {
    let yaml = r#"
base: &base
  provider: memory
  max_instances: 4
  boot_latency: { fixed: 5 }
vm_providers:
- <<: *base
  name: small
- <<: *base
  name: big
  max_instances: 9
"#;
    // `base` is not a section: the merged document is read, and `base` named as unknown.
    let problems = invalid(yaml, Format::Yaml);
    assert!(
        problems
            .iter()
            .all(|p| p.starts_with("base:") || p.starts_with("warning: pools:")),
        "{problems:?}"
    );
    let yaml = r#"
vm_providers:
- &small
  provider: memory
  name: small
  max_instances: 4
- <<: *small
  name: big
  max_instances: 9
- <<: [*small]
  name: same
"#;
    let config = load_str(yaml, Format::Yaml)
        .expect("merge keys apply")
        .config;
    let caps: Vec<(String, u32)> = config
        .vm_providers
        .iter()
        .map(|p| match p {
            VmProviderConfig::Memory(m) => (m.name.clone(), m.max_instances),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        caps,
        [
            ("small".to_owned(), 4),
            ("big".to_owned(), 9),
            ("same".to_owned(), 4)
        ]
    );
    let (_, _, message) = syntax("a:\n  <<: 3\n", Format::Yaml);
    assert!(
        message.contains("`<<` (merge key) must name a mapping"),
        "{message}"
    );
}

#[test]
fn a_byte_order_mark_is_accepted_in_every_format() {
    for (text, format) in [
        ("\u{feff}{\"pools\": []}", Format::Json),
        ("\u{feff}pools: []\n", Format::Yaml),
        ("\u{feff}zones = []\n", Format::Toml),
    ] {
        load_str(text, format).unwrap_or_else(|e| panic!("{format:?}: {e}"));
    }
}

#[test]
fn an_empty_document_is_no_pools_in_every_format() {
    for format in [Format::Json, Format::Yaml, Format::Toml] {
        for text in ["", "  \n", "\u{feff}"] {
            let loaded = load_str(text, format).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
            assert_eq!(
                warnings,
                [
                    "warning: pools: no pools defined: there is nothing to scale (an empty document reads the same in every format)"
                ],
                "{format:?} {text:?}"
            );
        }
    }
    for (text, format) in [("{}", Format::Json), ("{}", Format::Yaml)] {
        let loaded = load_str(text, format).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{format:?}");
    }
}

#[test]
fn numbers_beyond_range_say_the_range_not_the_parser_s_internals() {
    let provider = |value: &str| {
        format!("[[vm_providers]]\nprovider = \"memory\"\nname = \"m\"\nmax_instances = {value}\n")
    };
    for big in [
        "18446744073709551616",
        "99999999999999999999",
        "9223372036854775808",
    ] {
        let (line, column, message) = syntax(&provider(big), Format::Toml);
        assert_eq!((line, column), (4, 17));
        assert_eq!(
            message,
            "integer out of range: TOML integers are 64-bit (-9223372036854775808 to 9223372036854775807)"
        );
    }
    let problems = invalid(&provider("4294967296"), Format::Toml);
    assert!(
        problems.contains(
            &"vm_providers[0].max_instances: must be between 1 and 10000, got 4294967296"
                .to_owned()
        ),
        "{problems:?}"
    );
    for nan in ["nan", "inf"] {
        let problems = invalid(&provider(nan), Format::Toml);
        assert!(
            problems.iter().any(|p| p.ends_with(&format!(
                "vm_providers[0].max_instances: must be a whole number, got {}",
                if nan == "nan" { "NaN" } else { nan }
            ))),
            "{problems:?}"
        );
    }
    let problems = invalid(
        "vm_providers:\n- provider: memory\n  name: m\n  max_instances: .nan\n",
        Format::Yaml,
    );
    assert!(
        problems
            .iter()
            .any(|p| p.ends_with("must be a whole number, got NaN")),
        "{problems:?}"
    );
}
