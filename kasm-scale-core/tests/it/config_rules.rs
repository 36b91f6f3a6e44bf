//! Every validation rule: feed the bad input, check the exact path and message.

use crate::support;

use kasm_scale_core::config::{ConnectionType, CredentialType, validate};
use kasm_scale_core::{ConfigError, Format, load_str};
use serde_json::{Value, json};
use support::{asc, base, errors, warnings};

#[test]
fn base_is_valid() {
    errors(|_| {}, &[]);
    warnings(|_| {}, &[]);
}

#[test]
fn sessions_per_server_forcing_rules() {
    errors(
        |d| asc(d)["max_simultaneous_sessions_per_server"] = json!(2),
        &[
            "pools[0].autoscale[0].max_simultaneous_sessions_per_server: must be 1 when reusable is false",
        ],
    );
    for kind in ["KasmVNC", "VNC"] {
        errors(
            |d| {
                let c = asc(d);
                c["connection_type"] = json!(kind);
                c["connection_port"] = json!(6901);
                c["reusable"] = json!(true);
                c["connection_credential_type"] = json!("SSO User Accounts");
                c["max_simultaneous_sessions_per_server"] = json!(3);
            },
            &[&format!(
                "pools[0].autoscale[0].max_simultaneous_sessions_per_server: must be 1 for {kind} connections"
            )],
        );
    }
    errors(
        |d| {
            let c = asc(d);
            c["reusable"] = json!(true);
            c["connection_credential_type"] = json!("SSO User Accounts");
            c["max_simultaneous_sessions_per_server"] = json!(5);
        },
        &[],
    );
    errors(
        |d| asc(d)["max_simultaneous_sessions_per_server"] = json!(0),
        &[
            "pools[0].autoscale[0].max_simultaneous_sessions_per_server: must be between 1 and 1000, got 0",
        ],
    );
}

#[test]
fn ports() {
    errors(
        |d| asc(d)["connection_port"] = json!(0),
        &["pools[0].autoscale[0].connection_port: must be between 1 and 65535, got 0"],
    );
    errors(
        |d| asc(d)["connection_port"] = json!(65536),
        &["pools[0].autoscale[0].connection_port: must be between 1 and 65535, got 65536"],
    );
    errors(
        |d| asc(d)["connection_type"] = json!("SSH"),
        &[
            "pools[0].autoscale[0].connection_port: required for SSH connections (they have no default port)",
        ],
    );
}

#[test]
fn counts_must_not_be_negative() {
    errors(
        |d| asc(d)["minimum_pool_standby_sessions"] = json!(-1),
        &[
            "pools[0].autoscale[0].minimum_pool_standby_sessions: must be between 0 and 100000, got -1",
        ],
    );
    errors(
        |d| asc(d)["downscale_backoff"] = json!(-60),
        &[
            "pools[0].autoscale[0].downscale_backoff: must be between 0 and 2592000 seconds (30 days), got -60",
        ],
    );
    errors(
        |d| d["vm_providers"][0]["max_instances"] = json!(0),
        &["vm_providers[0].max_instances: must be between 1 and 10000, got 0"],
    );
    errors(
        |d| d["vm_providers"][1]["max_instances"] = json!("many"),
        &["vm_providers[1].max_instances: invalid type: string \"many\", expected an integer"],
    );
}

