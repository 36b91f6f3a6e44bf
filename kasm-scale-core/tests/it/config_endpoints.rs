//! Endpoint overrides and plaintext: what carries credentials, startup scripts and join
//! passwords never crosses a network in clear unless a `danger_` flag says so, with a warning.

use crate::support;

use serde_json::json;
use support::{errors, warnings};

#[test]
fn http_endpoint_overrides_to_other_hosts_are_refused() {
    errors(
        |d| {
            d["vm_providers"][0]["aws_endpoint_url"] = json!("http://ec2.internal.example:8080");
            d["vm_providers"][1]["azure_resource_manager_url"] = json!("http://10.1.2.3/");
            d["vm_providers"][1]["azure_authority_url"] = json!("http://login.example/");
        },
        &[
            "vm_providers[0].aws_endpoint_url: http:// to `ec2.internal.example` would carry credentials and startup scripts in clear; use https://, a loopback host, or (tests only) danger_allow_plaintext",
            "vm_providers[1].azure_resource_manager_url: http:// to `10.1.2.3` would carry credentials and startup scripts in clear; use https://, a loopback host, or (tests only) danger_allow_plaintext",
            "vm_providers[1].azure_authority_url: http:// to `login.example` would carry credentials and startup scripts in clear; use https://, a loopback host, or (tests only) danger_allow_plaintext",
        ],
    );
}

#[test]
fn https_and_loopback_endpoints_load_without_a_word() {
    warnings(
        |d| {
            d["vm_providers"][0]["aws_endpoint_url"] = json!("http://127.0.0.1:5099");
            d["vm_providers"][1]["azure_resource_manager_url"] = json!("http://[::1]:8443/");
            d["vm_providers"][1]["azure_authority_url"] =
                json!("https://login.microsoftonline.us/");
        },
        &[],
    );
}

#[test]
fn the_danger_flag_allows_plaintext_with_a_warning() {
    warnings(
        |d| {
            d["vm_providers"][0]["aws_endpoint_url"] = json!("http://ec2.lab.example");
            d["vm_providers"][0]["danger_allow_plaintext"] = json!(true);
            d["vm_providers"][1]["azure_resource_manager_url"] = json!("http://arm.lab.example");
            d["vm_providers"][1]["danger_allow_plaintext"] = json!(true);
        },
        &[
            "vm_providers[0].aws_endpoint_url: http:// to `ec2.lab.example` carries credentials and startup scripts in clear: use only in tests",
            "vm_providers[1].azure_resource_manager_url: http:// to `arm.lab.example` carries credentials and startup scripts in clear: use only in tests",
        ],
    );
}

#[test]
fn malformed_endpoints_are_refused_by_field() {
    errors(
        |d| {
            d["vm_providers"][0]["aws_endpoint_url"] = json!("ec2.example.com");
            d["vm_providers"][1]["azure_resource_manager_url"] =
                json!("https://admin:hunter2@arm.example/");
        },
        &[
            "vm_providers[0].aws_endpoint_url: `ec2.example.com` must be an https:// URL (http:// only to a loopback host)",
            "vm_providers[1].azure_resource_manager_url: `https://…@arm.example/` must not carry credentials before its host",
        ],
    );
}

#[test]
fn plaintext_ldap_warns_like_skipping_tls_verification() {
    warnings(
        |d| {
            d["ldap_configs"][0]["url"] = json!("ldap://dc1.example.local");
            d["ldap_configs"][0]["danger_allow_plaintext"] = json!(true);
        },
        &[
            "ldap_configs[0].danger_allow_plaintext: the service account password and the join passwords travel in clear: use only in tests",
        ],
    );
    // With StartTLS the flag changes nothing, so it says nothing.
    warnings(
        |d| {
            d["ldap_configs"][0]["url"] = json!("ldap://dc1.example.local");
            d["ldap_configs"][0]["start_tls"] = json!(true);
            d["ldap_configs"][0]["danger_allow_plaintext"] = json!(true);
        },
        &[],
    );
}

#[test]
fn upstream_auth_address_is_a_host_with_an_optional_port() {
    for ok in [
        "kasm.example.com",
        "kasm.example.com:8443",
        "10.0.0.5:443",
        "[::1]:8443",
        "[2001:db8::5]",
    ] {
        errors(|d| d["zones"][0]["upstream_auth_address"] = json!(ok), &[]);
    }
    for (bad, why) in [
        (
            "https://kasm.example.com",
            "`https://kasm.example.com` must be a host name or address with an optional :port (the scripts call https://<it>/api/…)",
        ),
        (
            "kasm.example.com/api",
            "`kasm.example.com/api` must be a host name or address with an optional :port (the scripts call https://<it>/api/…)",
        ),
        (
            "kasm.example.com:0",
            "`kasm.example.com:0`: the port must be a number from 1 to 65535",
        ),
        (
            "kasm.example.com:http",
            "`kasm.example.com:http`: the port must be a number from 1 to 65535",
        ),
        (
            "2001:db8::5",
            "`2001:db8::5`: write an IPv6 address in brackets, [addr]:port",
        ),
        (":8443", "`:8443` has no host"),
        (" ", "must not be empty"),
    ] {
        let want = format!("zones[0].upstream_auth_address: {why}");
        errors(
            |d| d["zones"][0]["upstream_auth_address"] = json!(bad),
            &[want.as_str()],
        );
    }
}
