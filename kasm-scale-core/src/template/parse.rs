//! Splitting a template into literal text and fields, following CPython's `MarkupIterator`
//! and `parse_field` (Objects/stringlib/unicode_format.h) step by step.

use memchr::memchr2;

use super::python::decimal_value;
use super::spec::{self, StrSpec};
use super::{ErrorKind, Failure};

/// A run of literal text or a replacement field.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// Byte range of the source, copied as is.
    Literal(u32, u32),
    /// A `{…}` field.
    Field(Box<Field>),
}

/// A parsed replacement field. Problems Python only finds while rendering it (a bad index, an
/// unknown conversion, a bad spec) are kept and raised at that point, in Python's order.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// Byte offset of the opening brace.
    pub pos: usize,
    /// What the first part of the name selects.
    pub first: First,
    /// `[index]` and `.attribute` steps after the first part.
    pub steps: Vec<Step>,
    /// `!r`, `!s`, `!a` or another (invalid) character.
    pub conversion: Option<char>,
    /// The format spec after `:`.
    pub spec: Spec,
}

/// The first part of a field name.
#[derive(Debug, Clone)]
pub(crate) enum First {
    /// A keyword: looked up among the variables.
    Name(Box<str>),
    /// `{}` (auto-numbered) or `{0}`: positional arguments, of which `str.format(**vars)` has none.
    Positional(Option<usize>),
    /// A number too large for an index.
    Overflow,
}

/// A step after the first part of a field name.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// `[n]` with a decimal n.
    Index(usize),
    /// `[key]` with any other text.
    Key,
    /// `.name`: attribute access.
    Attribute(Box<str>),
    /// The name is malformed from here on.
    Error(Failure),
}

/// The format spec of a field.
#[derive(Debug, Clone)]
pub(crate) enum Spec {
    /// No spec, or an empty one.
    None,
    /// A spec without fields, parsed once.
    Static(Result<StrSpec, Failure>),
    /// A spec with fields (`{a:{width}}`), rendered first, then parsed.
    Nested(Box<Parsed>),
}

/// The segments of a template, and the syntax error that ends it, if any (Python raises it only
/// once rendering reaches that point).
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub segments: Vec<Segment>,
    pub error: Option<(usize, Failure)>,
}

fn value_error(message: &str) -> Failure {
    Failure::new(ErrorKind::ValueError, message)
}

/// Parses `src[start..end]`.
pub(crate) fn parse(src: &str, start: usize, end: usize) -> Parsed {
    let bytes = src.as_bytes();
    let mut parsed = Parsed::default();
    let mut i = start;
    let literal = |parsed: &mut Parsed, a: usize, b: usize| {
        if b > a {
            // Merge with a literal that ends where this one starts (text around `{{`).
            if let Some(Segment::Literal(_, e)) = parsed.segments.last_mut()
                && *e as usize == a
            {
                *e = b as u32;
                return;
            }
            parsed.segments.push(Segment::Literal(a as u32, b as u32));
        }
    };
    while i < end {
        let Some(rel) = memchr2(b'{', b'}', &bytes[i..end]) else {
            literal(&mut parsed, i, end);
            break;
        };
        let brace = i + rel;
        let next = bytes.get(brace + 1).copied().filter(|_| brace + 1 < end);
        let c = bytes[brace];
        match (c, next) {
            (b'}', Some(b'}')) | (b'{', Some(b'{')) => {
                literal(&mut parsed, i, brace + 1);
                i = brace + 2;
            }
            (b'}', _) => {
                parsed.error = Some((
                    brace,
                    value_error("Single '}' encountered in format string"),
                ));
                return parsed;
            }
            (_, None) => {
                parsed.error = Some((
                    brace,
                    value_error("Single '{' encountered in format string"),
                ));
                return parsed;
            }
            _ => {
                literal(&mut parsed, i, brace);
                match field(src, brace, end) {
                    Ok((f, after)) => {
                        parsed.segments.push(Segment::Field(Box::new(f)));
                        i = after;
                    }
                    Err(failure) => {
                        parsed.error = Some((brace, failure));
                        return parsed;
                    }
                }
            }
        }
    }
    parsed
}