#[test]
fn active_directory_fields() {
    errors(
        |d| asc(d)["ad_create_machine_record"] = json!(true),
        &["pools[0].autoscale[0].ldap_id: required when ad_create_machine_record is true"],
    );
    // Unset, the container is `CN=Computers,<search_base>`: nothing to complain about.
    errors(
        |d| {
            let c = asc(d);
            c["ad_create_machine_record"] = json!(true);
            c["ldap_id"] = json!("ad");
        },
        &[],
    );
    errors(
        |d| {
            let c = asc(d);
            c["ad_create_machine_record"] = json!(true);
            c["ldap_id"] = json!("ad");
            c["ad_computer_container_dn"] = json!("OU=Computers;DC=example,DC=local");
        },
        &[
            "pools[0].autoscale[0].ad_computer_container_dn: `OU=Computers;DC=example,DC=local` is not a valid DN: `;` at byte 12 must be escaped",
        ],
    );
    errors(
        |d| {
            let c = asc(d);
            c["ad_create_machine_record"] = json!(true);
            c["ldap_id"] = json!("ad");
            c["ad_computer_container_dn"] = json!("Computers");
        },
        &[
            "pools[0].autoscale[0].ad_computer_container_dn: `Computers` is not a valid DN: RDN 1 has no valid `attribute=` part",
        ],
    );
    warnings(
        |d| {
            let c = asc(d);
            c["ad_create_machine_record"] = json!(true);
            c["ldap_id"] = json!("ad");
            c["ad_computer_container_dn"] = json!("OU=Computers,DC=other,DC=local");
        },
        &[
            "pools[0].autoscale[0].ad_computer_container_dn: is in domain `other.local` but the LDAP config's search base is in `example.local`",
        ],
    );
}

#[test]
fn references_resolve() {
    errors(
        |d| {
            let c = asc(d);
            c["zone_id"] = json!("eu");
            c["vm_provider_config_id"] = json!("gcp");
            c["ldap_id"] = json!("corp");
            d["workspaces"][0]["server_pool_id"] = json!("q");
        },
        &[
            "pools[0].autoscale[0].zone_id: refers to zone `eu`, which is not defined",
            "pools[0].autoscale[0].vm_provider_config_id: refers to VM provider config `gcp`, which is not defined",
            "pools[0].autoscale[0].ldap_id: refers to LDAP config `corp`, which is not defined",
            "workspaces[0].server_pool_id: refers to pool `q`, which is not defined",
        ],
    );
    // A reference to an element that failed to load is not reported a second time.
    errors(
        |d| {
            d["vm_providers"][0]
                .as_object_mut()
                .unwrap()
                .remove("aws_region")
                .map(drop)
                .unwrap()
        },
        &["vm_providers[0].aws_region: missing (required)"],
    );
}

#[test]
fn names_are_unique_and_present() {
    errors(
        |d| {
            let pool = d["pools"][0].clone();
            d["pools"].as_array_mut().unwrap().push(pool);
            d["vm_providers"][2]["name"] = json!("aws");
            d["zones"][0]["zone_name"] = json!(" ");
        },
        &[
            "zones[0].zone_name: must not be empty",
            "vm_providers[2].name: `aws` is already used by vm_providers[0]",
            "pools[1].server_pool_name: `p` is already used by pools[0]",
            "pools[0].autoscale[0].zone_id: refers to zone `default`, which is not defined",
            "pools[1].autoscale[0].autoscale_config_name: `a` is already used by pools[0].autoscale[0]",
            "pools[1].autoscale[0].zone_id: refers to zone `default`, which is not defined",
        ],
    );
}

#[test]
fn unknown_fields_suggest_the_right_name() {
    errors(
        |d| {
            asc(d)["conection_port"] = json!(3389);
            d["vm_providers"][0]["aws_ec2_instance_typ"] = json!("t3.large");
            d["pool"] = json!([]);
            d["zones"][0]["colour"] = json!("blue");
        },
        &[
            "pool: unknown field, did you mean `pools`?",
            "zones[0].colour: unknown field; expected one of `zone_name`, `upstream_auth_address`",
            "vm_providers[0].aws_ec2_instance_typ: unknown field, did you mean `aws_ec2_instance_type`?",
            "pools[0].autoscale[0].conection_port: unknown field, did you mean `connection_port`?",
        ],
    );
    errors(
        |d| asc(d)["connection_type"] = json!("RDPP"),
        &["pools[0].autoscale[0].connection_type: unknown value, did you mean `RDP`?"],
    );
    errors(
        |d| d["vm_providers"][2]["provider"] = json!("memry"),
        &["vm_providers[2].provider: unknown provider, did you mean `memory`?"],
    );
    errors(
        |d| {
            d["vm_providers"][2]
                .as_object_mut()
                .unwrap()
                .remove("provider")
                .map(drop)
                .unwrap()
        },
        &["vm_providers[2].provider: missing field; one of `aws`, `azure`, `memory`"],
    );
}

