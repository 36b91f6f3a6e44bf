//! On a multi-session host every session user can read what the built-in scripts leave behind
//! and the command lines of running processes: the check-in token, the AD one-time password and
//! the session password must reach neither.
//!
//! Linux: the rendered `linux` script runs for real, as root, in a private mount and PID
//! namespace (`unshare`) with tmpfs over the places a script writes, in a world that left copies
//! of its user data readable by everyone. Every command it calls with a secret in reach is a
//! stand-in on `PATH` that records its command line (`/proc/self/cmdline`), its input, and what
//! user 65534 (`nobody`) sees of every process's command line while it runs. After the run,
//! `nobody` reads every file it can in those places. No secret may show in either, with one
//! exception the test states: `realm join` takes the one-time password only on its command line
//! (realmd's `realm` has no other way; realmd itself hands it to adcli on stdin), and it runs
//! before the session account or an RDP server exists. The check-in at every later boot (a
//! warm tier's server is stopped and started again): the script installs a systemd unit that
//! `systemd-analyze verify` accepts and enables it; the token it keeps for it is root's alone
//! (mode 0600 in a 0700 directory); and the unit's `ExecStart`, run again as at a later boot,
//! checks in with the token.
//!
//! Windows: `pwsh` is not on this machine, so the `windows` script is checked statically with
//! the PowerShell lexer of `powershell/mod.rs`: no variable that holds or derives from a secret
//! is an argument of a native command (or of a command line built for one), the scheduled task
//! carries no password and is registered for every startup whether or not the server joins a
//! domain, the state directory is locked to SYSTEM and Administrators before a secret is written
//! into it, the check-in keeps its token file (it checks in again at the next boot), and the
//! copies of the user data the script knows of are locked down.
//!
//! The Linux test needs root, `unshare`, `setpriv` (util-linux) and `systemd-analyze`: without
//! them it fails saying so, unless `KASM_SCALE_SKIP_NAMESPACE=1` outside CI (then it prints
//! SKIPPED).

use crate::powershell;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};

use kasm_scale_core::template::{Template, builtin};
use powershell::{Secrets, code, embedded_scripts, follow, lex, native, statements, text};

/// Variables as Python sees them: a string, or `None`.
type Vars = HashMap<String, Option<String>>;

fn render(name: &str, vars: &Vars) -> String {
    let b = builtin(name).expect("a built-in");
    Template::parse(b.text)
        .expect("a built-in parses")
        .render_quoted(vars, b.quoting)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .expose()
        .to_owned()
}

/// The secrets a server's script receives, distinct in each run: `(variable, value)`.
fn secrets() -> [(&'static str, String); 3] {
    let id = uuid::Uuid::new_v4().simple().to_string();
    [
        // A JWT's alphabet (base64url and dots), as the check-in token is.
        (
            "checkin_jwt",
            format!("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ{id}.c2lnbmF0dXJl"),
        ),
        // The directory's alphabet for one-time passwords.
        ("ad_join_credential", format!("Otp-{id}-x9!Q")),
        // What a shell could misread: quotes, $( ), a backtick, a %.
        ("connection_password", format!("p'w $(x) `y` \"{id}\" 50%")),
    ]
}

/// The values of one server: `secrets` and plain values for the other fields.
fn linux_vars(secrets: &[(&str, String)]) -> Vars {
    let mut vars: Vars = [
        ("server_hostname", "KASM-0F1E2D3C"),
        ("domain", "example.local"),
        ("upstream_auth_address", "kasm.example.com"),
        ("install_xrdp", "true"),
        ("connection_username", "kasm-user"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
    .collect();
    for (k, v) in secrets {
        vars.insert((*k).to_owned(), Some(v.clone()));
    }
    vars
}

/// The opt-out of the namespace test (outside CI only).
const SKIP_VARIABLE: &str = "KASM_SCALE_SKIP_NAMESPACE";

/// Why this machine cannot run the namespace test, if it cannot.
fn namespace_missing() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("it must run as root (bash .ci/run does)".into());
    }
    for tool in [
        "unshare",
        "setpriv",
        "bash",
        "find",
        "mount",
        "systemd-analyze",
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!(
                "`{tool}` is not installed (util-linux, bash, findutils, systemd)"
            ));
        }
    }
    if !Path::new("/mnt").is_dir() {
        return Some("/mnt is missing (the test binds its records there)".into());
    }
    None
}

