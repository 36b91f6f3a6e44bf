//! Golden tests of the renderer, its errors with positions, the script variables, and a
//! property test that nothing panics on arbitrary input.

use std::collections::HashMap;

use kasm_scale_core::Secret;
use kasm_scale_core::template::{
    AdJoin, ErrorKind, ScriptVariables, Template, VARIABLE_NAMES, Variables, format,
};
use proptest::prelude::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn kasm_shell_idioms() {
    let v = vars(&[("checkin_jwt", "J.W.T"), ("server_id", "42")]);
    let t = Template::parse("export T=${{KASM_X:-{checkin_jwt}}}\nf() {{ echo {server_id}; }}\n")
        .unwrap();
    assert_eq!(
        t.render(&v).unwrap().expose().to_owned(),
        "export T=${KASM_X:-J.W.T}\nf() { echo 42; }\n"
    );
    assert_eq!(
        t.field_names().collect::<Vec<_>>(),
        ["checkin_jwt", "server_id"]
    );
}

#[test]
fn powershell_and_crlf_and_backslashes() {
    let v = vars(&[("domain", "example.local"), ("p", "C:\\Kasm\\x")]);
    let src = "$h = @{{ d = \"{domain}\" }}\r\nSet-Location {p}\\bin\r\n";
    assert_eq!(
        Template::parse(src)
            .unwrap()
            .render(&v)
            .unwrap()
            .expose()
            .to_owned(),
        "$h = @{ d = \"example.local\" }\r\nSet-Location C:\\Kasm\\x\\bin\r\n"
    );
}

#[test]
fn long_lines_and_unicode() {
    let long = "é".repeat(100_000);
    let v = vars(&[("x", "日本😀")]);
    let out = Template::parse(format!("{long}{{x}}{long}{{{{"))
        .unwrap()
        .render(&v)
        .unwrap();
    assert_eq!(out.expose(), format!("{long}日本😀{long}{{"));
}

#[test]
fn errors_carry_python_message_and_position() {
    let cases = [
        ("echo ok\n  awk '{print $4}'\n", "2:8: KeyError: 'print $4'"),
        (
            "a\nb }\n",
            "2:3: ValueError: Single '}' encountered in format string",
        ),
        ("x {a{\n", "1:3: ValueError: unexpected '{' in field name"),
        (
            "é {server_id",
            "1:3: ValueError: expected '}' before end of string",
        ),
        ("{a", "1:1: ValueError: expected '}' before end of string"),
        (
            "ok {",
            "1:4: ValueError: Single '{' encountered in format string",
        ),
        (
            "{}",
            "1:1: IndexError: Replacement index 0 out of range for positional args tuple",
        ),
        ("{a!x}", "1:1: ValueError: Unknown conversion specifier x"),
        (
            "{a:d}",
            "1:1: ValueError: Unknown format code 'd' for object of type 'str'",
        ),
        (
            "\r\n\t{a.upper}",
            "2:2: Unsupported: attribute access (`.upper`) in a field is not supported: Python would print an object, not text",
        ),
        (
            "{a:{b:{c}}}",
            "1:4: ValueError: Max string recursion exceeded",
        ),
    ];
    for (src, want) in cases {
        let got = match Template::parse(src) {
            Err(e) => e.to_string(),
            Ok(t) => t
                .render(&vars(&[("a", "x"), ("b", "y"), ("c", "z")]))
                .unwrap_err()
                .to_string(),
        };
        assert_eq!(got, want, "{src:?}");
    }
}

#[test]
fn python_order_of_errors() {
    // Python stops at the first problem it reaches: a missing name before a later brace error.
    let e = format("{missing} }", &vars(&[])).unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::KeyError, "'missing'"));
    // Parsing strictly reports the brace error at once, whatever the variables.
    let e = Template::parse("{missing} }").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValueError);
}

