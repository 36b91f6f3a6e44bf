//! Serialising a valid configuration and loading it again gives the same configuration, in
//! TOML, YAML and JSON; secrets never show in `Debug` output or error text.

use std::path::PathBuf;

use kasm_scale_core::config::CheckinTokenConfig;
use kasm_scale_core::config::{
    AutoScaleConfig, AwsAlternative, AwsVmConfig, AzureAlternative, AzureAuthority, AzureVmConfig,
    ConnectionType, CredentialType, Distribution, FileStoreConfig, JsonObject, LdapConfig,
    MemoryAlternative, MemoryVmConfig, Outage, Placement, Pool, RdpClientType, Schedule,
    ServerPoolType, StateStoreConfig, Tags, TimeZoneName, VmProviderConfig, Weekday, Workspace,
    Zone, validate,
};
use kasm_scale_core::token::TokenAlgorithm;
use kasm_scale_core::{Config, ConfigError, Format, Secret, load_file, load_str};
use proptest::prelude::*;

const FORMATS: [Format; 3] = [Format::Toml, Format::Yaml, Format::Json];

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "the examples are missing");
    files
}

fn round_trip(config: &Config) {
    for format in FORMATS {
        let text = config
            .to_string(format)
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let again = load_str(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
        if &again.config != config {
            let (a, b) = (
                serde_json::to_value(config).unwrap(),
                serde_json::to_value(&again.config).unwrap(),
            );
            panic!(
                "{format:?}: differs at {}",
                first_difference(&a, &b, String::new())
            );
        }
    }
}

/// The JSON path of the first difference (secrets are compared, not printed).
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> String {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                if x.get(key) != y.get(key) {
                    let (l, r) = (
                        x.get(key).cloned().unwrap_or_default(),
                        y.get(key).cloned().unwrap_or_default(),
                    );
                    return first_difference(&l, &r, format!("{path}.{key}"));
                }
            }
            path
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            let i = (0..x.len()).find(|&i| x[i] != y[i]).unwrap_or(0);
            first_difference(&x[i], &y[i], format!("{path}[{i}]"))
        }
        _ if path.contains("password") || path.contains("secret") => format!("{path} (a secret)"),
        _ => format!("{path}: {a} != {b}"),
    }
}

#[test]
fn examples_round_trip_in_every_format() {
    for file in examples() {
        let loaded = load_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            file.display(),
            loaded.warnings
        );
        round_trip(&loaded.config);
    }
}

/// Every secret value of the examples.
fn secrets_of(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &Option<Secret>| out.extend(s.iter().map(|s| s.expose().to_owned()));
    for l in &config.ldap_configs {
        push(&Some(l.service_account_password.clone()));
    }
    for p in &config.vm_providers {
        match p {
            VmProviderConfig::Aws(a) => {
                push(&a.aws_secret_access_key);
                push(&a.aws_ec2_private_key);
            }
            VmProviderConfig::Azure(a) => {
                push(&Some(a.azure_client_secret.clone()));
                push(&a.azure_os_password);
            }
            VmProviderConfig::Memory(_) => {}
        }
    }
    for (_, c) in config.autoscale_configs() {
        push(&c.connection_password);
        push(&c.connection_private_key);
        push(&c.connection_passphrase);
    }
    out
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let mut seen = 0;
    for file in examples() {
        let config = load_file(&file).unwrap().config;
        let debug = format!("{config:?} {config:#?}");
        for secret in secrets_of(&config) {
            seen += 1;
            assert!(
                !debug.contains(&secret),
                "{}: secret in Debug output",
                file.display()
            );
        }
        assert!(debug.contains("<redacted>"));
    }
    assert!(seen >= 4, "the examples should hold secrets to check");
}

#[test]
fn secrets_never_appear_in_error_text() {
    let secret = "S3cret-Value-42";
    // Wrong type for a secret field, a syntax error on a secret's line, and an otherwise
    // invalid element holding a secret.
    let docs = [
        (
            Format::Json,
            format!(
                r#"{{"ldap_configs": [{{"name": "x", "url": "ldaps://h", "search_base": "DC=x", "service_account_dn": "a", "service_account_password": ["{secret}"]}}]}}"#
            ),
        ),
        (
            Format::Toml,
            format!(
                "[[ldap_configs]]\nname = \"x\"\nservice_account_password = \"{secret}\" oops\n"
            ),
        ),
        (
            Format::Yaml,
            format!("ldap_configs:\n  - name: x\n    service_account_password: \"{secret}\n"),
        ),
        (
            Format::Json,
            format!(
                r#"{{"ldap_configs": [{{"name": "x", "url": "ftp://h", "search_base": "OU=x", "service_account_dn": "", "service_account_password": "{secret}", "passwrd": "{secret}"}}]}}"#
            ),
        ),
    ];
    for (format, doc) in docs {
        let err = load_str(&doc, format).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(secret), "{format:?}: {text}");
    }
}

