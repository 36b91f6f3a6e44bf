//! Configuration-time checks of startup scripts: they render as Python renders them (Python's
//! error first, then every other problem of the script), AD variables are not used where no AD
//! record is made, and the script rendered with the longest values it can get still fits the
//! provider's delivery limit.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{AutoScaleConfig, AwsVmConfig, Config, Problem, VmProviderConfig};
use crate::secret::Secret;
use crate::template::{
    self, AD_JOIN_PASSWORD_MAX_LEN, AD_VARIABLES, AdJoin, BUILTINS, MAX_PROBLEMS, Quoting,
    ScriptVariables, Template, TemplateError, VARIABLE_NAMES, Variables, builtin,
    checkin_jwt_max_len,
};

impl VmProviderConfig {
    /// The startup-script template text: the built-in script when one is named, else
    /// `startup_script`. `None` when the built-in name is unknown.
    pub fn script_text(&self) -> Option<&str> {
        match self.startup_script_builtin() {
            Some(name) => builtin(name).map(|b| b.text),
            None => Some(self.startup_script()),
        }
    }

    /// How the values are quoted when the script is rendered: the built-in script's language;
    /// `None` for the configuration's own `startup_script`, which is rendered raw, as Kasm does.
    pub fn script_quoting(&self) -> Option<Quoting> {
        self.startup_script_builtin()
            .and_then(builtin)
            .map(|b| b.quoting)
    }

    /// Renders this provider's startup script (`template`, parsed from [`script_text`]) for one
    /// server: a built-in script with each value quoted for its language
    /// ([`Template::render_quoted`]), the configuration's own script raw, as Kasm renders it.
    ///
    /// [`script_text`]: Self::script_text
    pub fn render_script(
        &self,
        template: &Template,
        vars: &dyn Variables,
    ) -> Result<Secret, TemplateError> {
        match self.script_quoting() {
            Some(quoting) => template.render_quoted(vars, quoting),
            None => template.render(vars),
        }
    }

    /// The script's extra variables: the built-in script's defaults, overridden by
    /// `startup_script_variables`.
    pub fn script_extras(&self) -> BTreeMap<String, Secret> {
        let mut extras: BTreeMap<String, Secret> = self
            .startup_script_builtin()
            .and_then(builtin)
            .map(|b| {
                b.defaults
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                    .collect()
            })
            .unwrap_or_default();
        extras.extend(
            self.startup_script_variables()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        extras
    }
}

impl VmProviderConfig {
    /// The rendered script as the provider delivers it: a Windows script on AWS is wrapped in
    /// `<powershell>…</powershell>` unless it already is.
    pub fn delivered_script<'a>(&self, rendered: &'a str) -> Cow<'a, str> {
        match self {
            VmProviderConfig::Aws(c) => c.user_data(rendered),
            _ => Cow::Borrowed(rendered),
        }
    }
}

impl AwsVmConfig {
    /// The rendered script as EC2 user data: wrapped in `<powershell>…</powershell>` for a
    /// Windows AMI (`aws_is_windows`) unless it already is.
    pub fn user_data<'a>(&self, rendered: &'a str) -> Cow<'a, str> {
        if self.aws_is_windows && !rendered.trim_start().starts_with("<powershell>") {
            Cow::Owned(format!("<powershell>\n{rendered}\n</powershell>\n"))
        } else {
            Cow::Borrowed(rendered)
        }
    }
}

pub(crate) fn check(config: &Config, out: &mut Vec<Problem>) {
    for (i, provider) in config.vm_providers.iter().enumerate() {
        check_provider(config, &format!("vm_providers[{i}]"), provider, out);
    }
}

