//! The rules a configuration must follow beyond its types: Kasm's forcing rules, references,
//! unique names, provider settings.

use std::collections::HashMap;

use super::bounds::{
    API_CONCURRENCY, Bound, CALL_TIMEOUT, CHECKIN_TIMEOUT, DOWNSCALE_BACKOFF, INSTANCES,
    OPERATION_TIMEOUT, OUTAGE, PROBABILITY, RATE, SERVICE_TARGET, SESSIONS_PER_SERVER,
    STANDBY_SESSIONS,
};
use super::load::Broken;
use super::provider::{AWS_EBS_VOLUME_TYPES, AwsVmConfig, AzureVmConfig, MemoryVmConfig};
use super::{
    AutoScaleConfig, Config, ConnectionType, CredentialType, Dn, Problem, ServerPoolType,
    VmProviderConfig,
};

/// Adds every problem of `config` to `problems`. `broken` lists elements (or sections) that did
/// not deserialize: references to them are not reported again.
pub(crate) fn check(config: &Config, broken: &[Broken], problems: &mut Vec<Problem>) {
    let mut out = Out { problems, broken };
    // A document that is not a table has been refused as a whole (a broken `` section).
    if config.pools.is_empty()
        && !broken
            .iter()
            .any(|b| b.section == "pools" || b.section.is_empty())
    {
        out.warning(
            "pools".into(),
            "no pools defined: there is nothing to scale (an empty document reads the same in every format)",
        );
    }
    names(
        &mut out,
        "zones",
        "zone_name",
        config.zones.iter().map(|z| z.zone_name.as_str()),
    );
    names(
        &mut out,
        "ldap_configs",
        "name",
        config.ldap_configs.iter().map(|l| l.name.as_str()),
    );
    names(
        &mut out,
        "vm_providers",
        "name",
        config.vm_providers.iter().map(VmProviderConfig::name),
    );
    names(
        &mut out,
        "pools",
        "server_pool_name",
        config.pools.iter().map(|p| p.server_pool_name.as_str()),
    );
    names(
        &mut out,
        "workspaces",
        "friendly_name",
        config.workspaces.iter().map(|w| w.friendly_name.as_str()),
    );

    if let Some(t) = &config.checkin_token {
        let given = [t.key.is_some(), t.key_file.is_some(), t.key_env.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            out.error(
                "checkin_token".into(),
                "give the key in one way only: key, key_file or key_env",
            );
        }
        if given == 0 {
            out.warning("checkin_token".into(), "no key: a fresh one is made at start, and booting servers cannot check in after a restart");
        }
        let previous = t.previous_keys.len() + t.previous_key_files.len();
        if previous > 0 && given == 0 {
            out.error(
                "checkin_token.previous_keys".into(),
                "previous keys need the key that replaced them (key, key_file or key_env)",
            );
        }
        if previous > super::MAX_PREVIOUS_KEYS {
            out.error(
                "checkin_token.previous_keys".into(),
                format!(
                    "{previous} previous keys (with previous_key_files), at most {}",
                    super::MAX_PREVIOUS_KEYS
                ),
            );
        }
        for (i, key) in t.previous_keys.iter().enumerate() {
            if key.expose().trim().is_empty() {
                out.error(format!("checkin_token.previous_keys[{i}]"), "empty");
            }
        }
        for (i, file) in t.previous_key_files.iter().enumerate() {
            if file.trim().is_empty() {
                out.error(format!("checkin_token.previous_key_files[{i}]"), "empty");
            }
        }
    }
    if let Some(store) = &config.state_store {
        state_store(&mut out, config, store);
    }
    if let Some(api) = &config.broker_api {
        if api.keys.is_empty() {
            out.error("broker_api.keys".into(), "give at least one key");
        }
        for (i, key) in api.keys.iter().enumerate() {
            let len = key.expose().chars().count();
            if len < super::MIN_BROKER_KEY_LEN {
                out.error(
                    format!("broker_api.keys[{i}]"),
                    format!(
                        "must be at least {} characters, got {len}",
                        super::MIN_BROKER_KEY_LEN
                    ),
                );
            }
        }
    }
    for (i, zone) in config.zones.iter().enumerate() {
        if let Err(e) = auth_address(&zone.upstream_auth_address) {
            out.error(format!("zones[{i}].upstream_auth_address"), e);
        }
    }
    for (i, ldap) in config.ldap_configs.iter().enumerate() {
        let p = format!("ldap_configs[{i}]");
        let (scheme, rest) = ldap.url.split_once("://").unwrap_or(("", ""));
        match scheme.to_ascii_lowercase().as_str() {
            _ if rest.is_empty() => out.error(format!("{p}.url"), "must be ldaps://host[:port] or ldap://host[:port]"),
            "ldaps" if ldap.start_tls => {
                out.error(format!("{p}.start_tls"), "applies only to ldap:// URLs; ldaps:// is already TLS")
            }
            "ldaps" => {}
            "ldap" if ldap.start_tls || ldap.danger_allow_plaintext => {}
            "ldap" => out.error(
                format!("{p}.url"),
                "ldap:// sends the join passwords in clear; use ldaps://, set start_tls, or (tests only) danger_allow_plaintext",
            ),
            _ => out.error(format!("{p}.url"), format!("unknown scheme `{scheme}`; use ldaps:// or ldap://")),
        }
        match Dn::parse(&ldap.search_base) {
            Err(e) => out.error(format!("{p}.search_base"), e),
            Ok(dn) if dn.domain().is_none() => out.error(
                format!("{p}.search_base"),
                "has no DC= parts to derive the AD domain from",
            ),
            Ok(_) => {}
        }
        if ldap.service_account_dn.trim().is_empty() {
            out.error(format!("{p}.service_account_dn"), "must not be empty");
        }
        if ldap.danger_allow_plaintext && scheme.eq_ignore_ascii_case("ldap") && !ldap.start_tls {
            out.warning(
                format!("{p}.danger_allow_plaintext"),
                "the service account password and the join passwords travel in clear: use only in tests",
            );
        }
        if ldap.danger_skip_tls_verify {
            out.warning(
                format!("{p}.danger_skip_tls_verify"),
                "server certificates are not checked: use only in tests",
            );
        }
        out.int(
            &p,
            "connection_timeout",
            ldap.connection_timeout,
            &CALL_TIMEOUT,
        );
        api_fields(
            &mut out,
            &p,
            (
                ldap.api_concurrency,
                ldap.api_rate_limit_per_second,
                ldap.api_call_timeout,
            ),
        );
    }
    for (i, provider) in config.vm_providers.iter().enumerate() {
        let p = format!("vm_providers[{i}]");
        match provider {
            VmProviderConfig::Aws(c) => aws(&mut out, &p, c),
            VmProviderConfig::Azure(c) => azure(&mut out, &p, c),
            VmProviderConfig::Memory(c) => memory(&mut out, &p, c),
        }
        for (field, message) in provider.offering_problems() {
            out.error(format!("{p}.{field}"), message);
        }
        api_fields(&mut out, &p, provider.api_fields());
        out.int(&p, "max_instances", provider.max_instances(), &INSTANCES);
    }

    let mut config_names: HashMap<&str, String> = HashMap::new();
    for (i, pool) in config.pools.iter().enumerate() {
        if pool.server_pool_type == ServerPoolType::DockerAgent {
            out.error(
                format!("pools[{i}].server_pool_type"),
                "`Docker Agent` pools are not supported; use `Server Pool`",
            );
        }
        for (j, c) in pool.autoscale.iter().enumerate() {
            let p = format!("pools[{i}].autoscale[{j}]");
            let name = c.autoscale_config_name.as_str();
            if name.trim().is_empty() {
                out.error(format!("{p}.autoscale_config_name"), "must not be empty");
            } else if let Some(first) = config_names.get(name) {
                out.error(
                    format!("{p}.autoscale_config_name"),
                    format!("`{name}` is already used by {first}"),
                );
            } else {
                config_names.insert(name, p.clone());
            }
            autoscale(&mut out, config, &p, c);
        }
    }
    for (i, w) in config.workspaces.iter().enumerate() {
        out.reference(
            format!("workspaces[{i}].server_pool_id"),
            "pools",
            &w.server_pool_id,
            config.pool(&w.server_pool_id).is_some(),
        );
    }
}

