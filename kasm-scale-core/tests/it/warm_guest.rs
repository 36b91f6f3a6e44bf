//! The guest side of the warm tier: a server stopped into its config's warm tier and started
//! days later checks in again at that boot, with the token its startup script received.
//!
//! - The token the controller issues for a server of a config with a warm tier is valid for the
//!   tier's `max_age` plus its `checkin_timeout` (and more: see `token::lifetime_for_config`);
//!   for a config without one it keeps its old lifetime.
//! - The built-in Windows script registers its check-in as a scheduled task at every startup
//!   (and after a resume from hibernation), run as SYSTEM.
//! - Both built-ins stay within the AWS user-data limit (16,384 bytes), checked at load with
//!   the longest values.
//!
//! The Linux script's systemd unit and its token file are checked where the script runs for
//! real (`builtin_script_secrets.rs`, in namespaces).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::memory::{MemoryCloud, token_in};
use kasm_scale_core::template::{EXAMPLE_VARIABLES, Template, builtin};
use kasm_scale_core::token::{TOKEN_LIFETIME, TokenKeys, lifetime_for_config};
use kasm_scale_core::{Format, load_str};

use crate::fixture::Fixture;
use crate::powershell::{lex, statements, text};

/// A warm tier's `max_age` in these tests: 3 days.
const MAX_AGE: u64 = 3 * 86_400;
/// `checkin_timeout` in these tests.
const CHECKIN_TIMEOUT: u64 = 1_500;

fn config(warm: bool) -> Config {
    let mut f = Fixture::memory_pool("p")
        .startup_script("TOKEN={checkin_jwt}\n")
        .max_instances(4)
        .minimum_standby(1)
        .require_checkin(true)
        .checkin_timeout(CHECKIN_TIMEOUT as i64);
    if warm {
        f = f.autoscale_toml(&format!(
            "warm_pool = {{ min_stopped = 0, max_stopped = 2, max_age = {MAX_AGE} }}"
        ));
    }
    f.config()
}

/// The token in the script the controller rendered for its first server: its `iat` and `exp`,
/// the server's creation time (seconds), the keys that signed it, and the token.
async fn provisioned_token(config: Config) -> (i64, i64, i64, TokenKeys, String) {
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("a memory provider")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 1));
    let keys = TokenKeys::generate().unwrap();
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .tokens(keys.clone())
        .seed(1)
        .build()
        .unwrap();
    scaler.tick().await;
    scaler.settle().await;
    let servers = scaler.servers();
    let server = servers.first().expect("a server is provisioned");
    let script = cloud
        .startup_script(server.vm_id.as_deref().expect("its VM"))
        .expect("its script");
    let token = token_in(script.expose()).expect("a token").to_owned();
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
        server.created_at.as_second(),
        keys,
        token,
    )
}

/// The token a warm config's server gets still verifies when it is started at the last moment
/// (`max_age` after its build) and checks in at the end of its `checkin_timeout`; a config
/// without a warm tier keeps the 4 h lifetime.
#[tokio::test(start_paused = true)]
async fn a_warm_servers_token_outlives_max_age_plus_checkin_timeout() {
    let (iat, exp, created, keys, token) = provisioned_token(config(true)).await;
    assert_eq!(iat, created, "issued at the record's creation");
    let needed = (MAX_AGE + CHECKIN_TIMEOUT) as i64;
    assert!(
        exp - iat >= needed,
        "a warm server's token lives {} s, less than max_age + checkin_timeout ({needed} s)",
        exp - iat
    );
    let claims = keys.verify_for(
        &token,
        jiff::Timestamp::from_second(iat).unwrap(),
        None,
        |_| true,
    );
    let sub = claims.expect("the token verifies").sub;
    let last_checkin =
        jiff::Timestamp::from_second(iat).unwrap() + SignedDuration::from_secs(needed);
    assert!(
        keys.verify(&token, last_checkin, sub, |_| true).is_ok(),
        "the boot check-in of a server started at max_age is accepted"
    );
    // Not for ever: a day past the bound it is refused.
    let long_after = last_checkin + SignedDuration::from_hours(24 + 2);
    assert!(keys.verify(&token, long_after, sub, |_| true).is_err());

    let (iat, exp, _, _, _) = provisioned_token(config(false)).await;
    assert_eq!(
        exp - iat,
        TOKEN_LIFETIME.as_secs() as i64,
        "without a warm tier the lifetime is unchanged"
    );
}

/// The lifetime is a function of the config: `max_age + 2 × checkin_timeout` with a warm tier
/// (when longer than the usual lifetime), the usual one without.
#[test]
fn the_token_lifetime_follows_the_warm_tier() {
    let warm = config(true);
    let cold = config(false);
    let asc = |c: &Config| c.pools[0].autoscale[0].clone();
    assert_eq!(
        lifetime_for_config(&asc(&warm)),
        Duration::from_secs(MAX_AGE + 2 * CHECKIN_TIMEOUT)
    );
    assert_eq!(lifetime_for_config(&asc(&cold)), TOKEN_LIFETIME);
    // A checkin_timeout longer than the usual lifetime still wins without a warm tier.
    let mut long = asc(&cold);
    long.checkin_timeout = 8 * 3600;
    assert_eq!(lifetime_for_config(&long), Duration::from_secs(8 * 3600));
}

