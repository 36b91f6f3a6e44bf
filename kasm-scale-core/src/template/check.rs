//! Every problem of a template at once: Python's error first, then the others.
//!
//! Python's `str.format` stops at the first replacement field that fails, in document order, so
//! an admin who only sees that error fixes one mistake per run. [`check`] reports that error
//! first, exactly as Python raises it, and then goes on: a brace Python rejects is read as a
//! literal brace from there on (as if it were doubled), and every later field is judged with the
//! same variables. So the list is what Python reports, one run after another, as the admin
//! escapes each rejected brace and defines each unknown name.

use std::fmt;

use super::parse::{self, Field, First, Parsed, Segment, Spec};
use super::{
    ErrorKind, MAX_DEPTH, TemplateError, Variables, python, render_field, static_field_error,
};

/// The most problems one check reports. Recovering from a brace error can mean rescanning the
/// rest of the text, so a text made of nothing but errors stops here instead of taking
/// quadratic time; [`Diagnostics::is_truncated`] says when it did.
pub const MAX_PROBLEMS: usize = 100;

/// The problems of a template, in the order [`check`] and [`check_static`] describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    errors: Vec<TemplateError>,
    truncated: bool,
}

impl Diagnostics {
    /// No problem at all.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many problems were found (at most [`MAX_PROBLEMS`]).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The first problem: with [`check`], the exception Python raises.
    pub fn first(&self) -> Option<&TemplateError> {
        self.errors.first()
    }

    /// Every problem found, the first one first, the others in document order.
    pub fn errors(&self) -> &[TemplateError] {
        &self.errors
    }

    /// Whether the check stopped at [`MAX_PROBLEMS`]: the text may hold more.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The problems, by value.
    pub fn into_errors(self) -> Vec<TemplateError> {
        self.errors
    }

    fn push(&mut self, error: TemplateError) {
        if self.errors.len() < MAX_PROBLEMS {
            self.errors.push(error);
        } else {
            self.truncated = true;
        }
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a TemplateError;
    type IntoIter = std::slice::Iter<'a, TemplateError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for Diagnostics {
    /// One problem per line, as `LINE:COLUMN: KeyError: 'x'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        if self.truncated {
            write!(f, "\n(stopped after {MAX_PROBLEMS} problems)")?;
        }
        Ok(())
    }
}

/// Every problem of `template` rendered with `vars`, the way an admin wants them.
///
/// The first is exactly what Python's `template.format(**vars)` raises (exception, message and
/// the line and column of the field or brace) — the same as [`format`](super::format)'s error.
/// After it come, in document order, the errors Python would raise next once that one were
/// fixed: further brace and syntax errors (a rejected brace counts as a literal one from then on),
/// unknown names, and the error of every later field that fails with these variables. A field
/// whose name is unknown also reports what else is wrong with it (a bad conversion or spec, or
/// unknown names inside its spec). Empty when Python formats the template without error.
///
/// Attribute access and huge widths are refused with [`ErrorKind::Unsupported`] where Python
/// would produce text, as by [`Template::render`](super::Template::render).
pub fn check(template: &str, vars: &dyn Variables) -> Diagnostics {
    walk(template, Some(vars))
}

/// Every problem of `template` that does not depend on the variables (as long as they are
/// strings): brace and syntax errors, positional fields (`{}`, `{0}`), attribute access, unknown
/// conversions and format specs no string accepts, in document order, recovering from brace
/// errors as [`check`] does. No `KeyError`: the variables are not known. Empty exactly when
/// [`Template::parse`](super::Template::parse) succeeds; the first problem is its error.
pub fn check_static(template: &str) -> Diagnostics {
    walk(template, None)
}

fn walk(source: &str, vars: Option<&dyn Variables>) -> Diagnostics {
    let mut found = Diagnostics::default();
    let mut scratch = String::new();
    let mut start = 0;
    while !found.truncated {
        let parsed = parse::parse(source, start, source.len());
        for segment in &parsed.segments {
            if let Segment::Field(f) = segment {
                field(source, f, vars, &mut scratch, &mut found);
                if found.truncated {
                    return found;
                }
            }
        }
        let Some((pos, failure)) = parsed.error else {
            break;
        };
        found.push(TemplateError::at(source, pos, failure));
        // The error is at a `{` or `}` (one byte): carry on as if it were a literal brace.
        start = pos + 1;
    }
    found
}

/// The problems of one field: the error Python raises there, then the other problems it holds.
fn field(
    source: &str,
    f: &Field,
    vars: Option<&dyn Variables>,
    scratch: &mut String,
    found: &mut Diagnostics,
) {
    let first = match vars {
        Some(vars) => {
            let result = render_field(source, f, vars, scratch, MAX_DEPTH);
            scratch.clear();
            result.err()
        }
        None => static_field_error(source, f, MAX_DEPTH),
    };
    let Some(first) = first else { return };
    // Unknown names first: where one shares a position with another problem (a field of the
    // spec), Python looks the name up before anything else.
    let mut more = Vec::new();
    if let (Some(vars), Spec::Nested(sub)) = (vars, &f.spec) {
        unknown_names(source, sub, vars, &mut more);
    }
    if first.kind == ErrorKind::KeyError && first.offset == f.pos {
        // The name is unknown: Python stops there. The rest of the field is judged as if the
        // name held a string, as it will once the name is fixed.
        more.extend(static_field_error(source, f, MAX_DEPTH));
    }
    if let Spec::Nested(sub) = &f.spec
        && let Some((pos, failure)) = &sub.error
    {
        more.push(TemplateError::at(source, *pos, failure.clone()));
    }
    // Stable: at one position, the order above stays.
    more.sort_by_key(TemplateError::offset);
    let mut reported = vec![first];
    for e in more {
        if !reported.contains(&e) {
            reported.push(e);
        }
    }
    for e in reported {
        found.push(e);
    }
}

/// A `KeyError` for each field of a nested spec (at any depth) whose name is not in `vars`.
fn unknown_names(
    source: &str,
    parsed: &Parsed,
    vars: &dyn Variables,
    out: &mut Vec<TemplateError>,
) {
    for segment in &parsed.segments {
        let Segment::Field(g) = segment else { continue };
        if let First::Name(name) = &g.first
            && vars.get(name).is_none()
        {
            out.push(TemplateError::at(
                source,
                g.pos,
                super::Failure::new(ErrorKind::KeyError, python::key_error(name)),
            ));
        }
        if let Spec::Nested(sub) = &g.spec {
            unknown_names(source, sub, vars, out);
        }
    }
}