struct Out<'a> {
    problems: &'a mut Vec<Problem>,
    broken: &'a [Broken],
}

impl Out<'_> {
    fn error(&mut self, path: String, message: impl Into<String>) {
        self.problems.push(Problem::error(path, message));
    }

    fn warning(&mut self, path: String, message: impl Into<String>) {
        self.problems.push(Problem::warning(path, message));
    }

    /// Reports `p.field` when the number `v` is outside `bound`.
    fn number(&mut self, p: &str, field: &str, v: f64, bound: &Bound) {
        if let Some(message) = bound.check(v) {
            self.error(format!("{p}.{field}"), message);
        }
    }

    /// Reports `p.field` when the integer `v` is outside `bound`.
    fn int(&mut self, p: &str, field: &str, v: impl Into<i128>, bound: &Bound) {
        if let Some(message) = bound.check_int(v.into()) {
            self.error(format!("{p}.{field}"), message);
        }
    }

    /// Reports a name that refers to nothing in `section`, unless it names an element (or the
    /// section) that failed to load.
    fn reference(&mut self, path: String, section: &str, name: &str, found: bool) {
        let what = match section {
            "zones" => "zone",
            "vm_providers" => "VM provider config",
            "ldap_configs" => "LDAP config",
            _ => "pool",
        };
        let broken =
            |b: &Broken| b.section == section && b.name.as_deref().is_none_or(|n| n == name);
        if !found && !self.broken.iter().any(broken) {
            self.error(
                path,
                format!("refers to {what} `{name}`, which is not defined"),
            );
        }
    }
}