// ---- property test: any valid configuration survives a round trip ----

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}"
}

/// Free text, including quotes, backslashes, braces, newlines and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}",
        "\\PC{0,12}",
        Just("yes".to_owned()),
        Just("~".to_owned()),
        Just("a\r\nb\t\"'\\{}".to_owned())
    ]
}

/// A valid startup script: free text with its braces escaped, and a few fields.
fn script() -> impl Strategy<Value = String> {
    (text(), text()).prop_map(|(a, b)| {
        let esc = |t: String| t.replace('{', "{{").replace('}', "}}");
        format!(
            "{}{{server_id}} ${{{{X:-{{checkin_jwt}}}}}}{}",
            esc(a),
            esc(b)
        )
    })
}

fn script_variables() -> impl Strategy<Value = std::collections::BTreeMap<String, Secret>> {
    prop::collection::btree_map("v_[a-z0-9_]{0,8}", secret(), 0..3)
}

fn secret() -> impl Strategy<Value = Secret> {
    text().prop_map(Secret::new)
}

fn tags() -> impl Strategy<Value = Tags> {
    prop::collection::btree_map(name(), text(), 0..3).prop_map(Tags)
}

fn json_object() -> impl Strategy<Value = JsonObject> {
    prop::collection::vec(
        (
            name(),
            prop_oneof![
                text().prop_map(serde_json::Value::from),
                any::<i32>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from)
            ],
        ),
        0..3,
    )
    .prop_map(|kv| JsonObject(kv.into_iter().collect()))
}

fn seconds() -> impl Strategy<Value = f64> {
    (0u32..=6_048_000).prop_map(|n| f64::from(n) / 10.0)
}

fn distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        seconds().prop_map(Distribution::Fixed),
        (seconds(), seconds()).prop_map(|(a, b)| Distribution::Uniform([a.min(b), a.max(b)])),
        (seconds(), seconds()).prop_map(|(mean, std_dev)| Distribution::Normal { mean, std_dev }),
    ]
}

/// The controller's pacing fields: `api_concurrency`, `api_rate_limit_per_second` (0.001 to
/// 100000 in steps of 0.001) and `api_call_timeout`, over their whole ranges.
fn api() -> impl Strategy<Value = (u32, Option<f64>, u32)> {
    (
        1u32..=1024,
        prop::option::of((1u32..=100_000_000).prop_map(|n| f64::from(n) / 1000.0)),
        1u32..=3600,
    )
}

/// Resource group names Azure accepts: 1 to 90 letters (any script), digits, `_`, `-`, `.`,
/// `(`, `)`, not ending in a period.
fn resource_group() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_().ü-]{0,88}[a-zA-Z0-9_()ü-]"
}

/// A memory cloud's outages: none, or a few over the whole range (start 0 to 366 days, duration
/// more than 0), in tenths of a second.
fn outages() -> impl Strategy<Value = Vec<Outage>> {
    prop::collection::vec(
        (0u32..=316_224_000, 1u32..=316_224_000).prop_map(|(s, d)| Outage {
            start: f64::from(s) / 10.0,
            duration: f64::from(d) / 10.0,
        }),
        0..3,
    )
}

