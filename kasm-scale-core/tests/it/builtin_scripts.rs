//! The built-in startup scripts receive hostile values as data, never as code.
//!
//! Both built-ins are rendered with adversarial values (quotes, `$( )`, backticks, newlines,
//! `%`, backslashes, here-string terminators, typographic quotes, other Unicode). The Linux script
//! must pass `bash -n`, and its value section, run by bash with `set -u` and no command on its
//! `PATH`, must hand back every value unchanged. The Windows script is tokenized (strings,
//! here-strings, comments, code) by a small PowerShell lexer written from the language reference
//! (`powershell/mod.rs`): the script's structure must be the same whatever the values, and each value must
//! be one string literal holding exactly the value. When `pwsh` is installed it also parses the
//! script and evaluates its value section.
//!
//! `bash` is required: without it these tests fail, saying so.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kasm_scale_core::template::{BUILTINS, Builtin, Quoting, Template, builtin};
use proptest::prelude::*;

/// Where a built-in script's value section starts and ends.
const SECTION_START: &str = "# --- values";
const SECTION_END: &str = "# --- end of values ---";

/// Variables as Python sees them: a string, or `None`.
type Vars = HashMap<String, Option<String>>;

/// The lines between the value-section markers.
fn section(text: &str) -> &str {
    let start = text.find(SECTION_START).expect("a value section");
    let start = start + text[start..].find('\n').expect("a line after the marker") + 1;
    let end = start
        + text[start..]
            .find(SECTION_END)
            .expect("the end of the values");
    &text[start..end]
}

/// `(script variable, template field)` of each assignment of the template's value section.
fn assignments(b: &Builtin) -> Vec<(String, String)> {
    section(b.text)
        .lines()
        .map(|line| {
            let (lhs, rhs) = line.split_once('=').expect("an assignment");
            let field = rhs.trim();
            let name = field
                .strip_prefix('{')
                .and_then(|f| f.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{}: `{line}` must assign one field", b.name));
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}: `{line}` must assign a plain field",
                b.name
            );
            (
                lhs.trim().trim_start_matches('$').to_owned(),
                name.to_owned(),
            )
        })
        .collect()
}

/// The absolute path of a program on this machine's `PATH`.
fn program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// bash, or a failing test that says why.
fn bash() -> PathBuf {
    program("bash").unwrap_or_else(|| {
        panic!(
            "bash is not installed: the built-in Linux script cannot be checked \
             (install bash; .ci/run does)"
        )
    })
}

fn run(program: &PathBuf, args: &[&str], stdin: &str) -> std::process::Output {
    let empty = tempfile::tempdir().unwrap();
    let mut child = Command::new(program)
        .args(args)
        // Nothing but the shell's builtins: an injected command would find no program.
        .env_clear()
        .env("PATH", empty.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the interpreter");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn render(b: &Builtin, vars: &Vars) -> String {
    let template = Template::parse(b.text).expect("a built-in parses");
    template
        .render_quoted(vars, b.quoting)
        .unwrap_or_else(|e| panic!("{}: {e}", b.name))
        .expose()
        .to_owned()
}

/// Every field of `b` with the value `value(field)`.
fn vars_for(b: &Builtin, mut value: impl FnMut(usize, &str) -> Option<String>) -> Vars {
    let template = Template::parse(b.text).unwrap();
    template
        .field_names()
        .enumerate()
        .map(|(i, name)| (name.to_owned(), value(i, name)))
        .collect()
}

/// `bash -n` on the whole script, then its value section run with `set -u`: the values the
/// variables hold, in the order of `names`.
fn bash_values(script: &str, names: &[String]) -> Vec<String> {
    let bash = bash();
    let parsed = run(&bash, &["-n"], script);
    assert!(
        parsed.status.success(),
        "bash -n: {}\n{script}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let print: String = names.iter().map(|n| format!(" \"${n}\"")).collect();
    let program = format!(
        "set -euo pipefail\n{}\nprintf '%s\\0'{print}\n",
        section(script)
    );
    let out = run(&bash, &["--norc", "--noprofile", "-s"], &program);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "the value section fails: {}\n{program}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 values");
    let mut values: Vec<String> = text.split('\0').map(str::to_owned).collect();
    assert_eq!(values.pop().as_deref(), Some(""), "NUL-terminated values");
    values
}

