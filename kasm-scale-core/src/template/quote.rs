//! Quoting of the values kasm-scale's built-in scripts receive.
//!
//! Kasm inserts a variable's value raw, and a user's own script is rendered the same way
//! ([`Template::render`](super::Template::render)). The built-in scripts are ours: each of their
//! fields stands where the script's language expects one literal, and
//! [`Template::render_quoted`](super::Template::render_quoted) inserts every field's text as such
//! a literal, so that no character of a configured value (a quote, `$( )`, a backtick, a
//! newline, `%`…) is read as code by the VM that runs the script.

use base64::Engine as _;

use super::{ErrorKind, Failure};

/// The language a rendered value is quoted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// bash (POSIX shell): the value becomes one shell word, quoted by the `shlex` crate
    /// (single quotes, with double-quoted runs for `'`). A NUL character cannot be carried by a
    /// shell variable and is refused.
    Posix,
    /// PowerShell: printable ASCII becomes a single-quoted string with `'` doubled; anything else
    /// (control characters, newlines, non-ASCII text such as typographic quotes, which
    /// PowerShell also reads as quotes) becomes
    /// `([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('…')))`,
    /// whose text is ASCII whatever code page Windows reads the script file with. So does a
    /// value holding `<` or `>`: EC2 finds the script of Windows user data between
    /// `<powershell>` tags (and runs `<script>` sections as batch files), so a value must not be
    /// able to write a tag.
    PowerShell,
}

/// The start of the expression a PowerShell value that is not printable ASCII becomes.
pub const POWERSHELL_BASE64_PREFIX: &str =
    "([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String(";

/// The end of that expression.
pub const POWERSHELL_BASE64_SUFFIX: &str = ")))";

impl Quoting {
    /// `value` as one literal of the language. Fails only for a NUL character in a POSIX
    /// shell value; the error names neither the value nor the variable.
    pub fn quote(self, value: &str) -> Result<String, QuoteError> {
        match self {
            Quoting::Posix => shlex::try_quote(value)
                .map(|q| q.into_owned())
                .map_err(|_| QuoteError::Nul),
            Quoting::PowerShell => Ok(powershell(value)),
        }
    }

    /// The language's name, for messages: `bash` or `PowerShell`.
    pub fn language(self) -> &'static str {
        match self {
            Quoting::Posix => "bash",
            Quoting::PowerShell => "PowerShell",
        }
    }
}

/// Why a value cannot be quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteError {
    /// A NUL character, which a shell variable cannot hold.
    #[error("holds a NUL character, which a bash script cannot carry")]
    Nul,
}

impl QuoteError {
    /// The template failure for the field that uses variable `name`.
    pub(super) fn failure(self, name: &str) -> Failure {
        Failure::new(
            ErrorKind::Unsupported,
            format!("the value of `{name}` {self}"),
        )
    }
}

fn powershell(value: &str) -> String {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'<' && b != b'>')
    {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('\'');
        for c in value.chars() {
            if c == '\'' {
                out.push('\'');
            }
            out.push(c);
        }
        out.push('\'');
        out
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("{POWERSHELL_BASE64_PREFIX}'{encoded}'{POWERSHELL_BASE64_SUFFIX}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_values_are_one_word() {
        assert_eq!(Quoting::Posix.quote("abc").unwrap(), "abc");
        assert_eq!(Quoting::Posix.quote("").unwrap(), "''");
        assert_eq!(Quoting::Posix.quote("o'brien").unwrap(), "\"o'brien\"");
        assert_eq!(Quoting::Posix.quote("$(reboot)").unwrap(), "'$(reboot)'");
        assert_eq!(Quoting::Posix.quote("a\0b"), Err(QuoteError::Nul));
    }

    #[test]
    fn powershell_values_are_one_string() {
        assert_eq!(Quoting::PowerShell.quote("").unwrap(), "''");
        assert_eq!(
            Quoting::PowerShell.quote("it's $x `y`").unwrap(),
            "'it''s $x `y`'"
        );
        assert_eq!(
            Quoting::PowerShell.quote("’\n").unwrap(),
            format!("{POWERSHELL_BASE64_PREFIX}'4oCZCg=='{POWERSHELL_BASE64_SUFFIX}")
        );
        assert_eq!(
            Quoting::PowerShell.quote("</powershell>").unwrap(),
            format!("{POWERSHELL_BASE64_PREFIX}'PC9wb3dlcnNoZWxsPg=='{POWERSHELL_BASE64_SUFFIX}")
        );
    }
}
