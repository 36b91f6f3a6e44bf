//! `kasm-scale render`, run as a user would.

use std::process::{Command, Stdio};

use crate::common;

use common::{kasm_scale, text};

#[test]
fn renders_with_vars_from_the_command_line_and_a_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("script.sh");
    std::fs::write(
        &template,
        "export T=${{KASM_X:-{checkin_jwt}}}\nf() {{ echo {server_id} {user}; }}\r\n",
    )
    .unwrap();
    let vars = dir.path().join("vars.json");
    std::fs::write(
        &vars,
        r#"{"checkin_jwt": "from-file", "server_id": "42", "user": null}"#,
    )
    .unwrap();
    let t = template.to_str().unwrap();
    let out = kasm_scale(&[
        "render",
        "--template",
        t,
        "--vars",
        vars.to_str().unwrap(),
        "--var",
        "checkin_jwt=a=b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "export T=${KASM_X:-a=b}\nf() { echo 42 None; }\r\n"
    );

    let out = kasm_scale(&["render", "--template", t, "--check"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "checkin_jwt\nserver_id\nuser\n");
}

#[test]
fn template_errors_exit_1_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("bad.ps1");
    std::fs::write(&template, "$x = 1\nif ($x) { Write-Host {server_id} }\n").unwrap();
    let t = template.to_str().unwrap();
    let out = kasm_scale(&["render", "--template", t, "--var", "server_id=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{t}:2:9: ValueError: unexpected '{{' in field name\n\
             {t}:2:34: ValueError: Single '}}' encountered in format string\n"
        )
    );
    assert_eq!(text(&out.stdout), "");

    std::fs::write(&template, "echo {server_id}\n").unwrap();
    let out = kasm_scale(&["render", "--template", t]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{t}:1:6: KeyError: 'server_id'\n")
    );
    let out = kasm_scale(&["render", "--template", t, "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--check does not need the variables"
    );

    let out = kasm_scale(&["render", "--template", "/nonexistent/x.sh"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kasm_scale(&["render", "--template", t, "--var", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not NAME=VALUE"));
}

fn builtin_vars(ad: bool) -> Vec<String> {
    let mut v = vec![
        "server_id=0f1e2d3c-0000-4000-8000-000000000001",
        "server_hostname=KASM-0F1E2D3C",
        "upstream_auth_address=kasm.example.com",
        "checkin_jwt=eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln",
        "connection_username=kasm-user",
        "connection_password=p'a\"s$s `x` \\ {pw}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    if ad {
        v.push("domain=example.local".into());
        v.push("ad_join_credential=Xy7!q'$(reboot)".into());
    } else {
        v.push("domain=".into());
        v.push("ad_join_credential=".into());
    }
    v
}

fn render_builtin(name: &str, ad: bool) -> String {
    let vars = builtin_vars(ad);
    let mut args = vec!["render", "--builtin", name];
    for v in &vars {
        args.extend(["--var", v.as_str()]);
    }
    let out = kasm_scale(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn builtin_linux_script_renders_to_valid_bash() {
    for ad in [true, false] {
        let script = render_builtin("linux", ad);
        assert!(
            script.contains("realm join --one-time-password=\"$JOIN_PASSWORD\" -- \"$DOMAIN\"")
        );
        assert!(script.contains("hostnamectl set-hostname \"${SERVER_HOSTNAME,,}.${DOMAIN}\""));
        assert!(script.contains("/api/set_server_status"));
        assert!(script.contains("\nINSTALL_XRDP=true\n"));
        // `bash -n` parses without running: the secrets with quotes and $( ) stay inert.
        let mut bash = Command::new("bash")
            .arg("-n")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(bash.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        let out = bash.wait_with_output().unwrap();
        assert!(out.status.success(), "bash -n: {}", text(&out.stderr));
        // The value section hands the password back as it was given.
        assert_eq!(
            bash_value(&script, "SESSION_PASSWORD"),
            "p'a\"s$s `x` \\ {pw}"
        );
    }
}

/// The value of `$name` after bash runs the script's value section (assignments only, with
/// nothing on the PATH).
fn bash_value(script: &str, name: &str) -> String {
    let start = script.find("# --- values").expect("a value section");
    let end = script.find("# --- end of values ---").expect("its end");
    let program = format!(
        "set -euo pipefail\n{}\nprintf '%s' \"${name}\"\n",
        &script[start..end]
    );
    let bash = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("bash"))
        .find(|p| p.is_file())
        .expect("bash is needed for this test");
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bash)
        .args(["--norc", "--noprofile", "-c", &program])
        .env("PATH", empty.path())
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `--raw` prints a built-in as it is written; `--example-vars` renders it with the documented
/// sample values, quoted as a server receives them. Without either, the error says how to get
/// them.
#[test]
fn a_builtin_can_be_read_raw_or_with_example_values() {
    for name in ["windows", "linux"] {
        let out = kasm_scale(&["render", "--builtin", name, "--raw"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let raw = text(&out.stdout);
        assert!(raw.contains("{server_hostname}"), "{raw}");
        assert!(raw.contains("{{"), "escaped braces stay as written");

        let out = kasm_scale(&["render", "--builtin", name, "--example-vars"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let rendered = text(&out.stdout);
        assert!(!rendered.contains("{server_hostname}"));
        assert!(rendered.contains("KASM-0F1E2D3C"), "{rendered}");
        assert!(rendered.contains("example.local"), "{rendered}");

        // A --var still wins over the sample value.
        let out = kasm_scale(&[
            "render",
            "--builtin",
            name,
            "--example-vars",
            "--var",
            "domain=corp.example.org",
        ]);
        assert!(text(&out.stdout).contains("corp.example.org"));
        assert!(!text(&out.stdout).contains("example.local"));

        let out = kasm_scale(&["render", "--builtin", name]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap();
        assert!(first.starts_with(&format!("builtin:{name}:")), "{stderr}");
        assert!(first.ends_with("KeyError: 'server_hostname'"), "{stderr}");
        assert!(
            stderr.ends_with(&format!(
                "builtin:{name}: give its variables with --var or --vars, or --example-vars for \
                 sample values; --raw prints the script unrendered\n"
            )),
            "{stderr}"
        );
    }
    let linux = kasm_scale(&["render", "--builtin", "linux", "--example-vars"]);
    assert_eq!(bash_value(&text(&linux.stdout), "DOMAIN"), "example.local");
    // --raw takes no variables.
    let out = kasm_scale(&["render", "--builtin", "linux", "--raw", "--example-vars"]);
    assert_eq!(out.status.code(), Some(2));
    // A template file: --raw prints it, --example-vars fills Kasm's variables.
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.sh");
    std::fs::write(
        &template,
        "echo {server_id} {{x}} {provider_name} {ssh_key}\n",
    )
    .unwrap();
    let t = template.to_str().unwrap();
    let out = kasm_scale(&["render", "--template", t, "--raw"]);
    assert_eq!(
        text(&out.stdout),
        "echo {server_id} {{x}} {provider_name} {ssh_key}\n"
    );
    let out = kasm_scale(&["render", "--template", t, "--example-vars"]);
    assert_eq!(
        text(&out.stdout),
        "echo 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 {x} aws None\n",
        "a template file is rendered raw, as Kasm does"
    );
}

#[test]
fn builtin_windows_script_renders() {
    let script = render_builtin("windows", true);
    assert!(script.contains("-Options UnsecuredJoin,PasswordPass,JoinWithNewName"));
    assert!(script.contains("\n$ServerHostname = 'KASM-0F1E2D3C'\n"));
    assert!(script.contains("\n$Domain = 'example.local'\n"));
    assert!(script.contains("\n$CheckinToken = 'eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln'\n"));
    assert!(script.contains("\n$SessionPasswordText = 'p''a\"s$s `x` \\ {pw}'\n"));
    assert!(script.contains("\n$JoinPasswordText = 'Xy7!q''$(reboot)'\n"));
    assert!(
        script.contains("\n$VhdLocations = ''\n"),
        "FSLogix is off unless a share is given"
    );
    assert!(
        !script.contains("{{") && !script.contains("}}"),
        "every escaped brace is rendered"
    );
    let out = kasm_scale(&["render", "--builtin", "windws"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown built-in script `windws`; known: windows, linux"));
}

/// An unknown name on line 3, a lone `{` on line 13 and a lone `}` on line 14.
fn three_mistakes() -> String {
    let mut text = String::from("#!/bin/bash\nset -e\necho {server_nam}\n");
    for i in 4..13 {
        text.push_str(&format!("echo line{i}\n"));
    }
    text.push_str("echo \"{\" ; echo {server_id}\necho done}\n");
    text
}

#[test]
fn the_first_error_is_pythons_and_every_other_problem_follows() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("three.sh");
    std::fs::write(&template, three_mistakes()).unwrap();
    let t = template.to_str().unwrap();
    let out = kasm_scale(&["render", "--template", t, "--var", "server_id=1"]);
    assert_eq!(out.status.code(), Some(1));
    // Python's `format` raises the KeyError of line 3 first; the brace errors come after it.
    assert_eq!(
        text(&out.stderr),
        format!(
            "{t}:3:6: KeyError: 'server_nam'\n\
             {t}:13:7: ValueError: unexpected '{{' in field name\n\
             {t}:14:10: ValueError: Single '}}' encountered in format string\n"
        )
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn check_lists_what_fails_whatever_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("three.sh");
    std::fs::write(&template, three_mistakes()).unwrap();
    let t = template.to_str().unwrap();
    // No variables are known: the unknown name is not a problem, the braces are.
    let out = kasm_scale(&["render", "--template", t, "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{t}:13:7: ValueError: unexpected '{{' in field name\n\
             {t}:14:10: ValueError: Single '}}' encountered in format string\n"
        )
    );
    assert_eq!(text(&out.stdout), "");

    std::fs::write(&template, "} ".repeat(150)).unwrap();
    let out = kasm_scale(&["render", "--template", t, "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 101);
    assert_eq!(
        lines[99],
        format!("{t}:1:199: ValueError: Single '}}' encountered in format string")
    );
    assert_eq!(
        lines[100],
        format!("{t}: more problems not listed: the check stops after 100")
    );
}