fn provider(name: String) -> impl Strategy<Value = VmProviderConfig> {
    let aws = (
        text(),
        secret(),
        1u32..50,
        prop::option::of(1u32..2000),
        prop::sample::select(vec!["gp2", "gp3", "io2"]),
        tags(),
        script(),
        prop::option::of(json_object()),
        any::<bool>(),
        script_variables(),
        api(),
    );
    let azure = (
        secret(),
        1u32..50,
        prop::option::of(1u32..2000),
        any::<bool>(),
        any::<bool>(),
        tags(),
        script(),
        prop::option::of(json_object()),
        prop::sample::select(vec![
            AzureAuthority::Public,
            AzureAuthority::Government,
            AzureAuthority::China,
        ]),
        script_variables(),
        api(),
        (resource_group(), 1u32..=86_400),
    );
    let memory = (
        1u32..50,
        script(),
        distribution(),
        distribution(),
        0.0f64..=1.0,
        prop::option::of(1u32..100),
        any::<bool>(),
        api(),
        outages(),
    );
    let (n1, n2, n3) = (name.clone(), name.clone(), name);
    prop_oneof![
        aws.prop_map(
            move |(id, secret, max, size, vol, tags, script, over, win, vars, api)| {
                VmProviderConfig::Aws(AwsVmConfig {
                    name: n1.clone(),
                    aws_access_key_id: Some(id.into()),
                    aws_secret_access_key: Some(secret),
                    aws_region: "eu-west-1".into(),
                    aws_ec2_ami_id: "ami-123".into(),
                    aws_ec2_instance_type: "t3.large".into(),
                    price_per_hour: Some(0.096),
                    stopped_price_per_hour: Some(0.008),
                    alternatives: vec![
                        AwsAlternative {
                            aws_ec2_instance_type: Some("m6i.large".into()),
                            aws_ec2_subnet_id: None,
                            price_per_hour: Some(0.12),
                            stopped_price_per_hour: None,
                        },
                        AwsAlternative {
                            aws_ec2_instance_type: None,
                            aws_ec2_subnet_id: Some("subnet-b".into()),
                            price_per_hour: None,
                            stopped_price_per_hour: None,
                        },
                    ],
                    capacity_skip_seconds: 240,
                    aws_ec2_hibernation: win,
                    max_instances: max,
                    aws_ec2_security_group_ids: vec!["sg-1".into()],
                    aws_ec2_subnet_id: Some("subnet-1".into()),
                    aws_ec2_ebs_volume_size_gb: size,
                    aws_ec2_ebs_volume_type: Some(vol.into()),
                    aws_ec2_iam: None,
                    aws_ec2_custom_tags: tags,
                    startup_script: script,
                    startup_script_builtin: None,
                    startup_script_variables: vars.clone(),
                    aws_ec2_config_override: over,
                    retrieve_password: false,
                    aws_ec2_key_name: None,
                    aws_ec2_private_key: None,
                    aws_is_windows: win,
                    aws_endpoint_url: Some("http://127.0.0.1:5000".into()),
                    danger_allow_plaintext: false,
                    api_concurrency: api.0,
                    api_rate_limit_per_second: api.1,
                    api_call_timeout: api.2,
                })
            }
        ),
        azure.prop_map(
            move |(
                secret,
                max,
                size,
                win,
                ip,
                tags,
                script,
                over,
                authority,
                vars,
                api,
                (group, operation),
            )| {
                VmProviderConfig::Azure(AzureVmConfig {
                    name: n2.clone(),
                    price_per_hour: None,
                    stopped_price_per_hour: Some(0.02),
                    alternatives: vec![AzureAlternative {
                        azure_vm_size: Some("Standard_D4as_v5".into()),
                        azure_zone: Some("2".into()),
                        price_per_hour: Some(0.2),
                        stopped_price_per_hour: None,
                    }],
                    capacity_skip_seconds: 180,
                    azure_zone: Some("1".into()),
                    azure_subscription_id: "00000000-0000-0000-0000-00000000000a".into(),
                    azure_resource_group: group,
                    azure_tenant_id: "00000000-0000-0000-0000-00000000000B".into(),
                    azure_client_id: "client".into(),
                    azure_client_secret: Secret::new(format!("x{}", secret.expose())),
                    azure_authority: authority,
                    azure_region: "westeurope".into(),
                    max_instances: max,
                    azure_vm_size: "Standard_D2s_v5".into(),
                    azure_os_disk_type: "StandardSSD_LRS".into(),
                    azure_os_disk_size_gb: size,
                    azure_image_reference: JsonObject(
                        serde_json::json!({"id": "/images/x"})
                            .as_object()
                            .unwrap()
                            .clone(),
                    ),
                    azure_is_windows: win,
                    azure_network_sg: None,
                    azure_subnet: "/subnets/x".into(),
                    azure_public_ip: ip,
                    azure_tags: tags,
                    azure_os_username: "admin".into(),
                    azure_os_password: Some(secret),
                    azure_ssh_public_key: None,
                    startup_script: script,
                    startup_script_builtin: None,
                    startup_script_variables: vars.clone(),
                    azure_config_override: over,
                    azure_resource_manager_url: None,
                    azure_authority_url: None,
                    danger_allow_plaintext: false,
                    api_concurrency: api.0,
                    api_rate_limit_per_second: api.1,
                    api_call_timeout: api.2,
                    api_operation_timeout: operation,
                })
            }
        ),
        memory.prop_map(
            move |(max, script, boot, checkin, rate, capacity, builtin, api, outages)| {
                VmProviderConfig::Memory(MemoryVmConfig {
                    name: n3.clone(),
                    price_per_hour: Some(1.5),
                    stopped_price_per_hour: Some(0.1),
                    alternatives: vec![MemoryAlternative {
                        name: Some("gpu-b".into()),
                        capacity,
                        outages: outages.clone(),
                        price_per_hour: Some(2.0),
                        stopped_price_per_hour: None,
                    }],
                    capacity_skip_seconds: 0,
                    start_latency: boot.clone(),
                    stop_failure_rate: rate,
                    start_failure_rate: 1.0 - rate,
                    max_instances: max,
                    startup_script: if builtin { String::new() } else { script },
                    startup_script_builtin: builtin.then(|| "linux".to_owned()),
                    startup_script_variables: Default::default(),
                    boot_latency: boot,
                    checkin_delay: checkin,
                    create_failure_rate: rate,
                    destroy_failure_rate: 0.0,
                    never_checkin_rate: 1.0 - rate,
                    rate_limit_per_second: Some(5.5),
                    capacity,
                    outages,
                    api_concurrency: api.0,
                    api_rate_limit_per_second: api.1,
                    api_call_timeout: api.2,
                })
            }
        ),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        0i8..24,
        0i8..60,
        0i8..24,
        prop::sample::select(vec![
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
        ]),
        prop::sample::subsequence(Weekday::all(), 1..=7),
        prop::option::of(0u32..40),
    )
        .prop_map(|(h1, m, h2, tz, days, min)| Schedule {
            active_start_time: format!("{h1:02}:{m:02}:00").parse().unwrap(),
            active_end_time: format!("{h2:02}:00:30").parse().unwrap(),
            timezone: TimeZoneName::new(tz).unwrap(),
            days_of_the_week: days,
            minimum_pool_standby_sessions: min,
        })
}