#[test]
fn schedules() {
    let with = |s: Value| move |d: &mut Value| asc(d)["schedules"] = json!([s]);
    errors(
        with(
            json!({"active_start_time": "8:00", "active_end_time": "18:00:00", "timezone": "Europe/Berln",
                    "days_of_the_week": [0]}),
        ),
        &[
            "pools[0].autoscale[0].schedules[0].active_start_time: `8:00` is not a time of day in HH:MM:SS form",
            "pools[0].autoscale[0].schedules[0].timezone: unknown time zone `Europe/Berln` (use an IANA name such as `Europe/Berlin`)",
            "pools[0].autoscale[0].schedules[0].days_of_the_week[0]: 0 is not a day number (1 = Monday … 7 = Sunday)",
        ],
    );
    errors(
        with(
            json!({"active_start_time": "08:00", "active_end_time": "18:00", "days_of_the_week": []}),
        ),
        &["pools[0].autoscale[0].schedules[0].days_of_the_week: must list at least one day"],
    );
    errors(
        with(
            json!({"active_start_time": "08:00", "active_end_time": "18:00", "days_of_the_week": ["Mon", "Fryday"]}),
        ),
        &[
            "pools[0].autoscale[0].schedules[0].days_of_the_week[1]: `Fryday` is not a day of the week (Monday … Sunday, or 1 … 7)",
        ],
    );
}

#[test]
fn ldap_connections() {
    errors(
        |d| {
            d["ldap_configs"][0]["url"] = json!("ldap://dc1.example.local");
            d["ldap_configs"][0]["search_base"] = json!("OU=Users");
        },
        &[
            "ldap_configs[0].url: ldap:// sends the join passwords in clear; use ldaps://, set start_tls, or (tests only) danger_allow_plaintext",
            "ldap_configs[0].search_base: has no DC= parts to derive the AD domain from",
        ],
    );
    errors(
        |d| d["ldap_configs"][0]["start_tls"] = json!(true),
        &["ldap_configs[0].start_tls: applies only to ldap:// URLs; ldaps:// is already TLS"],
    );
    errors(
        |d| d["ldap_configs"][0]["url"] = json!("http://x"),
        &["ldap_configs[0].url: unknown scheme `http`; use ldaps:// or ldap://"],
    );
    errors(
        |d| {
            d["ldap_configs"][0]["url"] = json!("ldap://dc1");
            d["ldap_configs"][0]["start_tls"] = json!(true);
        },
        &[],
    );
    warnings(
        |d| d["ldap_configs"][0]["danger_skip_tls_verify"] = json!(true),
        &[
            "ldap_configs[0].danger_skip_tls_verify: server certificates are not checked: use only in tests",
        ],
    );
}

#[test]
fn aws_settings() {
    errors(
        |d| {
            let p = &mut d["vm_providers"][0];
            p["aws_access_key_id"] = json!("AKIA");
            p["aws_ec2_ebs_volume_type"] = json!("gp4");
            p["retrieve_password"] = json!(true);
            p["aws_endpoint_url"] = json!("localhost:5000");
        },
        &[
            "vm_providers[0].aws_secret_access_key: required with aws_access_key_id",
            "vm_providers[0].aws_ec2_ebs_volume_type: `gp4` is not one of gp2, gp3, io1, io2, st1, sc1, standard",
            "vm_providers[0].retrieve_password: needs aws_ec2_key_name and aws_ec2_private_key",
            "vm_providers[0].aws_endpoint_url: `localhost:5000` must be an https:// URL (http:// only to a loopback host)",
        ],
    );
}

