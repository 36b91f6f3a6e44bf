//! Built-in startup scripts, selectable by name (`startup_script_builtin`).
//!
//! They are rendered with [`Template::render_quoted`](super::Template::render_quoted): every
//! value arrives as one literal of the script's language ([`Builtin::quoting`]).

use super::Quoting;

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
    /// How each value is quoted when the script is rendered.
    pub quoting: Quoting,
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
        quoting: Quoting::PowerShell,
    },
    Builtin {
        name: "linux",
        description: "bash: host name <name>.<domain>, realm join --one-time-password, session account, xrdp, check-in",
        text: include_str!("builtin/linux.sh"),
        defaults: &[("install_xrdp", "true")],
        windows: false,
        quoting: Quoting::Posix,
    },
];

/// The built-in script called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
