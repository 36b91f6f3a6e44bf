//! `kasm-scale render`, run as a user would.

use std::process::{Command, Stdio};

mod common;

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
        assert!(script.contains("realm join --one-time-password=\"$JOIN_PASSWORD\" \"$DOMAIN\""));
        assert!(script.contains("hostnamectl set-hostname \"${SERVER_HOSTNAME,,}.${DOMAIN}\""));
        assert!(script.contains("/api/set_server_status"));
        assert!(script.contains("INSTALL_XRDP='true'"));
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
    }
}

#[test]
fn builtin_windows_script_renders() {
    let script = render_builtin("windows", true);
    assert!(script.contains("-Options UnsecuredJoin,PasswordPass,JoinWithNewName"));
    assert!(script.contains("$ServerHostname = \"KASM-0F1E2D3C\""));
    assert!(script.contains("$Domain = \"example.local\""));
    assert!(
        script.contains(
            "@{ token = \"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln\"; status = \"running\""
        )
    );
    assert!(
        script.contains("$VhdLocations = \"\""),
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