fn names<'a>(out: &mut Out<'_>, section: &str, field: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        let path = format!("{section}[{i}].{field}");
        if name.trim().is_empty() {
            out.error(path, "must not be empty");
        } else if let Some(first) = seen.get(name) {
            out.error(
                path,
                format!("`{name}` is already used by {section}[{first}]"),
            );
        } else {
            seen.insert(name, i);
        }
    }
}

fn autoscale(out: &mut Out<'_>, config: &Config, p: &str, c: &AutoScaleConfig) {
    out.reference(
        format!("{p}.zone_id"),
        "zones",
        &c.zone_id,
        config.zone(&c.zone_id).is_some(),
    );
    let provider = config.vm_provider(&c.vm_provider_config_id);
    out.reference(
        format!("{p}.vm_provider_config_id"),
        "vm_providers",
        &c.vm_provider_config_id,
        provider.is_some(),
    );

    if let (Some(pattern), Some(provider)) = (&c.server_hostname_pattern, provider) {
        let most = provider.max_instances();
        if pattern.servers() < u64::from(most) {
            let why = if pattern.has_counter() {
                format!("`{pattern}` makes {} names", pattern.servers())
            } else {
                format!(
                    "`{pattern}` makes {} random names, enough for {} servers (one in {} used at \
                     most, so that a random name is free at the first try)",
                    pattern.capacity(),
                    pattern.servers(),
                    super::HEX_HEADROOM
                )
            };
            out.error(
                format!("{p}.server_hostname_pattern"),
                format!(
                    "{why}; VM provider config `{}` may have {most} servers (max_instances)",
                    c.vm_provider_config_id
                ),
            );
        }
    }
    for (field, message) in c.warm_pool_problems(provider) {
        out.error(format!("{p}.{field}"), message);
    }
    out.int(
        p,
        "downscale_backoff",
        c.downscale_backoff,
        &DOWNSCALE_BACKOFF,
    );
    out.int(p, "checkin_timeout", c.checkin_timeout, &CHECKIN_TIMEOUT);
    out.int(
        p,
        "max_simultaneous_sessions_per_server",
        c.max_simultaneous_sessions_per_server,
        &SESSIONS_PER_SERVER,
    );
    out.int(
        p,
        "minimum_pool_standby_sessions",
        c.minimum_pool_standby_sessions,
        &STANDBY_SESSIONS,
    );
    out.number(
        p,
        "target_immediate_service",
        c.target_immediate_service,
        &SERVICE_TARGET,
    );
    for (k, s) in c.schedules.iter().enumerate() {
        if let Some(m) = s.minimum_pool_standby_sessions {
            out.int(
                &format!("{p}.schedules[{k}]"),
                "minimum_pool_standby_sessions",
                m,
                &STANDBY_SESSIONS,
            );
        }
    }
    let kind = c.connection_type.as_str();
    if c.effective_port().is_none() {
        out.error(
            format!("{p}.connection_port"),
            format!("required for {kind} connections (they have no default port)"),
        );
    }
    let sessions = c.max_simultaneous_sessions_per_server;
    let field = format!("{p}.max_simultaneous_sessions_per_server");
    if sessions > 1 && c.connection_type.single_session() {
        out.error(field, format!("must be 1 for {kind} connections"));
    } else if sessions > 1 && !c.reusable {
        out.error(field, "must be 1 when reusable is false");
    }
    if let Some(ldap) = &c.ldap_id {
        out.reference(
            format!("{p}.ldap_id"),
            "ldap_configs",
            ldap,
            config.ldap_config(ldap).is_some(),
        );
    }
    if c.ad_create_machine_record {
        if c.ldap_id.is_none() {
            out.error(
                format!("{p}.ldap_id"),
                "required when ad_create_machine_record is true",
            );
        }
        // Unset, records go to `CN=Computers,<search_base>` (see `Config::computer_container`),
        // which the search base's own check covers.
        if let Some(dn) = c.ad_computer_container_dn.as_deref() {
            match Dn::parse(dn) {
                Err(e) => out.error(format!("{p}.ad_computer_container_dn"), e),
                Ok(dn) => {
                    let ldap_domain = c
                        .ldap_id
                        .as_deref()
                        .and_then(|l| config.ldap_config(l))
                        .and_then(|l| l.domain());
                    if let (Some(want), Some(got)) = (ldap_domain, dn.domain())
                        && want != got
                    {
                        out.warning(
                            format!("{p}.ad_computer_container_dn"),
                            format!("is in domain `{got}` but the LDAP config's search base is in `{want}`"),
                        );
                    }
                }
            }
        }
    } else if let Some(dn) = c.ad_computer_container_dn.as_deref()
        && let Err(e) = Dn::parse(dn)
    {
        out.error(format!("{p}.ad_computer_container_dn"), e);
    }
    if c.use_user_private_key && c.connection_type != ConnectionType::Ssh {
        out.warning(
            format!("{p}.use_user_private_key"),
            format!("applies only to SSH connections, not {kind}"),
        );
    }
    if c.reusable && c.connection_credential_type != CredentialType::SsoUserAccounts {
        out.warning(
            format!("{p}.reusable"),
            "a reusable server keeps traces of earlier users; make servers reusable only with SSO User Accounts",
        );
    }
    if let Some(provider) = provider {
        let capacity = u64::from(provider.max_instances()) * u64::from(sessions);
        let minimum = c
            .schedules
            .iter()
            .filter_map(|s| s.minimum_pool_standby_sessions)
            .chain([c.minimum_pool_standby_sessions])
            .max()
            .unwrap_or(0);
        if u64::from(minimum) > capacity {
            out.warning(
                format!("{p}.minimum_pool_standby_sessions"),
                format!(
                    "{minimum} can never be met: max_instances {} × {sessions} sessions per server = {capacity}",
                    provider.max_instances()
                ),
            );
        }
    }
    for (k, s) in c.schedules.iter().enumerate() {
        if s.days_of_the_week.is_empty() {
            out.error(
                format!("{p}.schedules[{k}].days_of_the_week"),
                "must list at least one day",
            );
        }
    }
}

