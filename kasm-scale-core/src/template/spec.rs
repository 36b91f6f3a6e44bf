//! Python's format-spec mini-language, for string values (`str.__format__`).

use super::python::{decimal_value, show_code};
use super::{ErrorKind, Failure};

/// The widest field the renderer pads to. Python would build any width that fits in memory; a
/// startup script is at most 64 KiB, so a wider field is refused instead.
pub const MAX_WIDTH: usize = 1 << 20;

/// A parsed format spec for a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StrSpec {
    fill: char,
    align: char,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Parses `spec` (non-empty) the way `str.__format__` does, including the checks it makes
/// before padding, in CPython's order.
pub(crate) fn parse(spec: &str) -> Result<StrSpec, Failure> {
    let chars: Vec<char> = spec.chars().collect();
    let end = chars.len();
    let value_error = |m: String| Failure::new(ErrorKind::ValueError, m);
    let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
    let mut pos = 0;
    let (mut fill, mut align) = (' ', '<');
    let mut fill_given = false;
    if end >= 2 && is_align(chars[1]) {
        (fill, align, fill_given) = (chars[0], chars[1], true);
        pos = 2;
    } else if end >= 1 && is_align(chars[0]) {
        align = chars[0];
        pos = 1;
    }
    let mut sign = None;
    if pos < end && matches!(chars[pos], ' ' | '+' | '-') {
        sign = Some(chars[pos]);
        pos += 1;
    }
    let no_neg_zero = pos < end && chars[pos] == 'z';
    pos += usize::from(no_neg_zero);
    let alternate = pos < end && chars[pos] == '#';
    pos += usize::from(alternate);
    if !fill_given && pos < end && chars[pos] == '0' {
        // For strings the default alignment is '<', so the '=' that '0' brings to numbers
        // does not apply.
        fill = '0';
        pos += 1;
    }
    let width = integer(&chars, &mut pos)?;
    let mut separator = None;
    if pos < end && chars[pos] == ',' {
        separator = Some(',');
        pos += 1;
    }
    if pos < end && chars[pos] == '_' {
        if separator.is_some() {
            return Err(value_error("Cannot specify both ',' and '_'.".into()));
        }
        separator = Some('_');
        pos += 1;
    }
    if pos < end && chars[pos] == ',' && separator == Some('_') {
        return Err(value_error("Cannot specify both ',' and '_'.".into()));
    }
    let mut precision = None;
    if pos < end && chars[pos] == '.' {
        pos += 1;
        precision = integer(&chars, &mut pos)?;
        if precision.is_none() {
            return Err(value_error("Format specifier missing precision".into()));
        }
    }
    if end - pos > 1 {
        return Err(value_error(format!(
            "Invalid format specifier '{spec}' for object of type 'str'"
        )));
    }
    let kind = if end - pos == 1 { chars[pos] } else { 's' };
    if let Some(sep) = separator {
        // Only numeric presentation types take separators; 's' (the default) does not.
        if !matches!(
            kind,
            'd' | 'e' | 'f' | 'g' | 'E' | 'G' | '%' | 'F' | 'b' | 'o' | 'x' | 'X'
        ) || (sep == ',' && matches!(kind, 'b' | 'o' | 'x' | 'X'))
        {
            return Err(value_error(format!(
                "Cannot specify '{sep}' with '{}'.",
                show_code(kind)
            )));
        }
    }
    if kind != 's' {
        return Err(value_error(format!(
            "Unknown format code '{}' for object of type 'str'",
            show_code(kind)
        )));
    }
    match sign {
        Some(' ') => {
            return Err(value_error(
                "Space not allowed in string format specifier".into(),
            ));
        }
        Some(_) => {
            return Err(value_error(
                "Sign not allowed in string format specifier".into(),
            ));
        }
        None => {}
    }
    if no_neg_zero {
        return Err(value_error(
            "Negative zero coercion (z) not allowed in string format specifier".into(),
        ));
    }
    if alternate {
        return Err(value_error(
            "Alternate form (#) not allowed in string format specifier".into(),
        ));
    }
    if align == '=' {
        return Err(value_error(
            "'=' alignment not allowed in string format specifier".into(),
        ));
    }
    if let Some(w) = width
        && w > MAX_WIDTH
    {
        return Err(Failure::new(
            ErrorKind::Unsupported,
            format!("width {w} is larger than the {MAX_WIDTH} characters the renderer pads to"),
        ));
    }
    Ok(StrSpec {
        fill,
        align,
        width,
        precision,
    })
}

