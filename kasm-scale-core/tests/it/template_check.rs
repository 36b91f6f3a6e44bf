//! `template::check` and `check_static`: Python's error first, then every other problem.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kasm_scale_core::Secret;
use kasm_scale_core::template::{
    MAX_PROBLEMS, ScriptVariables, Template, check, check_static, format,
};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `LINE:COL: Class: message` of every problem.
fn listed(d: &kasm_scale_core::template::Diagnostics) -> Vec<String> {
    d.errors().iter().map(ToString::to_string).collect()
}

#[test]
fn an_unknown_name_before_a_brace_error_comes_first() {
    let mut script = String::from("#!/bin/bash\nset -e\necho {server_nam}\n");
    for i in 4..13 {
        script.push_str(&format!("echo line{i}\n"));
    }
    script.push_str("echo \"{\" ; echo {server_id}\necho done}\n");
    let v = vars(&[("server_id", "1")]);
    let d = check(&script, &v);
    assert_eq!(
        listed(&d),
        [
            "3:6: KeyError: 'server_nam'",
            "13:7: ValueError: unexpected '{' in field name",
            "14:10: ValueError: Single '}' encountered in format string",
        ]
    );
    assert_eq!(d.first(), format(&script, &v).err().as_ref());
    assert!(!d.is_truncated());
    // Parsing strictly still reports the brace error, whatever the variables.
    assert_eq!(
        Template::parse(script.as_str()).unwrap_err().to_string(),
        "13:7: ValueError: unexpected '{' in field name"
    );
    // Without the variables: only what fails whatever their values.
    assert_eq!(
        listed(&check_static(&script)),
        [
            "13:7: ValueError: unexpected '{' in field name",
            "14:10: ValueError: Single '}' encountered in format string",
        ]
    );
}

#[test]
fn every_field_is_judged_with_the_variables() {
    let v = vars(&[("a", "héllo"), ("w", "7")]);
    let script = "{a[9]} {a!x} {} {b} {b}\n{a:{nope}} {a:{w}} {a[x]} }";
    assert_eq!(
        listed(&check(script, &v)),
        [
            "1:1: IndexError: string index out of range",
            "1:8: ValueError: Unknown conversion specifier x",
            "1:14: IndexError: Replacement index 0 out of range for positional args tuple",
            "1:17: KeyError: 'b'",
            "1:21: KeyError: 'b'",
            "2:4: KeyError: 'nope'",
            "2:20: TypeError: string indices must be integers, not 'str'",
            "2:27: ValueError: Single '}' encountered in format string",
        ]
    );
}

#[test]
fn a_field_with_an_unknown_name_also_reports_the_rest_of_it() {
    let v = vars(&[("w", "7")]);
    // The conversion, an index with a name, unknown names in the spec: Python raises each in
    // turn once the one before is fixed.
    assert_eq!(
        listed(&check("{nope!x} {nope[k]}", &v)),
        [
            "1:1: KeyError: 'nope'",
            "1:1: ValueError: Unknown conversion specifier x",
            "1:10: KeyError: 'nope'",
            "1:10: TypeError: string indices must be integers, not 'str'",
        ]
    );
    assert_eq!(
        listed(&check("{nope:{w}{also!z}{w:{w}}}", &v)),
        [
            "1:1: KeyError: 'nope'",
            "1:10: KeyError: 'also'",
            "1:10: ValueError: Unknown conversion specifier z",
        ],
        "inside the spec, the name is looked up before the conversion is checked"
    );
    assert_eq!(
        listed(&check("{nope:{w}{w:{w}}}", &v)),
        [
            "1:1: KeyError: 'nope'",
            "1:10: ValueError: Max string recursion exceeded",
        ]
    );
    assert_eq!(
        listed(&check("{a:{ {w}}}", &vars(&[("a", "x"), ("w", "7")]))),
        ["1:4: ValueError: unexpected '{' in field name"],
        "a syntax error inside a nested spec is reported where it is"
    );
}

#[test]
fn a_clean_template_has_no_problem() {
    let v = vars(&[("checkin_jwt", "J"), ("server_id", "42")]);
    let script = "export T=${{KASM_X:-{checkin_jwt}}}\nf() {{ echo {server_id:>{server_id}}; }}\n";
    assert!(check(script, &v).is_empty());
    assert!(check_static(script).is_empty());
    assert!(check_static("{unknown_is_fine_without_variables}").is_empty());
}

#[test]
fn a_text_of_errors_stops_at_the_limit_quickly() {
    // Every `{` opens a spec that runs to the end: recovering rescans the rest each time.
    let hostile = "{:".repeat(200_000);
    let started = Instant::now();
    let d = check(&hostile, &vars(&[]));
    assert_eq!(d.len(), MAX_PROBLEMS);
    assert!(d.is_truncated());
    assert!(d.to_string().ends_with("(stopped after 100 problems)"));
    let braces = "} ".repeat(100_000);
    let d = check_static(&braces);
    assert_eq!(d.len(), MAX_PROBLEMS);
    assert!(d.is_truncated());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let just_enough = "} ".repeat(MAX_PROBLEMS);
    let d = check_static(&just_enough);
    assert_eq!((d.len(), d.is_truncated()), (MAX_PROBLEMS, false));
}

#[test]
fn secrets_stay_out_of_the_problems() {
    // A spec built from a secret value is not quoted: the token, and every user-defined
    // variable of a configuration (which it holds as secrets).
    let mut v = ScriptVariables {
        server_id: "x".into(),
        checkin_jwt: Secret::new("s3cr3t-TOKEN"),
        ..ScriptVariables::default()
    };
    v.extra.insert("share".into(), Secret::new("s3cr3t-share"));
    for (template, name) in [
        ("{server_id:{checkin_jwt}} {missing}", "checkin_jwt"),
        ("{server_id:{share}} {missing}", "share"),
    ] {
        let d = check(template, &v);
        let text = d.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.starts_with(&format!(
                "1:1: ValueError: the format spec built from `{name}` is invalid (a secret: its \
                 text is not shown)"
            )),
            "{text}"
        );
        assert_eq!(d.len(), 2);
        assert!(format!("{d:?}").find("s3cr3t").is_none());
    }
    // A value that is not a secret is shown as Python shows it.
    let d = check(
        "{server_id:{server_hostname}{server_hostname}}",
        &ScriptVariables {
            server_id: "x".into(),
            server_hostname: "KASM".into(),
            ..ScriptVariables::default()
        },
    );
    assert_eq!(
        d.to_string(),
        "1:1: ValueError: Invalid format specifier 'KASMKASM' for object of type 'str'"
    );
}
