//! Startup-script templates: Python's `str.format`, byte for byte.
//!
//! Kasm renders every startup script with `script.format(**variables)`. [`Template::parse`]
//! reads a script once (at configuration time) and [`Template::render`] fills it in per server.
//! For every template and set of string (or `None`) variables, the output equals Python 3.11's,
//! and wherever Python raises, rendering fails with Python's exception and message plus the line
//! and column of the offending brace.
//!
//! Conversions (`!s`, `!r`, `!a`), format specs (fill, alignment, width, precision, nested
//! `{a:{w}}`), indexing (`{a[0]}`) and the errors of positional fields (`{}`, `{0}`) behave as in
//! Python. Two things are refused where Python would produce text: attribute access
//! (`{a.upper}`, which in Python prints object addresses or docstrings) and widths above
//! [`MAX_WIDTH`] characters.
//!
//! Python stops at the first error it meets. [`check`] reports that error first, exactly, and
//! then every other problem of the script in document order (further brace errors, unknown
//! names…), so that an admin can fix them all in one pass; [`check_static`] does the same
//! without knowing the variables.

mod builtin;
mod check;
mod parse;
mod python;
mod quote;
mod spec;
#[rustfmt::skip]
mod unicode_tables;
mod variables;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use crate::secret::Secret;

pub use builtin::{BUILTINS, Builtin, builtin};
pub use check::{Diagnostics, MAX_PROBLEMS, check, check_static};
pub use quote::{POWERSHELL_BASE64_PREFIX, POWERSHELL_BASE64_SUFFIX, QuoteError, Quoting};
pub use spec::MAX_WIDTH;
pub use variables::{
    AD_JOIN_PASSWORD_MAX_LEN, AD_VARIABLES, AdJoin, EXAMPLE_VARIABLES, ScriptVariables,
    VARIABLE_NAMES, Value, Variables, checkin_jwt_max_len,
};

use parse::{Field, First, Parsed, Segment, Spec, Step};

/// A parsed startup-script template.
#[derive(Clone)]
pub struct Template {
    source: String,
    parsed: Parsed,
    literal_len: usize,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("bytes", &self.source.len())
            .field("fields", &self.field_names().collect::<Vec<_>>())
            .finish()
    }
}

/// The Python exception a template error corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ValueError`: malformed braces, conversions or format specs.
    ValueError,
    /// `KeyError`: a field names no variable.
    KeyError,
    /// `IndexError`: a positional field, or an index past the end of a value.
    IndexError,
    /// `TypeError`: indexing with a non-number, or a format spec on `None`.
    TypeError,
    /// Not supported by kasm-scale where Python would produce text (attribute access, huge widths).
    Unsupported,
}

impl ErrorKind {
    /// Python's exception name (`ValueError`, …), or `Unsupported`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ValueError => "ValueError",
            Self::KeyError => "KeyError",
            Self::IndexError => "IndexError",
            Self::TypeError => "TypeError",
            Self::Unsupported => "Unsupported",
        }
    }
}

/// What went wrong, before a position is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A template that Python would refuse to format, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {}: {message}", kind.name())]
pub struct TemplateError {
    kind: ErrorKind,
    message: String,
    offset: usize,
    line: usize,
    column: usize,
}

impl TemplateError {
    fn at(source: &str, offset: usize, failure: Failure) -> Self {
        let before = &source[..offset.min(source.len())];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            kind: failure.kind,
            message: failure.message,
            offset,
            line,
            column,
        }
    }

    /// Python's exception.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Python's message, e.g. `Single '}' encountered in format string` or `'server_nam'`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `KeyError: 'x'`: what Python's traceback ends with.
    pub fn python(&self) -> String {
        format!("{}: {}", self.kind.name(), self.message)
    }

    /// 1-based line of the offending brace.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) of the offending brace.
    pub fn column(&self) -> usize {
        self.column
    }

    /// Byte offset of the offending brace.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Python's `build_string` recursion limit: a spec may hold fields, whose specs may not.
const MAX_DEPTH: u8 = 2;