/// Parses the field whose `{` is at `open`; returns it and the offset after its `}`.
fn field(src: &str, open: usize, end: usize) -> Result<(Field, usize), Failure> {
    let bytes = src.as_bytes();
    let name_start = open + 1;
    let mut i = name_start;
    let mut last = None;
    while i < end {
        let c = bytes[i];
        i += 1;
        match c {
            b'{' => return Err(value_error("unexpected '{' in field name")),
            b'[' => {
                while i < end && bytes[i] != b']' {
                    i += 1;
                }
            }
            b'}' | b':' | b'!' => {
                last = Some(c);
                break;
            }
            _ => {}
        }
    }
    let Some(last) = last else {
        return Err(value_error("expected '}' before end of string"));
    };
    let name = &src[name_start..i - 1];
    let (first, steps) = split_name(name);
    let mut field = Field {
        pos: open,
        first,
        steps,
        conversion: None,
        spec: Spec::None,
    };
    if last == b'}' {
        return Ok((field, i));
    }
    if last == b'!' {
        let Some(conv) = src[i..end].chars().next() else {
            return Err(value_error(
                "end of string while looking for conversion specifier",
            ));
        };
        field.conversion = Some(conv);
        i += conv.len_utf8();
        if let Some(c) = src[i..end].chars().next() {
            i += c.len_utf8();
            if c == '}' {
                return Ok((field, i));
            }
            if c != ':' {
                return Err(value_error("expected ':' after conversion specifier"));
            }
        }
    }
    let spec_start = i;
    let (mut depth, mut nested) = (1usize, false);
    while i < end {
        let c = bytes[i];
        i += 1;
        match c {
            b'{' => {
                nested = true;
                depth += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    let spec_end = i - 1;
                    field.spec = if spec_start == spec_end {
                        Spec::None
                    } else if nested {
                        Spec::Nested(Box::new(parse(src, spec_start, spec_end)))
                    } else {
                        Spec::Static(spec::parse(&src[spec_start..spec_end]))
                    };
                    return Ok((field, i));
                }
            }
            _ => {}
        }
    }
    Err(value_error("unmatched '{' in format spec"))
}

/// CPython's `field_name_split` and `FieldNameIterator`: the first part, then the steps.
fn split_name(name: &str) -> (First, Vec<Step>) {
    let cut = name.find(['.', '[']).unwrap_or(name.len());
    let (head, mut rest) = name.split_at(cut);
    let first = match integer(head) {
        _ if head.is_empty() => First::Positional(None),
        Some(Some(n)) => First::Positional(Some(n)),
        Some(None) => First::Overflow,
        None => First::Name(head.into()),
    };
    let mut steps = Vec::new();
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let step = match c {
            '.' => {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let attr = &rest[..end];
                rest = &rest[end..];
                if attr.is_empty() {
                    Step::Error(value_error("Empty attribute in format string"))
                } else {
                    Step::Attribute(attr.into())
                }
            }
            '[' => match rest.find(']') {
                None => Step::Error(value_error("Missing ']' in format string")),
                Some(close) => {
                    let key = &rest[..close];
                    rest = &rest[close + 1..];
                    match integer(key) {
                        _ if key.is_empty() => {
                            Step::Error(value_error("Empty attribute in format string"))
                        }
                        Some(Some(n)) => Step::Index(n),
                        Some(None) => {
                            Step::Error(value_error("Too many decimal digits in format string"))
                        }
                        None => Step::Key,
                    }
                }
            },
            _ => Step::Error(value_error(
                "Only '.' or '[' may follow ']' in format field specifier",
            )),
        };
        let stop = matches!(step, Step::Error(_));
        steps.push(step);
        if stop {
            break;
        }
    }
    (first, steps)
}

/// `Some(Some(n))` when `text` is all Unicode decimal digits, `Some(None)` when that number
/// overflows, `None` when it is not a number (CPython's `get_integer` on a field name).
fn integer(text: &str) -> Option<Option<usize>> {
    if text.is_empty() {
        return None;
    }
    let mut value: usize = 0;
    for c in text.chars() {
        let d = decimal_value(c)? as usize;
        // CPython reports the overflow as soon as it happens, whatever follows.
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .filter(|&v| v <= isize::MAX as usize)
        {
            Some(v) => value = v,
            None => return Some(None),
        }
    }
    Some(Some(value))
}