/// The commands the script may call with a secret in reach, and their exit codes: `id` says
/// the session account does not exist yet, so the script creates it.
const STAND_INS: [(&str, u8); 10] = [
    ("hostnamectl", 0),
    ("apt-get", 0),
    ("dnf", 0),
    ("realm", 0),
    ("id", 1),
    ("useradd", 0),
    ("chpasswd", 0),
    ("systemctl", 0),
    ("curl", 0),
    ("adcli", 0),
];

/// A stand-in: records its command line, what `nobody` sees of every process's command line
/// while it runs, and its input.
fn stand_in(name: &str, code: u8) -> String {
    format!(
        r#"#!/bin/sh
r=/mnt/records
i=$(wc -l < "$r/sequence")
echo {name} >> "$r/sequence"
cat "/proc/$$/cmdline" > "$r/$i.argv"
setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c 'for p in /proc/[0-9]*; do tr "\0" " " < "$p/cmdline" 2>/dev/null && echo; done' > "$r/$i.seen"
cat > "$r/$i.stdin"
exit {code}
"#
    )
}

/// Run inside the namespaces with the work directory as `$1`: tmpfs over the places a script
/// writes, the world the script finds, the script as cloud-init runs it, then what `nobody` can
/// read.
const NAMESPACE_INIT: &str = r#"set -euo pipefail
mount --bind "$1" /mnt
for d in /tmp /var/tmp /run /dev/shm /home /root /var/lib /etc/systemd/system; do
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp /dev/shm
chmod 0700 /root
# Copies of the user data as a careless agent could leave them: readable by every user.
mkdir -p /var/lib/cloud/instance/scripts /var/lib/waagent
install -m 0644 /mnt/script.sh /var/lib/cloud/instance/scripts/part-001
install -m 0644 /mnt/script.sh /var/lib/cloud/instance/user-data.txt
install -m 0644 /mnt/script.sh /var/lib/waagent/CustomData
# A file every user may read: the scan below must find it.
echo visible > /tmp/kasm-scale-canary
cd /root
status=0
env -i PATH=/mnt/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C \
    bash /var/lib/cloud/instance/scripts/part-001 < /dev/null \
    > /mnt/records/script.out 2> /mnt/records/script.err || status=$?
echo "$status" > /mnt/records/script.status
# The check-in unit the script installed, as systemd checks it, and the token file it keeps.
unit=/etc/systemd/system/kasm-scale-checkin.service
if [ -f "$unit" ]; then
    cp -- "$unit" /mnt/records/unit
    verify=0
    systemd-analyze verify "$unit" > /mnt/records/verify.out 2>&1 || verify=$?
    echo "$verify" > /mnt/records/verify.status
fi
stat -c '%a %U %G' /var/lib/kasm-scale /var/lib/kasm-scale/token > /mnt/records/modes 2>&1 || true
# A later boot: the unit's ExecStart as systemd runs it (as root, no arguments added).
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" 2>/dev/null || true)
if [ -n "$exec_start" ]; then
    reboot=0
    env -i PATH=/mnt/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C $exec_start < /dev/null \
        > /mnt/records/reboot.out 2> /mnt/records/reboot.err || reboot=$?
    echo "$reboot" > /mnt/records/reboot.status
fi
# What a session user can read now (from a directory it may enter).
cd /
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    find /tmp /var/tmp /run /dev/shm /home /root /var/lib /etc/systemd/system -xdev -type f -readable \
    -exec sh -c 'for f; do printf "\n==> %s\n" "$f"; cat -- "$f"; done' sh {} + \
    > /mnt/records/readable 2> /dev/null || true
"#;

/// One call of a stand-in.
#[derive(Debug)]
struct Call {
    name: String,
    argv: Vec<String>,
    /// Every process's command line as `nobody` saw it during the call.
    seen: Vec<String>,
    stdin: String,
}