impl Template {
    /// Parses a template. Fails on anything that makes Python's `format` fail whatever the
    /// variables: brace errors, bad conversions, bad static format specs, positional fields,
    /// indexing with a non-number and attribute access. Which names exist is checked at render time (or by the configuration
    /// check, which knows the variables). The error is the first such problem in the text, which
    /// may come after a field Python would fail on first: [`check`] gives Python's error and
    /// every other problem.
    ///
    /// # Examples
    ///
    /// ```
    /// use kasm_scale_core::template::Template;
    ///
    /// let template = Template::parse("hostnamectl set-hostname {server_hostname:.15}")?;
    /// let vars = std::collections::BTreeMap::from([(
    ///     "server_hostname".to_owned(),
    ///     "KASM-0F1E2D3C4B".to_owned(),
    /// )]);
    /// let script = template.render(&vars)?; // a Secret: it may hold tokens and passwords
    /// assert_eq!(script.expose(), "hostnamectl set-hostname KASM-0F1E2D3C4B");
    ///
    /// // A PowerShell block pasted with single braces is refused here, not at provisioning.
    /// let error = Template::parse("if ($x) { Write-Host {server_id} }").unwrap_err();
    /// assert_eq!(error.to_string(), "1:9: ValueError: unexpected '{' in field name");
    /// # Ok::<(), kasm_scale_core::template::TemplateError>(())
    /// ```
    pub fn parse(source: impl Into<String>) -> Result<Template, TemplateError> {
        let template = Self::parse_lenient(source.into());
        if let Some(error) = template.first_static_error() {
            return Err(error);
        }
        Ok(template)
    }

    /// Parses without failing: errors are raised when rendering reaches them, as in Python.
    fn parse_lenient(source: String) -> Template {
        let parsed = parse::parse(&source, 0, source.len());
        let literal_len = parsed
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(a, b) => (b - a) as usize,
                Segment::Field(_) => 0,
            })
            .sum();
        Template {
            source,
            parsed,
            literal_len,
        }
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variable names the fields use (first part of each field name), each once, in order
    /// of first use, including fields inside format specs.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        let mut names = Vec::new();
        collect_names(&self.parsed, &mut names);
        let mut seen = BTreeSet::new();
        names.into_iter().filter(move |n| seen.insert(*n))
    }

    /// Renders with `vars`. The script holds secrets (tokens, passwords), so it comes back as a
    /// [`Secret`]: only [`Secret::expose`] shows it.
    pub fn render(&self, vars: &dyn Variables) -> Result<Secret, TemplateError> {
        let mut out = String::with_capacity(self.literal_len + 64 * self.parsed.segments.len() / 2);
        render(&self.source, &self.parsed, vars, &mut out, MAX_DEPTH, None)?;
        Ok(Secret::new(out))
    }

    /// Renders with `vars` as [`render`](Self::render) does, then inserts each top-level
    /// field's text as one literal of `quoting`'s language. This is how kasm-scale renders its
    /// built-in scripts (never a user's script, which Kasm renders raw): a value reaches the
    /// script as data, whatever characters it holds. A value that cannot be quoted (a NUL
    /// character for bash) fails with [`ErrorKind::Unsupported`] at its field, naming the
    /// variable but not the value.
    pub fn render_quoted(
        &self,
        vars: &dyn Variables,
        quoting: Quoting,
    ) -> Result<Secret, TemplateError> {
        let mut out = String::with_capacity(self.literal_len + 64 * self.parsed.segments.len());
        render(
            &self.source,
            &self.parsed,
            vars,
            &mut out,
            MAX_DEPTH,
            Some(quoting),
        )?;
        Ok(Secret::new(out))
    }

    fn first_static_error(&self) -> Option<TemplateError> {
        static_error(&self.source, &self.parsed)
    }
}

/// Python's `template.format(**vars)`: the text, or the error Python raises first. Unlike
/// [`Template::parse`], a syntax error after a failing field is not reported (Python stops at the
/// field). The text is not wrapped in a [`Secret`]: use it for values that are not secret.
pub fn format(template: &str, vars: &dyn Variables) -> Result<String, TemplateError> {
    let template = Template::parse_lenient(template.to_owned());
    let mut out = String::with_capacity(template.literal_len);
    render(
        &template.source,
        &template.parsed,
        vars,
        &mut out,
        MAX_DEPTH,
        None,
    )?;
    Ok(out)
}