#[test]
fn conversions_specs_and_indexing() {
    let v: HashMap<String, Option<String>> = [
        ("a".to_owned(), Some("héllo".to_owned())),
        ("n".to_owned(), None),
        ("w".to_owned(), Some("8".to_owned())),
    ]
    .into();
    let cases = [
        ("{a!r}", "'héllo'"),
        ("{a!a}", "'h\\xe9llo'"),
        ("{a!s:>7}", "  héllo"),
        ("{a:*^{w}}", "*héllo**"),
        ("{a:.2}", "hé"),
        ("{a[1]}", "é"),
        ("{n}", "None"),
        ("{n!r:>6}", "  None"),
        ("{n:}", "None"),
    ];
    for (src, want) in cases {
        assert_eq!(format(src, &v).unwrap(), want, "{src}");
    }
    assert_eq!(
        format("{n:5}", &v).unwrap_err().python(),
        "TypeError: unsupported format string passed to NoneType.__format__"
    );
    assert_eq!(
        format("{n[0]}", &v).unwrap_err().python(),
        "TypeError: 'NoneType' object is not subscriptable"
    );
    assert_eq!(
        format("{a[9]}", &v).unwrap_err().python(),
        "IndexError: string index out of range"
    );
}

#[test]
fn a_spec_built_by_fields_is_shown_as_python_shows_it() {
    let v = vars(&[("domain", "a"), ("x", "9999"), ("y", "x")]);
    // What CPython 3.11 prints for these (checked with python3).
    assert_eq!(
        format("{domain:{{}}}", &v).unwrap_err().python(),
        "ValueError: Invalid format specifier '{}' for object of type 'str'"
    );
    assert_eq!(
        format("{domain:{y}{y}}", &v).unwrap_err().python(),
        "ValueError: Invalid format specifier 'xx' for object of type 'str'"
    );
    // Python would pad to 99,999,999 characters; we refuse, and say which width.
    assert_eq!(
        format("{domain:{x}{x}}", &v).unwrap_err().python(),
        "Unsupported: width 99999999 is larger than the 1048576 characters the renderer pads to"
    );
    for src in ["{domain:{{}}}", "{domain:{y}{y}}", "{domain:{x}{x}}"] {
        let e = format(src, &v).unwrap_err();
        assert!(!e.message().contains("<expanded spec>"), "{src}: {e}");
    }
}

#[test]
fn script_variables_render_like_kasm() {
    let mut sv = ScriptVariables {
        server_id: "0f1e".into(),
        server_hostname: "KASM-0F1E".into(),
        upstream_auth_address: "kasm.example.com".into(),
        checkin_jwt: Secret::new("tok.en.sig"),
        provider_name: "aws".into(),
        ..ScriptVariables::default()
    };
    let t = Template::parse("{server_hostname}|{connection_username}|{connection_password}|{domain}|{ad_join_credential}|{ssh_key}").unwrap();
    // Unset optional values are Python's None; AD values are empty without an AD record.
    assert_eq!(
        t.render(&sv).unwrap().expose().to_owned(),
        "KASM-0F1E|None|None|||None"
    );
    sv.active_directory = Some(AdJoin {
        domain: "example.local".into(),
        ad_join_credential: Secret::new("Xy7!one-time"),
    });
    sv.connection_password = Some(Secret::new("pw"));
    sv.extra
        .insert("fslogix_share".into(), Secret::new("\\\\fs1\\profiles"));
    assert_eq!(
        t.render(&sv).unwrap().expose().to_owned(),
        "KASM-0F1E|None|pw|example.local|Xy7!one-time|None"
    );
    assert_eq!(
        Template::parse("{fslogix_share}")
            .unwrap()
            .render(&sv)
            .unwrap()
            .expose(),
        "\\\\fs1\\profiles"
    );
    for name in VARIABLE_NAMES {
        assert!(sv.get(name).is_some(), "{name}");
    }
    let debug = format!("{sv:?}");
    for secret in ["tok.en.sig", "Xy7!one-time", "pw\"", "fs1"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(src in "\\PC{0,40}|[{}:!\\[\\].a0-9é<>^=*,_ ]{0,30}") {
        let v = vars(&[("a", "x"), ("", "empty")]);
        let _ = format(&src, &v);
        if let Ok(t) = Template::parse(src.clone()) {
            let _ = t.render(&v);
            let _ = t.field_names().count();
        }
    }

    #[test]
    fn escaped_text_round_trips(text in "\\PC{0,60}") {
        let escaped = text.replace('{', "{{").replace('}', "}}");
        let rendered = Template::parse(escaped).unwrap().render(&vars(&[])).unwrap();
        prop_assert_eq!(rendered.expose(), text);
    }
}