/// An endpoint override: `https://`, or `http://` to a loopback host unless the config's
/// `danger_allow_plaintext` (`flag`) allows any host, with a warning.
fn url(out: &mut Out<'_>, p: &str, field: &str, value: Option<&str>, danger: bool) {
    let Some(v) = value else { return };
    let path = format!("{p}.{field}");
    match super::endpoint::plaintext_host(v) {
        Err(e) => out.error(path, e),
        Ok(None) => {}
        Ok(Some(host)) if super::endpoint::is_loopback(&host) => {}
        Ok(Some(host)) if danger => out.warning(
            path,
            format!("http:// to `{host}` carries credentials and startup scripts in clear: use only in tests"),
        ),
        Ok(Some(host)) => out.error(
            path,
            format!("http:// to `{host}` would carry credentials and startup scripts in clear; use https://, a loopback host, or (tests only) danger_allow_plaintext"),
        ),
    }
}

/// `upstream_auth_address`: the API host the guests call back (`https://<it>/api/…`), a host
/// name or address with an optional `:port` (ours: Kasm has 443 only), no scheme, path or
/// spaces.
fn auth_address(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains("://")
        || value.contains(['/', '?', '#', '@'])
        || value.contains(char::is_whitespace)
    {
        return Err(format!(
            "`{value}` must be a host name or address with an optional :port (the scripts call https://<it>/api/…)"
        ));
    }
    let (host, port) = match value.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => return Err(format!("`{value}`: unclosed `[` of an IPv6 address")),
        },
        None if value.matches(':').count() > 1 => {
            return Err(format!(
                "`{value}`: write an IPv6 address in brackets, [addr]:port"
            ));
        }
        None => match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        },
    };
    if host.is_empty() {
        return Err(format!("`{value}` has no host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "`{value}`: the port must be a number from 1 to 65535"
        ));
    }
    Ok(())
}