/// What a run of the Linux script in the namespaces left.
#[derive(Debug)]
struct Run {
    /// The script's exit status.
    status: i32,
    /// Its standard error.
    stderr: String,
    /// The calls of the stand-ins, in order (the later boot's last).
    calls: Vec<Call>,
    /// What `nobody` could read afterwards (`\n==> PATH\n` before each file).
    readable: String,
    /// The check-in unit the script installed, if it did.
    unit: Option<String>,
    /// `systemd-analyze verify` of that unit: its exit status and output.
    verify: Option<(i32, String)>,
    /// `stat -c '%a %U %G'` of the state directory and of the token file, a line each.
    modes: String,
    /// The unit's `ExecStart` run again as at a later boot: its exit status and stderr.
    reboot: Option<(i32, String)>,
}

/// Runs the rendered Linux script in the namespaces, then its check-in unit's command as at a
/// later boot, and records what they did.
fn run_in_namespace(script: &str) -> Run {
    let work = tempfile::Builder::new()
        .prefix("secrets-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let dir = work.path();
    let mode = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(dir, 0o700);
    std::fs::create_dir(dir.join("bin")).unwrap();
    std::fs::create_dir(dir.join("records")).unwrap();
    std::fs::write(dir.join("records/sequence"), "").unwrap();
    for (name, code) in STAND_INS {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, stand_in(name, code)).unwrap();
        mode(&path, 0o755);
    }
    std::fs::write(dir.join("script.sh"), script).unwrap();
    std::fs::write(dir.join("init.sh"), NAMESPACE_INIT).unwrap();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "bash",
        ])
        .arg(dir.join("init.sh"))
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "the namespace could not be set up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| {
        String::from_utf8_lossy(&std::fs::read(dir.join("records").join(name)).unwrap_or_default())
            .into_owned()
    };
    let status: i32 = read("script.status")
        .trim()
        .parse()
        .expect("the script ran");
    let calls = read("sequence")
        .lines()
        .enumerate()
        .map(|(i, name)| Call {
            name: name.to_owned(),
            argv: read(&format!("{i}.argv"))
                .split('\0')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            seen: read(&format!("{i}.seen"))
                .lines()
                .map(str::to_owned)
                .collect(),
            stdin: read(&format!("{i}.stdin")),
        })
        .collect();
    let exists = |name: &str| dir.join("records").join(name).exists();
    let status_of = |name: &str| read(name).trim().parse::<i32>().expect("a status");
    Run {
        status,
        stderr: read("script.err"),
        calls,
        readable: read("readable"),
        unit: exists("unit").then(|| read("unit")),
        verify: exists("verify.status").then(|| (status_of("verify.status"), read("verify.out"))),
        modes: read("modes"),
        reboot: exists("reboot.status").then(|| (status_of("reboot.status"), read("reboot.err"))),
    }
}

/// `text` with each secret replaced by its name, to show where it was without printing it.
fn masked(text: &str, secrets: &[(&str, String)]) -> String {
    secrets.iter().fold(text.to_owned(), |t, (name, value)| {
        t.replace(value.as_str(), &format!("<{name}>"))
    })
}