fn collect_names<'a>(parsed: &'a Parsed, names: &mut Vec<&'a str>) {
    for segment in &parsed.segments {
        if let Segment::Field(f) = segment {
            if let First::Name(n) = &f.first {
                names.push(n);
            }
            if let Spec::Nested(sub) = &f.spec {
                collect_names(sub, names);
            }
        }
    }
}

/// The first error that does not depend on the variables, in text order.
fn static_error(source: &str, parsed: &Parsed) -> Option<TemplateError> {
    parsed
        .segments
        .iter()
        .find_map(|segment| match segment {
            Segment::Field(f) => static_field_error(source, f, MAX_DEPTH),
            Segment::Literal(..) => None,
        })
        .or_else(|| {
            parsed
                .error
                .as_ref()
                .map(|(pos, failure)| TemplateError::at(source, *pos, failure.clone()))
        })
}

/// The first error of field `f` that does not depend on the variables (as long as they are
/// strings), in the order rendering meets them; `depth` as in [`render`].
fn static_field_error(source: &str, f: &Field, depth: u8) -> Option<TemplateError> {
    let at = |failure: &Failure| Some(TemplateError::at(source, f.pos, failure.clone()));
    match &f.first {
        First::Positional(n) => return at(&positional(n.unwrap_or(0))),
        First::Overflow => return at(&too_many_digits()),
        First::Name(_) => {}
    }
    for step in &f.steps {
        match step {
            Step::Error(failure) => return at(failure),
            Step::Attribute(name) => return at(&attribute(name)),
            // A string (or one character of it) indexed with a non-number.
            Step::Key => return at(&string_key()),
            Step::Index(_) => {}
        }
    }
    if let Some(c) = f.conversion
        && !matches!(c, 'r' | 's' | 'a')
    {
        return at(&unknown_conversion(c));
    }
    match &f.spec {
        Spec::Static(Err(failure)) => at(failure),
        Spec::Nested(_) if depth <= 1 => at(&recursion()),
        Spec::Nested(sub) => sub
            .segments
            .iter()
            .find_map(|segment| match segment {
                Segment::Field(g) => static_field_error(source, g, depth - 1),
                Segment::Literal(..) => None,
            })
            .or_else(|| {
                sub.error
                    .as_ref()
                    .map(|(pos, failure)| TemplateError::at(source, *pos, failure.clone()))
            }),
        Spec::None | Spec::Static(Ok(_)) => None,
    }
}

fn positional(index: usize) -> Failure {
    Failure::new(
        ErrorKind::IndexError,
        format!("Replacement index {index} out of range for positional args tuple"),
    )
}

fn string_key() -> Failure {
    Failure::new(
        ErrorKind::TypeError,
        "string indices must be integers, not 'str'",
    )
}

fn too_many_digits() -> Failure {
    Failure::new(
        ErrorKind::ValueError,
        "Too many decimal digits in format string",
    )
}

fn attribute(name: &str) -> Failure {
    Failure::new(
        ErrorKind::Unsupported,
        format!(
            "attribute access (`.{name}`) in a field is not supported: Python would print an object, not text"
        ),
    )
}

fn unknown_conversion(c: char) -> Failure {
    Failure::new(
        ErrorKind::ValueError,
        format!("Unknown conversion specifier {}", python::show_code(c)),
    )
}

fn recursion() -> Failure {
    Failure::new(ErrorKind::ValueError, "Max string recursion exceeded")
}

/// Renders `parsed` into `out`; with `quoting`, each field's text is inserted as one literal of
/// that language (the fields of a nested spec build the spec and are never quoted).
fn render(
    source: &str,
    parsed: &Parsed,
    vars: &dyn Variables,
    out: &mut String,
    depth: u8,
    quoting: Option<Quoting>,
) -> Result<(), TemplateError> {
    let mut field_text = String::new();
    for segment in &parsed.segments {
        match segment {
            Segment::Literal(a, b) => out.push_str(&source[*a as usize..*b as usize]),
            Segment::Field(f) => match quoting {
                None => render_field(source, f, vars, out, depth)?,
                Some(quoting) => {
                    field_text.clear();
                    render_field(source, f, vars, &mut field_text, depth)?;
                    let quoted = quoting.quote(&field_text).map_err(|e| {
                        let name = match &f.first {
                            First::Name(n) => &**n,
                            _ => "",
                        };
                        TemplateError::at(source, f.pos, e.failure(name))
                    })?;
                    out.push_str(&quoted);
                }
            },
        }
    }
    match &parsed.error {
        Some((pos, failure)) => Err(TemplateError::at(source, *pos, failure.clone())),
        None => Ok(()),
    }
}