fn not_empty(out: &mut Out<'_>, p: &str, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        if value.trim().is_empty() {
            out.error(format!("{p}.{field}"), "must not be empty");
        }
    }
}

fn aws(out: &mut Out<'_>, p: &str, c: &AwsVmConfig) {
    not_empty(
        out,
        p,
        &[
            ("aws_region", &c.aws_region),
            ("aws_ec2_ami_id", &c.aws_ec2_ami_id),
            ("aws_ec2_instance_type", &c.aws_ec2_instance_type),
        ],
    );
    match (&c.aws_access_key_id, &c.aws_secret_access_key) {
        (Some(_), None) => out.error(
            format!("{p}.aws_secret_access_key"),
            "required with aws_access_key_id",
        ),
        (None, Some(_)) => out.error(
            format!("{p}.aws_access_key_id"),
            "required with aws_secret_access_key",
        ),
        _ => {}
    }
    if let Some(t) = &c.aws_ec2_ebs_volume_type
        && !AWS_EBS_VOLUME_TYPES.contains(&t.as_str())
    {
        out.error(
            format!("{p}.aws_ec2_ebs_volume_type"),
            format!("`{t}` is not one of {}", AWS_EBS_VOLUME_TYPES.join(", ")),
        );
    }
    if c.retrieve_password && (c.aws_ec2_key_name.is_none() || c.aws_ec2_private_key.is_none()) {
        out.error(
            format!("{p}.retrieve_password"),
            "needs aws_ec2_key_name and aws_ec2_private_key",
        );
    }
    url(
        out,
        p,
        "aws_endpoint_url",
        c.aws_endpoint_url.as_deref(),
        c.danger_allow_plaintext,
    );
}

fn azure(out: &mut Out<'_>, p: &str, c: &AzureVmConfig) {
    for (field, message) in c.problems() {
        out.error(format!("{p}.{field}"), message);
    }
    out.int(
        p,
        "api_operation_timeout",
        c.api_operation_timeout,
        &OPERATION_TIMEOUT,
    );
    for (field, value) in [
        ("azure_resource_manager_url", &c.azure_resource_manager_url),
        ("azure_authority_url", &c.azure_authority_url),
    ] {
        url(out, p, field, value.as_deref(), c.danger_allow_plaintext);
    }
}