#[test]
fn azure_settings() {
    errors(
        |d| {
            let p = &mut d["vm_providers"][1];
            p["azure_os_disk_type"] = json!("Premium_SSD");
            p["azure_image_reference"] = json!({"publisher": "Canonical", "offer": "ubuntu"});
            p["azure_is_windows"] = json!(true);
        },
        &[
            "vm_providers[1].azure_os_disk_type: `Premium_SSD` is not one of Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS, Premium_ZRS",
            "vm_providers[1].azure_image_reference: needs `id`, or `publisher`, `offer`, `sku` and `version` (missing sku, version)",
            "vm_providers[1].azure_os_password: required for Windows VMs",
        ],
    );
    errors(
        |d| {
            d["vm_providers"][1]
                .as_object_mut()
                .unwrap()
                .remove("azure_ssh_public_key")
                .map(drop)
                .unwrap()
        },
        &[
            "vm_providers[1].azure_ssh_public_key: Linux VMs need azure_ssh_public_key or azure_os_password",
        ],
    );
    errors(
        |d| d["vm_providers"][1]["azure_image_reference"] = json!("not json"),
        &[
            "vm_providers[1].azure_image_reference: is not valid JSON: expected ident at line 1 column 2",
        ],
    );
    errors(
        |d| d["vm_providers"][1]["azure_authority"] = json!("https://login.chinacloudapi.cn"),
        &[],
    );
}

#[test]
fn azure_ids_that_enter_url_paths() {
    let guid = "is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)";
    let group = "a resource group name has only letters, digits, `_`, `-`, `.`, `(` and `)`";
    errors(
        |d| {
            let p = &mut d["vm_providers"][1];
            p["azure_subscription_id"] = json!("00000000-0000-0000-0000-00000000000a/../x");
            p["azure_resource_group"] = json!("kasm/providers/Microsoft.Compute");
            p["azure_tenant_id"] = json!("contoso.onmicrosoft.com");
        },
        &[
            &format!(
                "vm_providers[1].azure_subscription_id: `00000000-0000-0000-0000-00000000000a/../x` {guid}"
            ),
            &format!(
                "vm_providers[1].azure_resource_group: `kasm/providers/Microsoft.Compute` has `/`: {group}"
            ),
            &format!("vm_providers[1].azure_tenant_id: `contoso.onmicrosoft.com` {guid}"),
        ],
    );
    for (value, message) in [
        ("kasm?x=1", format!("`kasm?x=1` has `?`: {group}")),
        ("kasm#x", format!("`kasm#x` has `#`: {group}")),
        ("kasm%2F..", format!("`kasm%2F..` has `%`: {group}")),
        ("my group", format!("`my group` has ` `: {group}")),
        ("kasm.", "`kasm.` must not end with a period".to_owned()),
        ("..", "`..` must not end with a period".to_owned()),
        (
            &"r".repeat(91),
            "must be at most 90 characters, got 91".to_owned(),
        ),
    ] {
        errors(
            |d| d["vm_providers"][1]["azure_resource_group"] = json!(value),
            &[&format!("vm_providers[1].azure_resource_group: {message}")],
        );
    }
    for good in ["Kasm_VDI-(prod).eu", "grüße-rg", &"r".repeat(90)] {
        errors(
            |d| d["vm_providers"][1]["azure_resource_group"] = json!(good),
            &[],
        );
    }
    errors(
        |d| {
            d["vm_providers"][1]["azure_tenant_id"] =
                json!("{72f988bf-86f1-41af-91ab-2d7cd011db47}")
        },
        &[&format!(
            "vm_providers[1].azure_tenant_id: `{{72f988bf-86f1-41af-91ab-2d7cd011db47}}` {guid}"
        )],
    );
    errors(
        |d| d["vm_providers"][1]["azure_subscription_id"] = json!(""),
        &["vm_providers[1].azure_subscription_id: must not be empty"],
    );
}

#[test]
fn memory_settings() {
    errors(
        |d| {
            let p = &mut d["vm_providers"][2];
            p["boot_latency"] = json!({"uniform": [90, 30]});
            p["create_failure_rate"] = json!(1.5);
            p["rate_limit_per_second"] = json!(0);
        },
        &[
            "vm_providers[2].create_failure_rate: must be between 0 and 1, got 1.5",
            "vm_providers[2].boot_latency: uniform bounds must satisfy 0 ≤ low ≤ high, got [90, 30]",
            "vm_providers[2].rate_limit_per_second: must be between 0.001 and 100000 calls per second, got 0",
        ],
    );
}

