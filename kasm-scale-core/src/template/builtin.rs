//! Built-in startup scripts, selectable by name (`startup_script_builtin`).

/// A startup script shipped with kasm-scale.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name used in configurations.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The template text.
    pub text: &'static str,
    /// The script's own variables, with the values used when the configuration gives none
    /// (in `startup_script_variables`).
    pub defaults: &'static [(&'static str, &'static str)],
    /// Whether it is PowerShell (wrapped in `<powershell>` for AWS).
    pub windows: bool,
}

/// Every built-in script.
pub const BUILTINS: [Builtin; 2] = [
    Builtin {
        name: "windows",
        description: "PowerShell: session account, AD join (UnsecuredJoin,PasswordPass, renamed to server_hostname), \
                      FSLogix VHDLocations or CCDLocations, check-in",
        text: include_str!("builtin/windows.ps1"),
        defaults: &[("fslogix_vhd_locations", ""), ("fslogix_ccd_locations", "")],
        windows: true,
    },
    Builtin {
        name: "linux",
        description: "bash: host name <name>.<domain>, realm join --one-time-password, session account, xrdp, check-in",
        text: include_str!("builtin/linux.sh"),
        defaults: &[("install_xrdp", "true")],
        windows: false,
    },
];

/// The built-in script called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