fn memory(out: &mut Out<'_>, p: &str, c: &MemoryVmConfig) {
    for (field, d) in [
        ("boot_latency", &c.boot_latency),
        ("checkin_delay", &c.checkin_delay),
    ] {
        if let Some(msg) = d.problem() {
            out.error(format!("{p}.{field}"), msg);
        }
    }
    for (field, v) in [
        ("create_failure_rate", c.create_failure_rate),
        ("destroy_failure_rate", c.destroy_failure_rate),
        ("never_checkin_rate", c.never_checkin_rate),
    ] {
        out.number(p, field, v, &PROBABILITY);
    }
    if let Some(r) = c.rate_limit_per_second {
        out.number(p, "rate_limit_per_second", r, &RATE);
    }
    for (i, o) in c.outages.iter().enumerate() {
        out.number(p, &format!("outages[{i}].start"), o.start, &OUTAGE);
        out.number(p, &format!("outages[{i}].duration"), o.duration, &OUTAGE);
        if o.duration == 0.0 {
            out.error(
                format!("{p}.outages[{i}].duration"),
                "must be more than 0 seconds, got 0",
            );
        }
    }
}

/// The controller's pacing fields that every VM provider and LDAP config has:
/// (`api_concurrency`, `api_rate_limit_per_second`, `api_call_timeout`).
fn api_fields(out: &mut Out<'_>, p: &str, (concurrency, rate, timeout): (u32, Option<f64>, u32)) {
    out.int(p, "api_concurrency", concurrency, &API_CONCURRENCY);
    if let Some(r) = rate {
        out.number(p, "api_rate_limit_per_second", r, &RATE);
    }
    out.int(p, "api_call_timeout", timeout, &CALL_TIMEOUT);
}

/// A durable store keeps servers across a restart; their guests then check in with tokens the
/// previous process signed, so the key must outlive the process too.
fn state_store(out: &mut Out<'_>, config: &Config, store: &super::StateStoreConfig) {
    match store {
        super::StateStoreConfig::File(file) if file.path.trim().is_empty() => {
            out.error("state_store.path".into(), "must not be empty");
        }
        super::StateStoreConfig::Postgres(pg) => postgres(out, pg),
        _ => {}
    }
    let keyed = config
        .checkin_token
        .as_ref()
        .is_some_and(|t| t.key.is_some() || t.key_file.is_some() || t.key_env.is_some());
    if store.is_durable() && !keyed {
        out.error(
            "state_store".into(),
            "a durable store needs a checkin_token key (key, key_file or key_env): with a key \
             made at start, servers booting across a restart could never check in",
        );
    }
}

fn postgres(out: &mut Out<'_>, pg: &super::PostgresStoreConfig) {
    match postgres_host(&pg.url) {
        Err(why) => out.error("state_store.url".into(), why),
        Ok(host) if pg.tls_ca_file.is_none() && !super::endpoint::is_loopback(&host) => out.error(
            "state_store.tls_ca_file".into(),
            format!(
                "required for `{host}`: without TLS the database password and every record would cross the network in clear (plain connections only to a loopback host)"
            ),
        ),
        Ok(_) => {}
    }
    if pg.password_env.is_some() && pg.password_file.is_some() {
        out.error(
            "state_store".into(),
            "give the password in one way only: password_env or password_file",
        );
    }
    if pg.pool_size == 0 || pg.pool_size > 256 {
        out.error(
            "state_store.pool_size".into(),
            format!("must be between 1 and 256, got {}", pg.pool_size),
        );
    }
    let ttl = super::store::LEASE_TTL_RANGE;
    if !ttl.contains(&pg.lease_ttl) {
        out.error(
            "state_store.lease_ttl".into(),
            format!(
                "must be between {} and {} seconds, got {}",
                ttl.start(),
                ttl.end(),
                pg.lease_ttl
            ),
        );
    }
}

/// The host of a `postgres://` URL, which must not carry a password.
fn postgres_host(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("must be a postgres://user@host[:port]/database URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if user.is_some_and(|u| u.contains(':')) {
        return Err(
            "must not carry a password (it would be logged with the URL): use password_env or password_file"
                .into(),
        );
    }
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    Ok(host.to_ascii_lowercase())
}