fn render_field(
    source: &str,
    f: &Field,
    vars: &dyn Variables,
    out: &mut String,
    depth: u8,
) -> Result<(), TemplateError> {
    let fail = |failure: Failure| TemplateError::at(source, f.pos, failure);
    let mut value = match &f.first {
        First::Name(name) => match vars.get(name) {
            Some(v) => v,
            None => {
                return Err(fail(Failure::new(
                    ErrorKind::KeyError,
                    python::key_error(name),
                )));
            }
        },
        First::Positional(n) => return Err(fail(positional(n.unwrap_or(0)))),
        First::Overflow => return Err(fail(too_many_digits())),
    };
    for step in &f.steps {
        value = match (step, value) {
            (Step::Error(failure), _) => return Err(fail(failure.clone())),
            (Step::Attribute(name), _) => return Err(fail(attribute(name))),
            (_, Value::None) => {
                return Err(fail(Failure::new(
                    ErrorKind::TypeError,
                    "'NoneType' object is not subscriptable",
                )));
            }
            (Step::Key, Value::Str(_)) => return Err(fail(string_key())),
            (Step::Index(i), Value::Str(s)) => match s.char_indices().nth(*i) {
                Some((at, c)) => Value::Str(&s[at..at + c.len_utf8()]),
                None => {
                    return Err(fail(Failure::new(
                        ErrorKind::IndexError,
                        "string index out of range",
                    )));
                }
            },
        };
    }
    let text: Cow<'_, str> = match (f.conversion, value) {
        (None, Value::Str(s)) | (Some('s'), Value::Str(s)) => Cow::Borrowed(s),
        (Some('r'), Value::Str(s)) => Cow::Owned(python::repr(s)),
        (Some('a'), Value::Str(s)) => Cow::Owned(python::ascii(s)),
        (Some('r' | 's' | 'a'), Value::None) => Cow::Borrowed("None"),
        (Some(c), _) => return Err(fail(unknown_conversion(c))),
        (None, Value::None) => {
            // `format(None, spec)`: only the empty spec is accepted.
            let spec = match &f.spec {
                Spec::None => String::new(),
                Spec::Static(_) => "x".into(),
                Spec::Nested(sub) => expand(source, f, sub, vars, depth)?,
            };
            if !spec.is_empty() {
                return Err(fail(Failure::new(
                    ErrorKind::TypeError,
                    "unsupported format string passed to NoneType.__format__",
                )));
            }
            out.push_str("None");
            return Ok(());
        }
    };
    match &f.spec {
        Spec::None => out.push_str(&text),
        Spec::Static(Ok(spec)) => spec.apply(&text, out),
        Spec::Static(Err(failure)) => return Err(fail(failure.clone())),
        Spec::Nested(sub) => {
            let spec = expand(source, f, sub, vars, depth)?;
            if spec.is_empty() {
                out.push_str(&text);
            } else {
                let parsed = spec::parse(&spec).map_err(|mut failure| {
                    // Python's message shows the spec; one built from a secret is not shown.
                    if let Some(secret) = secret_name(sub, vars) {
                        failure.message = format!(
                            "the format spec built from `{secret}` is invalid (a secret: its \
                             text is not shown)"
                        );
                    }
                    fail(failure)
                })?;
                parsed.apply(&text, out);
            }
        }
    }
    Ok(())
}

/// The first variable of a nested spec (at any depth) that `vars` holds as a secret.
fn secret_name<'a>(sub: &'a Parsed, vars: &dyn Variables) -> Option<&'a str> {
    let mut names = Vec::new();
    collect_names(sub, &mut names);
    names.into_iter().find(|n| vars.is_secret(n))
}

/// Renders a nested spec (Python's recursive `build_string`).
fn expand(
    source: &str,
    f: &Field,
    sub: &Parsed,
    vars: &dyn Variables,
    depth: u8,
) -> Result<String, TemplateError> {
    if depth <= 1 {
        return Err(TemplateError::at(source, f.pos, recursion()));
    }
    let mut spec = String::new();
    render(source, sub, vars, &mut spec, depth - 1, None)?;
    Ok(spec)
}