fn autoscale(name: String, provider: String) -> impl Strategy<Value = AutoScaleConfig> {
    (
        prop::sample::select(vec![
            ConnectionType::Rdp,
            ConnectionType::Ssh,
            ConnectionType::KasmVnc,
            ConnectionType::Vnc,
        ]),
        any::<bool>(),
        1u32..8,
        (
            prop::option::of(text()),
            prop::option::of(secret()),
            prop::option::of(json_object()),
        ),
        (
            0u32..30,
            0u64..=2_592_000,
            1u32..=2_592_000,
            any::<bool>(),
            any::<bool>(),
        ),
        prop::collection::vec(schedule(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            move |(
                kind,
                reusable,
                sessions,
                (user, password, info),
                (min, backoff, timeout, checkin, aggressive),
                schedules,
                ad,
            )| {
                let mut c = AutoScaleConfig::new(name.clone(), provider.clone(), kind);
                c.connection_port = (kind != ConnectionType::Rdp).then_some(5901);
                c.reusable = reusable;
                c.connection_credential_type = if reusable {
                    CredentialType::SsoUserAccounts
                } else {
                    CredentialType::StaticCredentials
                };
                c.max_simultaneous_sessions_per_server = if reusable && !kind.single_session() {
                    sessions
                } else {
                    1
                };
                c.connection_username = user;
                c.connection_password = password;
                c.connection_info = info;
                c.minimum_pool_standby_sessions = min;
                c.downscale_backoff = backoff;
                c.checkin_timeout = timeout;
                c.require_checkin = checkin;
                c.aggressive_scaling = aggressive;
                c.schedules = schedules;
                if ad {
                    c.ad_create_machine_record = true;
                    c.ldap_id = Some("ad".into());
                    c.ad_computer_container_dn = Some("OU=Kasm\\, VDI,DC=example,DC=local".into());
                    c.ad_recursive_machine_record_cleanup = true;
                }
                c
            },
        )
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..4, 1usize..3, secret(), text(), api())
        .prop_flat_map(|(providers, pools, ldap_password, description, ldap_api)| {
            let provider_names: Vec<String> = (0..providers).map(|i| format!("prov-{i}")).collect();
            let providers = provider_names
                .iter()
                .cloned()
                .map(provider)
                .collect::<Vec<_>>();
            let pools = (0..pools)
                .map(|i| {
                    let configs = (0..2)
                        .map(|j| {
                            autoscale(
                                format!("cfg-{i}-{j}"),
                                provider_names[(i + j) % provider_names.len()].clone(),
                            )
                        })
                        .collect::<Vec<_>>();
                    (
                        configs,
                        prop::sample::select(vec![
                            RdpClientType::WebNative,
                            RdpClientType::RdpLocalClient,
                        ]),
                    )
                })
                .collect::<Vec<_>>();
            (
                providers,
                pools,
                Just(ldap_password),
                Just(description),
                Just(ldap_api),
            )
        })
        .prop_map(
            |(vm_providers, pools, ldap_password, description, ldap_api)| {
                let mut config = Config {
                    zones: vec![Zone {
                        zone_name: "default".into(),
                        upstream_auth_address: "kasm.example.com".into(),
                    }],
                    ldap_configs: vec![LdapConfig {
                        name: "ad".into(),
                        enabled: false,
                        url: "ldaps://dc1.example.local:636".into(),
                        search_base: "DC=example,DC=local".into(),
                        service_account_dn: "svc@example.local".into(),
                        service_account_password: ldap_password,
                        start_tls: false,
                        ca_certificate_file: Some("/etc/ssl/ad-ca.pem".into()),
                        connection_timeout: 7,
                        danger_skip_tls_verify: false,
                        danger_allow_plaintext: false,
                        api_concurrency: ldap_api.0,
                        api_rate_limit_per_second: ldap_api.1,
                        api_call_timeout: ldap_api.2,
                    }],
                    vm_providers,
                    pools: Vec::new(),
                    workspaces: Vec::new(),
                    checkin_token: (description.len() % 2 == 0).then(|| CheckinTokenConfig {
                        algorithm: TokenAlgorithm::HS256,
                        key: Some(Secret::new(format!(
                            "{}-and-some-more-bytes-for-hs256",
                            description
                        ))),
                        ..CheckinTokenConfig::default()
                    }),
                    broker_api: None,
                    // Durable only with a lasting token key (a validation rule).
                    state_store: (description.len() % 2 == 0).then(|| {
                        StateStoreConfig::File(FileStoreConfig {
                            path: format!("/var/lib/kasm-scale/{}.json", description.len()),
                        })
                    }),
                };
                for (i, (autoscale, client)) in pools.into_iter().enumerate() {
                    let name = format!("pool-{i}");
                    config.workspaces.push(Workspace {
                        friendly_name: format!("ws-{i}"),
                        description: description.clone(),
                        enabled: i % 2 == 0,
                        server_pool_id: name.clone(),
                        rdp_client_type: client,
                    });
                    config.pools.push(Pool {
                        server_pool_name: name,
                        server_pool_type: ServerPoolType::ServerPool,
                        session_placement: if i % 2 == 0 {
                            Placement::DepthFirst
                        } else {
                            Placement::BreadthFirst
                        },
                        autoscale,
                        user_affinity: None,
                    });
                }
                // The built-in Linux script creates a local account with `chpasswd`: its configs
                // need a plain account name and a password without line breaks (a validation
                // rule).
                let linux: Vec<String> = config
                    .vm_providers
                    .iter()
                    .filter(|p| p.startup_script_builtin() == Some("linux"))
                    .map(|p| p.name().to_owned())
                    .collect();
                for c in config.pools.iter_mut().flat_map(|p| p.autoscale.iter_mut()) {
                    if !linux.contains(&c.vm_provider_config_id) {
                        continue;
                    }
                    if let Some(user) = &mut c.connection_username {
                        let plain: String =
                            user.chars().filter(char::is_ascii_alphanumeric).collect();
                        *user = format!("u{plain}").chars().take(32).collect();
                    }
                    if let Some(password) = &mut c.connection_password {
                        *password = Secret::new(password.expose().replace(['\n', '\r'], " "));
                    }
                }
                config
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn valid_configs_survive_a_round_trip(config in config()) {
        // Only configurations the rules accept are meaningful here (warnings are fine).
        if let Err(ConfigError::Invalid { problems }) = validate(&config) {
            return Err(TestCaseError::fail(format!("generator made an invalid config: {problems:?}")));
        }
        round_trip(&config);
    }
}