/// Reads Unicode decimal digits at `pos` (CPython's `get_integer`): `None` when there are none.
fn integer(chars: &[char], pos: &mut usize) -> Result<Option<usize>, Failure> {
    let mut value: usize = 0;
    let start = *pos;
    while let Some(d) = chars.get(*pos).and_then(|&c| decimal_value(c)) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(d as usize))
            .filter(|&v| v <= isize::MAX as usize)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::ValueError,
                    "Too many decimal digits in format string",
                )
            })?;
        *pos += 1;
    }
    Ok((*pos > start).then_some(value))
}

impl StrSpec {
    /// Writes `value` truncated to the precision and padded to the width.
    pub(crate) fn apply(&self, value: &str, out: &mut String) {
        let len = value.chars().count();
        let fits = self.width.is_none_or(|w| w <= len) && self.precision.is_none_or(|p| p >= len);
        if fits {
            out.push_str(value);
            return;
        }
        let (shown, len) = match self.precision {
            Some(p) if p < len => (
                value
                    .char_indices()
                    .nth(p)
                    .map_or(value, |(i, _)| &value[..i]),
                p,
            ),
            _ => (value, len),
        };
        let total = self.width.map_or(len, |w| w.max(len));
        let left = match self.align {
            '>' => total - len,
            '^' => (total - len) / 2,
            _ => 0,
        };
        let right = total - len - left;
        out.extend(std::iter::repeat_n(self.fill, left));
        out.push_str(shown);
        out.extend(std::iter::repeat_n(self.fill, right));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(spec: &str, value: &str) -> Result<String, String> {
        let s = parse(spec).map_err(|f| f.message)?;
        let mut out = String::new();
        s.apply(value, &mut out);
        Ok(out)
    }

    #[test]
    fn padding_and_precision() {
        assert_eq!(fmt("08", "héllo").unwrap(), "héllo000");
        assert_eq!(fmt("^6", "héllo").unwrap(), "héllo ");
        assert_eq!(fmt("*^9", "ab").unwrap(), "***ab****");
        assert_eq!(fmt(">4.1", "xyz").unwrap(), "   x");
        assert_eq!(fmt("{<3", "a").unwrap(), "a{{");
        assert_eq!(fmt("٣", "a").unwrap(), "a  ", "Unicode digits are widths");
    }

    #[test]
    fn errors_in_cpython_order() {
        assert_eq!(
            fmt("+d", "x").unwrap_err(),
            "Unknown format code 'd' for object of type 'str'"
        );
        assert_eq!(fmt(",", "x").unwrap_err(), "Cannot specify ',' with 's'.");
        assert_eq!(
            fmt(",d", "x").unwrap_err(),
            "Unknown format code 'd' for object of type 'str'"
        );
        assert_eq!(fmt(",x", "x").unwrap_err(), "Cannot specify ',' with 'x'.");
        assert_eq!(
            fmt("_x", "x").unwrap_err(),
            "Unknown format code 'x' for object of type 'str'"
        );
        assert_eq!(
            fmt("xx", "x").unwrap_err(),
            "Invalid format specifier 'xx' for object of type 'str'"
        );
        assert_eq!(
            fmt("\u{1}", "x").unwrap_err(),
            "Unknown format code '\\x1' for object of type 'str'"
        );
        assert_eq!(
            fmt("99999999999999999999", "x").unwrap_err(),
            "Too many decimal digits in format string"
        );
    }
}