#[test]
fn docker_agent_pools_are_refused() {
    errors(
        |d| d["pools"][0]["server_pool_type"] = json!("Docker Agent"),
        &["pools[0].server_pool_type: `Docker Agent` pools are not supported; use `Server Pool`"],
    );
}

#[test]
fn warnings_do_not_fail_the_load() {
    warnings(
        |d| {
            let c = asc(d);
            c["reusable"] = json!(true);
            c["minimum_pool_standby_sessions"] = json!(5);
            c["use_user_private_key"] = json!(true);
        },
        &[
            "pools[0].autoscale[0].use_user_private_key: applies only to SSH connections, not RDP",
            "pools[0].autoscale[0].reusable: a reusable server keeps traces of earlier users; make servers reusable only with SSO User Accounts",
            "pools[0].autoscale[0].minimum_pool_standby_sessions: 5 can never be met: max_instances 4 × 1 sessions per server = 4",
        ],
    );
}

#[test]
fn the_document_shape() {
    errors(
        |d| d["pools"] = json!({"a": 1}),
        &["pools: must be a list, got an object"],
    );
    let e = load_str("[1, 2]", Format::Json).unwrap_err();
    assert_eq!(
        e.to_string(),
        "1 problem(s):\n  the document must be a table / mapping of sections"
    );
}

#[test]
fn code_built_configs_are_validated_the_same_way() {
    let mut config = load_str(&base().to_string(), Format::Json).unwrap().config;
    let c = &mut config.pools[0].autoscale[0];
    c.connection_type = ConnectionType::Vnc;
    c.connection_credential_type = CredentialType::PromptUser;
    let Err(ConfigError::Invalid { problems }) = validate(&config) else {
        panic!("VNC without a port is invalid")
    };
    assert_eq!(
        problems[0].to_string(),
        "pools[0].autoscale[0].connection_port: required for VNC connections (they have no default port)"
    );
}

#[test]
fn startup_scripts_are_checked_when_the_config_loads() {
    errors(
        |d| {
            d["vm_providers"][0]["startup_script"] =
                json!("#!/bin/bash\necho ok\nawk '{print $4}'\n")
        },
        &[
            "vm_providers[0].startup_script: line 3, column 6: KeyError: 'print $4' (no such variable; write literal braces as {{ and }})",
        ],
    );
    errors(
        |d| d["vm_providers"][1]["startup_script"] = json!("f() {\n  echo {server_id}\n}\n"),
        &[
            "vm_providers[1].startup_script: line 1, column 5: ValueError: unexpected '{' in field name (write literal braces as {{ and }})",
            "vm_providers[1].startup_script: line 3, column 1: ValueError: Single '}' encountered in format string (write literal braces as {{ and }})",
        ],
    );
    errors(
        |d| d["vm_providers"][2]["startup_script"] = json!("x = {server_id:>9999999}"),
        &[
            "vm_providers[2].startup_script: line 1, column 5: Unsupported: width 9999999 is larger than the 1048576 characters the renderer pads to",
        ],
    );
    // Known variables, user-defined ones and Kasm's idioms are fine.
    errors(
        |d| {
            let p = &mut d["vm_providers"][2];
            p["startup_script"] = json!("${{KASM_X:-{checkin_jwt}}} {share} {connection_username}");
            p["startup_script_variables"] = json!({"share": "\\\\fs1\\profiles"});
        },
        &[],
    );
}