fn check_linux(vars: &Vars) {
    let b = builtin("linux").unwrap();
    let script = render(b, vars);
    let pairs = assignments(b);
    let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let got = bash_values(&script, &names);
    for ((name, field), got) in pairs.iter().zip(&got) {
        let want = vars[field].as_deref().unwrap_or("None");
        assert_eq!(got, want, "${name} from {{{field}}}");
    }
}

// ---------------------------------------------------------------------------------------------
// PowerShell: a lexer of the parts of the language that decide what is code and what is data
// (in `powershell/mod.rs`).

use crate::powershell;

use powershell::{Token, lex};

/// A value that marks where field `i` lands.
fn sentinel(i: usize) -> String {
    format!("kasm-value-{i}")
}

fn check_windows(vars: &Vars) {
    let b = builtin("windows").unwrap();
    // Where the fields land, with values that cannot be mistaken.
    let names: Vec<String> = Template::parse(b.text)
        .unwrap()
        .field_names()
        .map(str::to_owned)
        .collect();
    let marked = vars_for(b, |i, _| Some(sentinel(i)));
    let marked_script = render(b, &marked);
    let shape = lex(&marked_script);
    let literals = shape
        .iter()
        .filter(|t| matches!(t, Token::Literal(v) if v.starts_with("kasm-value-")))
        .count();
    assert_eq!(
        literals,
        marked_script.matches("kasm-value-").count(),
        "every value is a string literal of its own, in code (not in a string or comment)"
    );
    assert!(literals >= names.len(), "every field is used");

    // The same structure with the hostile values, each one literal holding the value exactly.
    let script = render(b, vars);
    let expected: Vec<Token> = shape
        .into_iter()
        .map(|t| match t {
            Token::Literal(v) if v.starts_with("kasm-value-") => {
                let i: usize = v["kasm-value-".len()..].parse().unwrap();
                Token::Literal(vars[&names[i]].clone().unwrap_or_else(|| "None".into()))
            }
            other => other,
        })
        .collect();
    assert_eq!(lex(&script), expected, "script:\n{script}");
    // No value writes a `<powershell>` or `<script>` tag for EC2 to find.
    for c in ['<', '>'] {
        assert_eq!(
            script.matches(c).count(),
            marked_script.matches(c).count(),
            "no `{c}` comes from a value"
        );
    }
    if let Some(pwsh) = program("pwsh") {
        check_with_pwsh(&pwsh, b, &script, vars);
    }
}

/// `pwsh` parses the script without error, and its value section, evaluated, holds the values.
fn check_with_pwsh(pwsh: &PathBuf, b: &Builtin, script: &str, vars: &Vars) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.ps1");
    std::fs::write(&file, script).unwrap();
    let values = dir.path().join("values.ps1");
    std::fs::write(&values, section(script)).unwrap();
    let pairs = assignments(b);
    let print: String = pairs
        .iter()
        .map(|(n, _)| format!("[Console]::Out.Write(${n} + [char]0)\n"))
        .collect();
    let command = format!(
        "$errors = $null; $tokens = $null\n\
         [void][System.Management.Automation.Language.Parser]::ParseFile('{}', [ref]$tokens, [ref]$errors)\n\
         if ($errors.Count) {{ $errors | ForEach-Object {{ [Console]::Error.WriteLine($_.ToString()) }}; exit 1 }}\n\
         . '{}'\n{print}",
        file.display(),
        values.display()
    );
    let out = Command::new(pwsh)
        .args(["-NoProfile", "-NonInteractive", "-Command", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(command.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run pwsh");
    assert!(
        out.status.success(),
        "pwsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = text.split('\0').collect();
    for ((name, field), got) in pairs.iter().zip(got) {
        let want = vars[field].as_deref().unwrap_or("None");
        assert_eq!(got, want, "${name} from {{{field}}}");
    }
}

// ---------------------------------------------------------------------------------------------

/// Values an attacker or a careless admin could write.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'",
        "\"",
        "$(",
        ")",
        "`",
        "\n",
        "\r\n",
        "%",
        "%PATH%",
        "\\",
        "\\'",
        "${HOME}",
        "$x",
        "é",
        "日本",
        "\u{2019}",
        "\u{2018}",
        "\u{201c}",
        "ё",
        "'@",
        "\n'@\n",
        "\n\"@\n",
        "KASM_SCALE_EOF",
        "\nKASM_SCALE_EOF\n",
        "; echo INJECTED;",
        "x'; echo INJECTED; '",
        "&&",
        "|",
        "#",
        "<#",
        "{",
        "}",
        "{{",
        "!",
        "^",
        " ",
        "\t",
        "*",
        "~",
        "=",
        "-n",
        "None",
        "\u{a0}",
        "😀",
        "\u{2028}",
        "\u{7f}",
        "\u{1b}[31m",
        "abc",
        "kasm-user",
    ]);
    prop_oneof![
        4 => prop::collection::vec(pieces, 0..8).prop_map(|v| v.concat()),
        1 => "[^\\x00]{0,24}",
    ]
}