fn check_provider(config: &Config, p: &str, provider: &VmProviderConfig, out: &mut Vec<Problem>) {
    let builtin_name = provider.startup_script_builtin();
    let field = if builtin_name.is_some() {
        "startup_script_builtin"
    } else {
        "startup_script"
    };
    let path = format!("{p}.{field}");
    if let Some(name) = builtin_name {
        if !provider.startup_script().is_empty() {
            out.push(Problem::error(
                &path,
                "set either startup_script or startup_script_builtin, not both",
            ));
        }
        if builtin(name).is_none() {
            let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
            let msg = super::load::unknown_message(name, &names)
                .replace("unknown field", "unknown built-in script");
            out.push(Problem::error(&path, msg));
            return;
        }
    }
    for name in provider.startup_script_variables().keys() {
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let vpath = format!("{p}.startup_script_variables.{name}");
        if !ident {
            out.push(Problem::error(
                vpath,
                "a variable name must be letters, digits and _, not starting with a digit",
            ));
        } else if VARIABLE_NAMES.contains(&name.as_str()) {
            out.push(Problem::error(
                vpath,
                "is a built-in variable; choose another name",
            ));
        }
    }
    let Some(text) = provider.script_text().filter(|t| !t.is_empty()) else {
        return;
    };
    let users: Vec<(String, &AutoScaleConfig)> = config
        .pools
        .iter()
        .enumerate()
        .flat_map(|(i, pool)| {
            pool.autoscale
                .iter()
                .enumerate()
                .map(move |(j, c)| (format!("pools[{i}].autoscale[{j}]"), c))
        })
        .filter(|(_, c)| c.vm_provider_config_id == provider.name())
        .collect();
    let mut cases: Vec<Option<&AutoScaleConfig>> = users.iter().map(|(_, c)| Some(*c)).collect();
    if cases.is_empty() {
        cases.push(None);
    }
    let cases: Vec<(Option<&AutoScaleConfig>, ScriptVariables)> = cases
        .into_iter()
        .map(|user| (user, worst_case_variables(config, provider, user)))
        .collect();
    // Python's error for the first servers it would fail on, then every other problem.
    for (_, vars) in &cases {
        let problems = template::check(text, vars);
        if !problems.is_empty() {
            out.extend(
                problems
                    .errors()
                    .iter()
                    .map(|e| Problem::error(&path, describe(e))),
            );
            if problems.is_truncated() {
                out.push(Problem::error(
                    &path,
                    format!("more problems not listed: the check stops after {MAX_PROBLEMS}"),
                ));
            }
            return;
        }
    }
    // Cannot fail once the check is clean; kept so that a disagreement still refuses the script.
    let template = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => return out.push(Problem::error(&path, describe(&e))),
    };
    let used_ad: Vec<&str> = template
        .field_names()
        .filter(|n| AD_VARIABLES.contains(n))
        .collect();
    if builtin_name.is_none() && !used_ad.is_empty() {
        for (cpath, c) in users.iter().filter(|(_, c)| !c.ad_create_machine_record) {
            let vars = used_ad
                .iter()
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(Problem::warning(
                format!("{cpath}.ad_create_machine_record"),
                format!("is false, but the startup script of {p} uses {vars}: they render as empty strings for {}", c.autoscale_config_name),
            ));
        }
    }
    if let Some(quoting) = provider.script_quoting() {
        let before = out.len();
        builtin_value_problems(p, provider, &users, quoting, out);
        if out.len() > before {
            return;
        }
    }
    let limit = provider.startup_script_limit();
    for (user, vars) in &cases {
        let rendered = match provider.render_script(&template, vars) {
            Ok(r) => r,
            Err(e) => return out.push(Problem::error(&path, describe(&e))),
        };
        let size = provider.delivered_script(rendered.expose()).len();
        if let Some(limit) = limit
            && size > limit
        {
            let what = if matches!(provider, VmProviderConfig::Aws(_)) {
                "AWS user-data"
            } else {
                "Azure custom-data"
            };
            let jwt = vars.checkin_jwt.expose().len();
            let for_config = user
                .map(|c| format!(" for {}", c.autoscale_config_name))
                .unwrap_or_default();
            out.push(Problem::error(
                &path,
                format!("renders to {size} bytes{for_config} with the longest values (a {jwt}-byte check-in token), over the {limit}-byte {what} limit"),
            ));
            return;
        }
    }
}