#[test]
fn a_script_reports_pythons_error_first_then_every_other_problem() {
    // Unknown name on line 3, lone `{` on line 13, lone `}` on line 14: Python raises the
    // KeyError first; the other two follow in document order.
    let mut script = String::from("#!/bin/bash\nset -e\necho {server_nam}\n");
    for i in 4..13 {
        script.push_str(&format!("echo line{i}\n"));
    }
    script.push_str("echo \"{\" ; echo {server_id}\necho done}\n");
    errors(
        |d| d["vm_providers"][0]["startup_script"] = json!(script),
        &[
            "vm_providers[0].startup_script: line 3, column 6: KeyError: 'server_nam' (no such variable; write literal braces as {{ and }})",
            "vm_providers[0].startup_script: line 13, column 7: ValueError: unexpected '{' in field name (write literal braces as {{ and }})",
            "vm_providers[0].startup_script: line 14, column 10: ValueError: Single '}' encountered in format string (write literal braces as {{ and }})",
        ],
    );
}

#[test]
fn startup_script_variables_and_builtins() {
    errors(
        |d| {
            let p = &mut d["vm_providers"][2];
            p["startup_script_variables"] = json!({"domain": "x", "1st": "y", "ok_name": "z"});
        },
        &[
            "vm_providers[2].startup_script_variables.1st: a variable name must be letters, digits and _, not starting with a digit",
            "vm_providers[2].startup_script_variables.domain: is a built-in variable; choose another name",
        ],
    );
    errors(
        |d| d["vm_providers"][0]["startup_script_builtin"] = json!("windws"),
        &[
            "vm_providers[0].startup_script_builtin: unknown built-in script, did you mean `windows`?",
        ],
    );
    errors(
        |d| {
            d["vm_providers"][0]["startup_script_builtin"] = json!("linux");
            d["vm_providers"][0]["startup_script"] = json!("echo");
        },
        &[
            "vm_providers[0].startup_script_builtin: set either startup_script or startup_script_builtin, not both",
        ],
    );
    errors(
        |d| d["vm_providers"][0]["startup_script_builtin"] = json!("windows"),
        &[],
    );
}

#[test]
fn ad_variables_without_an_ad_record_are_a_warning() {
    warnings(
        |d| {
            d["vm_providers"][0]["startup_script"] =
                json!("realm join {domain} --one-time-password={ad_join_credential}")
        },
        &[
            "pools[0].autoscale[0].ad_create_machine_record: is false, but the startup script of vm_providers[0] uses {domain}, {ad_join_credential}: they render as empty strings for a",
        ],
    );
    warnings(
        |d| {
            d["vm_providers"][0]["startup_script"] = json!("realm join {domain}");
            let c = asc(d);
            c["ad_create_machine_record"] = json!(true);
            c["ldap_id"] = json!("ad");
            c["ad_computer_container_dn"] = json!("OU=Computers,DC=example,DC=local");
        },
        &[],
    );
}

#[test]
fn scripts_must_fit_the_delivery_limit_with_a_real_token() {
    // 16,000 bytes of text fit AWS's 16,384 bytes alone, not with a check-in token and the
    // `<powershell>` wrapping of a Windows AMI.
    let filler = "#".repeat(16_000);
    errors(
        |d| {
            d["vm_providers"][0]["startup_script"] = json!(format!("{filler}\n{{checkin_jwt}}\n"));
            d["vm_providers"][0]["aws_is_windows"] = json!(true);
        },
        &[
            "vm_providers[0].startup_script: renders to 16492 bytes for a with the longest values (a 462-byte check-in token), over the 16384-byte AWS user-data limit",
        ],
    );
    errors(
        |d| d["vm_providers"][0]["startup_script"] = json!(format!("{filler}\n")),
        &[],
    );
    errors(
        |d| d["vm_providers"][1]["startup_script"] = json!("x".repeat(65_536)),
        &[
            "vm_providers[1].startup_script: renders to 65536 bytes with the longest values (a 546-byte check-in token), over the 65535-byte Azure custom-data limit",
        ],
    );
}

#[test]
fn checkin_token_key_sources() {
    errors(
        |d| d["checkin_token"] = json!({"algorithm": "HS256", "key": "k", "key_env": "X"}),
        &["checkin_token: give the key in one way only: key, key_file or key_env"],
    );
    warnings(
        |d| d["checkin_token"] = json!({}),
        &[
            "checkin_token: no key: a fresh one is made at start, and booting servers cannot check in after a restart",
        ],
    );
    errors(
        |d| d["checkin_token"] = json!({"algorithm": "RS256"}),
        &["checkin_token.algorithm: unknown value, did you mean `HS256`?"],
    );
    errors(|d| d["checkin_token"] = json!({"key_env": "KASM_KEY"}), &[]);
}