/// Values for every field of both built-ins (a field may be `None`, as Kasm renders unset
/// optional values).
fn hostile_vars() -> impl Strategy<Value = HashMap<String, Option<String>>> {
    let mut names: Vec<String> = BUILTINS
        .iter()
        .flat_map(|b| {
            Template::parse(b.text)
                .unwrap()
                .field_names()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    prop::collection::vec(prop::option::weighted(0.9, hostile()), names.len())
        .prop_map(move |values| names.iter().cloned().zip(values).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hostile_values_reach_the_linux_script_as_data(vars in hostile_vars()) {
        check_linux(&vars);
    }

    #[test]
    fn hostile_values_reach_the_windows_script_as_data(vars in hostile_vars()) {
        check_windows(&vars);
    }
}

/// The values of issue 18, one by one, in every field.
#[test]
fn the_reported_values_are_data() {
    for value in [
        "o'brien",
        "x'; echo INJECTED; '",
        "$(touch /tmp/kasm-scale-injected)",
        "\"; Write-Host INJECTED; \"",
        "`$(Write-Host INJECTED)`",
        "line one\nline two\n",
        "\n'@\nWrite-Host INJECTED\n'@\n",
        "50%",
        "</powershell><script>calc.exe</script><powershell>",
        "C:\\Users\\x\\",
        "",
    ] {
        for b in &BUILTINS {
            let vars = vars_for(b, |_, _| Some(value.to_owned()));
            match b.quoting {
                Quoting::Posix => check_linux(&vars),
                Quoting::PowerShell => check_windows(&vars),
            }
        }
    }
}

/// Each field of a built-in is used only in its value section, alone on the right of an
/// assignment: everywhere else the script uses the variables.
#[test]
fn fields_appear_only_in_the_value_sections() {
    for b in &BUILTINS {
        let template = Template::parse(b.text).unwrap();
        let assigned: Vec<String> = assignments(b).into_iter().map(|(_, f)| f).collect();
        let mut used: Vec<&str> = template.field_names().collect();
        used.sort_unstable();
        let mut sorted = assigned.clone();
        sorted.sort_unstable();
        assert_eq!(used, sorted, "{}: the fields are the assigned ones", b.name);
        let outside = b.text.replace(section(b.text), "");
        let rest = Template::parse(outside).unwrap();
        assert_eq!(
            rest.field_names().count(),
            0,
            "{}: no field outside the value section",
            b.name
        );
    }
}

/// A NUL cannot be carried by a bash variable: rendering refuses it, naming the variable but
/// not the value.
#[test]
fn a_nul_character_is_refused_for_bash() {
    let b = builtin("linux").unwrap();
    let vars = vars_for(b, |_, name| {
        Some(if name == "connection_password" {
            "se\0cret".to_owned()
        } else {
            "x".to_owned()
        })
    });
    let e = Template::parse(b.text)
        .unwrap()
        .render_quoted(&vars, Quoting::Posix)
        .unwrap_err();
    assert_eq!(
        e.python(),
        "Unsupported: the value of `connection_password` holds a NUL character, which a bash \
         script cannot carry"
    );
    assert!(!format!("{e:?}").contains("se\0cret"));
    // PowerShell carries it (as base64).
    let w = builtin("windows").unwrap();
    let vars = vars_for(w, |_, _| Some("a\0b".to_owned()));
    check_windows(&vars);
}

/// A configuration whose memory provider runs the built-in `script` for one autoscale config
/// with `user` and `password`; the script's own variable (`install_xrdp` or
/// `fslogix_vhd_locations`) is `fa'lse`.
fn config_text(script: &str, user: &str, password: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    // A variable of the script's own.
    let extra = if script == "linux" {
        "install_xrdp"
    } else {
        "fslogix_vhd_locations"
    };
    format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 2
startup_script_builtin = "{script}"
startup_script_variables = {{ {extra} = "fa'lse" }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = 1
connection_username = {}
connection_password = {}
"#,
        quoted(user),
        quoted(password)
    )
}

/// What a bash script cannot carry is refused when the configuration is loaded, at its field.
#[test]
fn a_value_the_linux_script_cannot_carry_is_refused_at_load() {
    use kasm_scale_core::{ConfigError, Format, load_str};
    let text = config_text("linux", "kasm", "se\0cret");
    let Err(ConfigError::Invalid { problems }) = load_str(&text, Format::Toml) else {
        panic!("a NUL in the password is refused");
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "pools[0].autoscale[0].connection_password: holds a NUL character, which a bash script \
          cannot carry; the built-in `linux` script receives it"
        ]
    );
    assert!(!format!("{problems:?}").contains("se\0cret"));
    // The Windows script carries it.
    load_str(&config_text("windows", "kasm", "se\0cret"), Format::Toml).expect("valid");

    // chpasswd reads `user:password` lines: a name that is not a plain account name, or a
    // password with a line break, could set another account's password.
    let text = config_text("linux", "o'brien:x", "pw\nroot:owned");
    let Err(ConfigError::Invalid { problems }) = load_str(&text, Format::Toml) else {
        panic!("refused");
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "pools[0].autoscale[0].connection_username: `o\\'brien:x` cannot name the local \
             account the built-in `linux` script creates: use letters, digits, `_`, `.` and `-` \
             (not first), at most 32 characters",
            "pools[0].autoscale[0].connection_password: holds a line break, which the built-in \
             `linux` script cannot pass to chpasswd (the value is not shown)"
        ]
    );
    assert!(!format!("{problems:?}").contains("owned"));
    for user in ["kasm-user", "_svc", "a.b-c_9", "None"] {
        load_str(&config_text("linux", user, "p'w $(x)"), Format::Toml)
            .unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    for user in ["-rf", "a b", "x\ny", "ü", &"a".repeat(33)] {
        assert!(
            load_str(&config_text("linux", user, "pw"), Format::Toml).is_err(),
            "{user:?}"
        );
    }
    load_str(
        &config_text("windows", "o'brien:x", "pw\nroot:owned"),
        Format::Toml,
    )
    .expect("PowerShell passes them as parameters");
}

/// The controller provisions with the quoted script: the values of the configuration reach
/// the guest as data.
#[tokio::test(start_paused = true)]
async fn provisioned_servers_get_each_value_as_data() {
    use kasm_scale_core::config::VmProviderConfig;
    use kasm_scale_core::controller::Autoscaler;
    use kasm_scale_core::memory::MemoryCloud;
    use kasm_scale_core::{Format, load_str};
    use std::sync::Arc;

    for script in ["linux", "windows"] {
        // The Linux script creates a local account: its name is checked at load (below).
        let (user, password) = if script == "linux" {
            (
                "kasm.user-1",
                "x'; echo INJECTED; ' \"$HOME\" `id` $(reboot) 50%",
            )
        } else {
            (
                "o'brien; $(echo INJECTED) `id`",
                "x'; echo INJECTED; '\n\"$HOME\" </powershell>",
            )
        };
        let config = load_str(&config_text(script, user, password), Format::Toml)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
            panic!("a memory provider")
        };
        let cloud = Arc::new(MemoryCloud::new(mem, 1));
        let scaler = Autoscaler::builder(config)
            .provider(cloud.clone())
            .seed(1)
            .build()
            .unwrap();
        scaler.tick().await;
        scaler.settle().await;
        let server = scaler.servers()[0].clone();
        let rendered = cloud
            .startup_script(server.vm_id.as_deref().expect("its VM"))
            .expect("its script");
        let rendered = rendered.expose();
        if script == "linux" {
            let names = [
                "SESSION_USER",
                "SESSION_PASSWORD",
                "INSTALL_XRDP",
                "SERVER_HOSTNAME",
            ]
            .map(str::to_owned);
            assert_eq!(
                bash_values(rendered, &names),
                [user, password, "fa'lse", server.hostname.as_str()]
            );
        } else {
            let literals: Vec<Token> = lex(section(rendered))
                .into_iter()
                .filter(|t| matches!(t, Token::Literal(_)))
                .collect();
            for value in [user, password, "fa'lse", server.hostname.as_str()] {
                assert!(
                    literals.contains(&Token::Literal(value.to_owned())),
                    "{value:?} in {literals:?}"
                );
            }
        }
    }
}