/// The Windows script renders a scheduled task that runs the check-in at every startup and after
/// a resume from hibernation, as SYSTEM, for every server (before the domain-join branch).
#[test]
fn the_windows_script_registers_a_check_in_at_every_startup() {
    let b = builtin("windows").unwrap();
    let mut vars: std::collections::HashMap<String, Option<String>> = EXAMPLE_VARIABLES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
        .collect();
    for (k, v) in b.defaults {
        vars.insert((*k).to_owned(), Some((*v).to_owned()));
    }
    let script = Template::parse(b.text)
        .unwrap()
        .render_quoted(&vars, b.quoting)
        .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<String> = statements(&lex(script.expose()))
        .iter()
        .map(|s| text(s))
        .collect();
    let registers: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("Register-ScheduledTask"))
        .collect();
    assert_eq!(registers.len(), 1, "{registers:?}");
    let register = registers[0];
    for part in [
        "-TaskName \"kasm-scale-checkin\"",
        "New-ScheduledTaskTrigger -AtStartup",
        "$resume",
        "-User \"SYSTEM\"",
        "-Force",
    ] {
        assert!(register.contains(part), "{part} in {register}");
    }
    let action = texts
        .iter()
        .find(|t| t.contains("New-ScheduledTaskAction"))
        .expect("an action");
    assert!(action.contains("-File $StateDir\\checkin.ps1"), "{action}");
    let subscription = texts
        .iter()
        .find(|t| t.contains("$resume.Subscription"))
        .expect("the resume trigger's subscription");
    assert!(
        subscription.contains("Microsoft-Windows-Power-Troubleshooter")
            && subscription.contains("EventID=1"),
        "{subscription}"
    );
    let at = |f: &dyn Fn(&str) -> bool| texts.iter().position(|t| f(t)).unwrap();
    assert!(
        at(&|t| t.contains("Register-ScheduledTask"))
            < at(&|t| t.trim_start().starts_with("if ($Domain -ne")),
        "registered for servers with and without a domain"
    );
    // The rendered script holds no tag that EC2 reads in user data.
    assert!(!script.expose().contains("</powershell>"));
}

/// Both built-ins, for an AWS config with AD and a warm tier, load without a problem: the load
/// renders them with the longest values and refuses a script over the 16,384-byte user-data
/// limit (with the `<powershell>` wrapping of a Windows AMI).
#[test]
fn the_built_ins_fit_aws_user_data() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config/aws-windows-ad.toml"
    ))
    .unwrap();
    for name in ["windows", "linux"] {
        let mut doc: toml::Table = text.parse().unwrap();
        let provider = doc["vm_providers"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        provider.remove("startup_script");
        provider.insert("startup_script_builtin".into(), name.into());
        provider.insert("aws_is_windows".into(), (name == "windows").into());
        let asc = doc["pools"].as_array_mut().unwrap()[0]["autoscale"]
            .as_array_mut()
            .unwrap()[0]
            .as_table_mut()
            .unwrap();
        asc.insert(
            "warm_pool".into(),
            toml::Value::Table(
                [("max_stopped".to_owned(), toml::Value::Integer(4))]
                    .into_iter()
                    .collect(),
            ),
        );
        let loaded = load_str(&toml::to_string(&doc).unwrap(), Format::Toml)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let size_warnings: Vec<String> = loaded
            .warnings
            .iter()
            .map(ToString::to_string)
            .filter(|w| w.contains("bytes"))
            .collect();
        assert!(size_warnings.is_empty(), "{name}: {size_warnings:?}");
    }
}

/// The snippets of docs/startup-scripts.md ("Warm tier: what a custom (Kasm-style) script must
/// add") are templates that render as Kasm renders them (raw values), to a bash script that
/// `bash -n` accepts and to PowerShell that registers the task and posts the token.
#[test]
fn the_documented_warm_tier_snippets_render() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/startup-scripts.md"
    ))
    .unwrap();
    let section = &doc[doc
        .find("## Warm tier: what a custom (Kasm-style) script must add")
        .expect("the section")..];
    let block = |lang: &str| {
        let open = format!("```{lang}\n");
        let start = section
            .find(&open)
            .unwrap_or_else(|| panic!("a {lang} block"))
            + open.len();
        section[start..start + section[start..].find("```").unwrap()].to_owned()
    };
    let vars: std::collections::HashMap<String, Option<String>> = EXAMPLE_VARIABLES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
        .collect();
    let token = vars["checkin_jwt"].clone().unwrap();
    let render = |text: &str| {
        Template::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .render(&vars)
            .unwrap_or_else(|e| panic!("{e}"))
            .expose()
            .to_owned()
    };

    let bash = render(&block("bash"));
    assert!(bash.contains(&format!(
        "printf '%s' '{token}' > /var/lib/kasm-scale/token"
    )));
    assert!(bash.contains("https://kasm.example.com/api/set_server_status"));
    assert!(bash.contains("printf '{\"token\":\"%s\""));
    assert!(bash.contains("systemctl enable kasm-scale-checkin.service"));
    let mut check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash is needed for this test");
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), bash.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ps = render(&block("powershell"));
    let texts: Vec<String> = statements(&lex(&ps)).iter().map(|s| text(s)).collect();
    assert!(
        texts.iter().any(|t| t.contains("Register-ScheduledTask")
            && t.contains("-AtStartup")
            && t.contains("-User \"SYSTEM\"")),
        "{texts:#?}"
    );
    assert!(ps.contains(&format!("-Value '{token}'")));
    assert!(ps.contains("\"https://kasm.example.com/api/set_server_status\""));
    assert!(ps.contains("SetAccessRuleProtection($true, $false)"));
}