#[test]
fn checkin_token_previous_keys() {
    errors(
        |d| d["checkin_token"] = json!({"previous_keys": ["-----BEGIN PUBLIC KEY-----"]}),
        &[
            "checkin_token.previous_keys: previous keys need the key that replaced them (key, key_file or key_env)",
        ],
    );
    errors(
        |d| {
            d["checkin_token"] =
                json!({"key_env": "KASM_KEY", "previous_keys": [" "], "previous_key_files": [""]})
        },
        &[
            "checkin_token.previous_keys[0]: empty",
            "checkin_token.previous_key_files[0]: empty",
        ],
    );
    errors(
        |d| d["checkin_token"] = json!({"key_env": "KASM_KEY", "previous_keys": vec!["k"; 17]}),
        &["checkin_token.previous_keys: 17 previous keys (with previous_key_files), at most 16"],
    );
    errors(
        |d| {
            d["checkin_token"] =
                json!({"key_env": "KASM_KEY", "previous_key_files": ["/etc/kasm-scale/old.pem"]})
        },
        &[],
    );
    // Secrets: not shown.
    let mut doc = base();
    doc["checkin_token"] = json!({"key_env": "K", "previous_keys": ["an-old-hs256-secret"]});
    let loaded =
        kasm_scale_core::load_str(&doc.to_string(), kasm_scale_core::Format::Json).expect("valid");
    assert!(!format!("{:?}", loaded.config).contains("an-old"));
}

#[test]
fn broker_api_keys_are_long_enough_and_secret() {
    errors(
        |d| d["broker_api"] = json!({"keys": ["short-key", "k".repeat(32)]}),
        &["broker_api.keys[0]: must be at least 32 characters, got 9"],
    );
    errors(
        |d| d["broker_api"] = json!({"keys": []}),
        &["broker_api.keys: give at least one key"],
    );
    let mut doc = base();
    doc["broker_api"] = json!({"keys": ["a-secret-key-0123456789-0123456789"]});
    let loaded =
        kasm_scale_core::load_str(&doc.to_string(), kasm_scale_core::Format::Json).expect("valid");
    let shown = format!("{:?}", loaded.config);
    assert!(!shown.contains("a-secret-key"), "{shown}");
}

#[test]
fn a_state_store_is_named_by_kind_and_a_durable_one_needs_a_lasting_token_key() {
    errors(|d| d["state_store"] = json!({"kind": "memory"}), &[]);
    errors(
        |d| d["state_store"] = json!({"kind": "memory", "path": "x"}),
        &["state_store.path: unknown field"],
    );
    errors(
        |d| {
            d["state_store"] = json!({"kind": "file", "path": "/var/lib/kasm-scale/state.json"});
            d["checkin_token"] = json!({"key_env": "KASM_KEY"});
        },
        &[],
    );
    errors(
        |d| d["state_store"] = json!({"kind": "file", "path": "/var/lib/kasm-scale/state.json"}),
        &[
            "state_store: a durable store needs a checkin_token key (key, key_file or key_env): with a key made at start, servers booting across a restart could never check in",
        ],
    );
    errors(
        |d| {
            d["state_store"] = json!({"kind": "file", "path": " "});
            d["checkin_token"] = json!({"key_env": "KASM_KEY"});
        },
        &["state_store.path: must not be empty"],
    );
    errors(
        |d| d["state_store"] = json!({"kind": "fil", "path": "x"}),
        &["state_store.kind: unknown value, did you mean `file`?"],
    );
    errors(
        |d| {
            d["state_store"] = json!({"kind": "file", "path": "x", "paht": "y"});
            d["checkin_token"] = json!({"key_env": "KASM_KEY"});
        },
        &["state_store.paht: unknown field, did you mean `path`?"],
    );
}