#[test]
fn the_linux_script_leaves_no_secret_to_session_users() {
    if let Some(why) = namespace_missing() {
        if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1") && std::env::var_os("CI").is_none()
        {
            eprintln!("SKIPPED ({SKIP_VARIABLE}=1): {why}");
            return;
        }
        panic!("the namespace test cannot run: {why} (outside CI, {SKIP_VARIABLE}=1 skips it)");
    }
    let secrets = secrets();
    let [(_, token), (_, otp), (_, password)] = &secrets;
    let script = render("linux", &linux_vars(&secrets));
    let run = run_in_namespace(&script);
    let Run {
        status,
        stderr,
        calls,
        readable,
        ..
    } = &run;
    let status = *status;
    assert_eq!(
        status,
        0,
        "the script succeeds: {}",
        masked(stderr, &secrets)
    );
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    let call = |name: &str| {
        calls
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is called: {names:?}"))
    };
    let index = |name: &str| names.iter().position(|n| *n == name);

    // The script did its work: each secret reached the command that needs it.
    assert!(
        call("realm")
            .argv
            .contains(&format!("--one-time-password={otp}")),
        "realm join receives the one-time password"
    );
    assert_eq!(
        call("chpasswd").stdin,
        format!("kasm-user:{password}\n"),
        "chpasswd reads the session password"
    );
    let checkin = call("curl");
    let body = format!("\"token\":\"{token}\"");
    assert!(
        checkin.stdin.contains(&body) || checkin.argv.iter().any(|a| a.contains(&body)),
        "the check-in body holds the token: {} / {}",
        masked(&checkin.argv.join(" "), &secrets),
        masked(&checkin.stdin, &secrets)
    );
    // The process view is not blind: nobody saw each stand-in's own command line.
    for c in calls {
        let own = format!("/mnt/bin/{}", c.name);
        assert!(
            c.seen.iter().any(|l| l.contains(&own)),
            "{}: nobody's view of the processes shows the stand-in itself",
            c.name
        );
    }

    // While each command ran, no command line held a secret: realm's own is the exception,
    // and it comes before there is a session account or an RDP server.
    for c in calls {
        for (secret, value) in &secrets {
            for line in c.seen.iter().filter(|l| l.contains(value.as_str())) {
                let allowed = *secret == "ad_join_credential"
                    && c.name == "realm"
                    && line.starts_with("/bin/sh /mnt/bin/realm join ");
                assert!(
                    allowed,
                    "while {} ran, user 65534 saw {secret} in a command line: {}",
                    c.name,
                    masked(line, &secrets)
                );
            }
            if c.argv.iter().any(|a| a.contains(value.as_str())) {
                assert!(
                    *secret == "ad_join_credential" && c.name == "realm",
                    "{secret} is an argument of {}: {}",
                    c.name,
                    masked(&c.argv.join(" "), &secrets)
                );
            }
        }
    }
    let realm = index("realm").unwrap();
    let xrdp = calls
        .iter()
        .position(|c| c.argv.iter().any(|a| a == "xrdp"))
        .expect("xrdp is installed");
    for later in [index("useradd").expect("useradd"), xrdp] {
        assert!(
            realm < later,
            "realm join runs before {}: {names:?}",
            calls[later].name
        );
    }

    // After the run, nobody can read a file that holds a secret.
    assert!(
        readable.contains("==> /tmp/kasm-scale-canary\nvisible"),
        "the scan reads what nobody may read: {}",
        masked(readable, &secrets)
    );
    let files: Vec<&str> = readable.split("\n==> ").collect();
    for (secret, value) in &secrets {
        if let Some(file) = files.iter().find(|f| f.contains(value.as_str())) {
            let path = file.lines().next().unwrap_or_default();
            panic!("after the run, user 65534 can read {secret} in {path}");
        }
    }
    check_boot_checkin(&run, token, &secrets);
}