/// An error for each configured value a built-in script cannot take, at the field that holds
/// it: what its language cannot carry as a literal (a NUL character in a bash script), and for
/// the `linux` script a session account name or password that `chpasswd`'s `user:password`
/// lines cannot hold.
fn builtin_value_problems(
    p: &str,
    provider: &VmProviderConfig,
    users: &[(String, &AutoScaleConfig)],
    quoting: Quoting,
    out: &mut Vec<Problem>,
) {
    let name = provider.startup_script_builtin().unwrap_or_default();
    let mut check = |path: String, value: &str| {
        if let Err(e) = quoting.quote(value) {
            out.push(Problem::error(
                path,
                format!("{e}; the built-in `{name}` script receives it"),
            ));
            return false;
        }
        true
    };
    for (key, value) in provider.startup_script_variables() {
        check(
            format!("{p}.startup_script_variables.{key}"),
            value.expose(),
        );
    }
    let mut account = Vec::new();
    for (cpath, c) in users {
        if let Some(user) = &c.connection_username {
            let path = format!("{cpath}.connection_username");
            if check(path.clone(), user) && name == "linux" && !linux_account_name(user) {
                account.push(Problem::error(
                    path,
                    format!(
                        "`{}` cannot name the local account the built-in `linux` script \
                         creates: use letters, digits, `_`, `.` and `-` (not first), at most 32 \
                         characters",
                        user.escape_debug()
                    ),
                ));
            }
        }
        if let Some(password) = &c.connection_password {
            let path = format!("{cpath}.connection_password");
            let line_break = password.expose().contains(['\n', '\r']);
            if check(path.clone(), password.expose()) && name == "linux" && line_break {
                account.push(Problem::error(
                    path,
                    "holds a line break, which the built-in `linux` script cannot pass to \
                     chpasswd (the value is not shown)",
                ));
            }
        }
    }
    out.append(&mut account);
    // `upstream_auth_address` is checked as a host name; `domain` comes from the LDAP base DN,
    // and the check-in token, host name and join password are made by kasm-scale.
}

/// A local account name `useradd` takes everywhere: a letter or `_` first, then letters,
/// digits, `_`, `.` and `-`, at most 32 characters.
fn linux_account_name(name: &str) -> bool {
    name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `line 3, column 9: KeyError: 'print $4'` with a hint for the usual mistake.
fn describe(e: &TemplateError) -> String {
    let hint = match e.kind() {
        crate::template::ErrorKind::KeyError => {
            " (no such variable; write literal braces as {{ and }})"
        }
        _ if e.message().contains("'}'") || e.message().contains("'{'") => {
            " (write literal braces as {{ and }})"
        }
        _ => "",
    };
    format!(
        "line {}, column {}: {}{hint}",
        e.line(),
        e.column(),
        e.python()
    )
}

/// The variables of a server of `user` (or of any config, when none uses the provider), with
/// the longest values they can take.
fn worst_case_variables(
    config: &Config,
    provider: &VmProviderConfig,
    user: Option<&AutoScaleConfig>,
) -> ScriptVariables {
    let zone = user.and_then(|c| config.zone(&c.zone_id));
    let longest_zone = config
        .zones
        .iter()
        .max_by_key(|z| z.upstream_auth_address.len());
    let zone_name = zone.map_or("default", |z| z.zone_name.as_str());
    let address = zone
        .or(longest_zone)
        .map_or_else(|| "x".repeat(64), |z| z.upstream_auth_address.clone());
    let config_name = user.map_or_else(|| "x".repeat(64), |c| c.autoscale_config_name.clone());
    let active_directory = user.filter(|c| c.ad_create_machine_record).map(|c| AdJoin {
        domain: c
            .ldap_id
            .as_deref()
            .and_then(|l| config.ldap_config(l))
            .and_then(|l| l.domain())
            .unwrap_or_default(),
        ad_join_credential: Secret::new("x".repeat(AD_JOIN_PASSWORD_MAX_LEN)),
    });
    ScriptVariables {
        server_id: "00000000-0000-0000-0000-000000000000".into(),
        server_hostname: "X".repeat(15),
        upstream_auth_address: address,
        checkin_jwt: Secret::new("x".repeat(checkin_jwt_max_len(&config_name, zone_name))),
        connection_username: user.and_then(|c| c.connection_username.clone()),
        connection_password: user.and_then(|c| c.connection_password.clone()),
        active_directory,
        provider_name: provider.kind().into(),
        extra: provider.script_extras(),
        ..ScriptVariables::default()
    }
}