/// The check-in at every later boot: a valid systemd unit, enabled, started after the network
/// (and after a resume from hibernation), whose command checks in again with the token it kept
/// in a file of root's alone.
fn check_boot_checkin(run: &Run, token: &str, secrets: &[(&str, String)]) {
    let unit = run
        .unit
        .as_deref()
        .expect("the script installs /etc/systemd/system/kasm-scale-checkin.service");
    let (verified, said) = run.verify.as_ref().expect("systemd-analyze ran");
    assert_eq!(
        *verified, 0,
        "systemd-analyze verify refuses the unit: {said}"
    );
    let complaints: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("kasm-scale-checkin"))
        .collect();
    assert!(
        complaints.is_empty(),
        "the unit has problems: {complaints:?}"
    );
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .flat_map(str::split_whitespace)
            .collect()
    };
    assert_eq!(value("Type"), ["oneshot"], "{unit}");
    for key in ["After", "Wants"] {
        assert!(
            value(key).contains(&"network-online.target"),
            "{key}=network-online.target: {unit}"
        );
    }
    let wanted = value("WantedBy");
    assert!(
        wanted.contains(&"multi-user.target") && wanted.contains(&"hibernate.target"),
        "started at every boot and after a resume from hibernation: {unit}"
    );
    // Enabled (systemctl is a stand-in here: the call is what enables it on a real host).
    assert!(
        run.calls.iter().any(|c| c.name == "systemctl"
            && c.argv
                .ends_with(&["enable".to_owned(), "kasm-scale-checkin.service".to_owned()])),
        "systemctl enable kasm-scale-checkin.service: {:?}",
        run.calls
            .iter()
            .filter(|c| c.name == "systemctl")
            .map(|c| &c.argv)
            .collect::<Vec<_>>()
    );
    // The token it keeps: root's alone.
    assert_eq!(
        run.modes.lines().collect::<Vec<_>>(),
        ["700 root root", "600 root root"],
        "/var/lib/kasm-scale and its token file"
    );
    // A later boot: the unit's command checks in again, with the token on curl's stdin.
    let (status, stderr) = run.reboot.as_ref().expect("the unit has an ExecStart");
    assert_eq!(
        *status,
        0,
        "the boot check-in succeeds: {}",
        masked(stderr, secrets)
    );
    let curls: Vec<&Call> = run.calls.iter().filter(|c| c.name == "curl").collect();
    assert_eq!(
        curls.len(),
        2,
        "a check-in at the first boot and one at the next"
    );
    let body = format!("\"token\":\"{token}\"");
    for c in curls {
        assert!(
            c.stdin.contains(&body) && c.stdin.contains("\"status\":\"running\""),
            "the check-in body holds the token: {}",
            masked(&c.stdin, secrets)
        );
        assert!(
            c.argv
                .iter()
                .any(|a| a == "https://kasm.example.com/api/set_server_status"),
            "{}",
            masked(&c.argv.join(" "), secrets)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Windows, statically.

/// The Windows script's fields that hold a secret.
const SECRET_FIELDS: [&str; 3] = ["checkin_jwt", "connection_password", "ad_join_credential"];

/// The Windows script rendered with `kasm-value-FIELD` in each field.
fn windows_script() -> String {
    let b = builtin("windows").unwrap();
    let vars: Vars = Template::parse(b.text)
        .unwrap()
        .field_names()
        .map(|f| (f.to_owned(), Some(format!("kasm-value-{f}"))))
        .collect();
    render("windows", &vars)
}

#[test]
fn no_secret_of_the_windows_script_is_a_native_command_argument() {
    let script = windows_script();
    let values: Vec<String> = SECRET_FIELDS
        .iter()
        .map(|f| format!("kasm-value-{f}"))
        .collect();
    let outer = follow(&script, &values, &Secrets::default());
    for var in ["sessionpasswordtext", "joinpasswordtext", "checkintoken"] {
        assert!(
            outer.tainted.contains(var),
            "${var} holds a secret: {outer:?}"
        );
    }
    assert!(
        outer.files.contains("checkin.json"),
        "the token is written to checkin.json: {outer:?}"
    );
    assert!(
        outer.leaks.is_empty(),
        "native commands receive a secret: {:#?}",
        outer.leaks
    );
    let inner = embedded_scripts(&script);
    assert_eq!(inner.len(), 1, "one check-in script");
    let checkin = follow(&inner[0], &values, &outer);
    assert!(
        checkin.tainted.contains("body"),
        "the check-in script reads the token into its body: {checkin:?}"
    );
    assert!(
        checkin.leaks.is_empty(),
        "native commands of the check-in script receive a secret: {:#?}",
        checkin.leaks
    );

    // The analysis sees a leak when there is one.
    let natives = statements(&lex(&script))
        .iter()
        .filter(|s| native(s))
        .count();
    assert!(natives >= 2, "the script runs native commands: {natives}");
    for (added, leaks) in [
        ("& icacls $StateDir /grant $SessionUser", 0),
        ("$Pw = $JoinPasswordText + 'x'\nnet user x $Pw /add", 1),
        (
            "Start-Process -FilePath net.exe -ArgumentList \"user kasm $SessionPasswordText\"",
            1,
        ),
        ("cmd /c echo $JoinCredential", 1),
    ] {
        let found = follow(
            &format!("{script}\n{added}\n"),
            &values,
            &Secrets::default(),
        );
        assert_eq!(found.leaks.len(), leaks, "{added}: {:#?}", found.leaks);
    }
    let found = follow(
        &format!("{}\n& cmd.exe /c type $body\n", inner[0]),
        &values,
        &outer,
    );
    assert_eq!(found.leaks.len(), 1, "{:#?}", found.leaks);

    // The scheduled task runs as SYSTEM, with no password.
    let stmts = statements(&lex(&script));
    let register: Vec<String> = stmts
        .iter()
        .filter(|s| {
            code(s)
                .to_ascii_lowercase()
                .contains("register-scheduledtask")
        })
        .map(|s| text(s))
        .collect();
    assert_eq!(register.len(), 1, "{register:?}");
    assert!(
        register[0].contains("-User \"SYSTEM\"")
            && !register[0].to_ascii_lowercase().contains("-password"),
        "{}",
        register[0]
    );
    assert!(
        !script.to_ascii_lowercase().contains("schtasks"),
        "no schtasks (whose /RP takes a password on its command line)"
    );
}

#[test]
fn the_windows_script_locks_down_what_holds_a_secret() {
    let script = windows_script();
    let stmts = statements(&lex(&script));
    let texts: Vec<String> = stmts.iter().map(|s| text(s)).collect();
    let position = |what: &str, f: &dyn Fn(&str) -> bool| {
        texts
            .iter()
            .position(|t| f(t))
            .unwrap_or_else(|| panic!("the script {what}"))
    };

    // The lock: a new access list for SYSTEM and Administrators alone, inherited from nothing.
    let start = script
        .find("function Protect-Path")
        .expect("a Protect-Path function");
    let body = &script[start..start + script[start..].find("\n}\n").expect("its end")];
    assert!(
        body.contains("SetAccessRuleProtection($true, $false)"),
        "{body}"
    );
    assert!(
        body.contains("New-Object System.Security.AccessControl.DirectorySecurity")
            && body.contains("New-Object System.Security.AccessControl.FileSecurity")
            && !body.contains("Get-Acl"),
        "a new access list replaces the whole one: {body}"
    );
    let sids: BTreeSet<&str> = body
        .match_indices("\"S-1-")
        .map(|(i, _)| {
            let rest = &body[i + 1..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(sids, BTreeSet::from(["S-1-5-18", "S-1-5-32-544"]), "{body}");
    assert!(
        body.contains("Set-Acl -LiteralPath $Path -AclObject $acl"),
        "{body}"
    );

    // The state directory is locked, and an old token file removed, before the token is written.
    let lock = position("locks $StateDir", &|t| t.trim() == "Protect-Path $StateDir");
    let remove = position("removes an old checkin.json", &|t| {
        t.contains("Remove-Item") && t.contains("checkin.json")
    });
    let write = position("writes checkin.json", &|t| {
        t.contains("Set-Content") && t.contains("checkin.json")
    });
    assert!(
        lock < remove && remove < write,
        "lock {lock}, remove {remove}, write {write}"
    );
    let created = position("creates $StateDir", &|t| {
        t.contains("New-Item") && t.contains("$StateDir")
    });
    assert!(created < lock);
    assert!(
        texts
            .iter()
            .take(lock)
            .all(|t| !t.contains("Set-Content") && !t.contains("Out-File")),
        "nothing is written before the lock"
    );

    // The check-in keeps its token file and its task: it checks in again at every boot (a warm
    // tier's server is stopped and started again).
    let inner = embedded_scripts(&script);
    let checkin: Vec<String> = statements(&lex(&inner[0]))
        .iter()
        .map(|s| text(s))
        .collect();
    assert!(
        checkin.iter().any(|t| t.contains("Invoke-RestMethod")),
        "the check-in posts: {checkin:#?}"
    );
    for gone in ["Remove-Item", "Unregister-ScheduledTask"] {
        assert!(
            checkin.iter().all(|t| !t.contains(gone)),
            "the check-in must not {gone}: the next boot checks in again: {checkin:#?}"
        );
    }
    // The task that runs it is registered whether or not the server joins a domain: before the
    // join's branch, once the check-in script is written.
    let register = position("registers the check-in task", &|t| {
        t.contains("Register-ScheduledTask")
    });
    let branch = position("branches on the domain", &|t| {
        t.trim_start().starts_with("if ($Domain -ne")
    });
    let written = position("writes checkin.ps1", &|t| {
        t.contains("Set-Content") && t.contains("checkin.ps1")
    });
    assert!(
        written < register && register < branch,
        "written {written}, registered {register}, domain branch {branch}"
    );

    // The copies of the user data it knows of: this script's file and Azure's CustomData.bin.
    let copies = position("lists the copies of its user data", &|t| {
        t.contains("$PSCommandPath") && t.contains("AzureData\\CustomData.bin")
    });
    let locked = position("locks each copy", &|t| t.contains("Protect-Path $copy"));
    assert!(copies < locked && locked < write);
}
