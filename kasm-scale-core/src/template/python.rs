//! The bits of CPython's string semantics the renderer needs: `repr()`, `ascii()`, which
//! characters are printable, and which are decimal digits.

use std::fmt::Write;

use super::unicode_tables::{DECIMAL_ZEROS, NON_PRINTABLE};

/// Python's `str.isprintable()` for one character (Python 3.11, Unicode 14 tables).
pub(crate) fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    if (0x20..0x7F).contains(&cp) {
        return true;
    }
    if cp < 0x20 || cp == 0x7F {
        return false;
    }
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// The value of a Unicode decimal digit (Python's `unicodedata.decimal`), if `c` is one.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(u32::from(c) - u32::from('0'));
    }
    if c.is_ascii() {
        return None;
    }
    let cp = u32::from(c);
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then_some(cp - zero)
}

/// Python's `repr(s)` for a string.
pub(crate) fn repr(s: &str) -> String {
    quote(s, false)
}

/// Python's `ascii(s)` for a string.
pub(crate) fn ascii(s: &str) -> String {
    quote(s, true)
}

fn quote(s: &str, ascii_only: bool) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            _ if c == q || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ if !c.is_ascii() && !ascii_only && is_printable(c) => out.push(c),
            _ => escape(&mut out, c),
        }
    }
    out.push(q);
    out
}

fn escape(out: &mut String, c: char) {
    let cp = u32::from(c);
    // Writing to a String cannot fail.
    let _ = if cp <= 0xFF {
        write!(out, "\\x{cp:02x}")
    } else if cp <= 0xFFFF {
        write!(out, "\\u{cp:04x}")
    } else {
        write!(out, "\\U{cp:08x}")
    };
}

/// Python's `repr()` of a key, as shown by `KeyError`.
pub(crate) fn key_error(name: &str) -> String {
    repr(name)
}

/// How CPython shows a character in "Unknown conversion specifier" and "Unknown format code":
/// itself when it is printable ASCII above space, else `\x` and its hex value.
pub(crate) fn show_code(c: char) -> String {
    let cp = u32::from(c);
    if cp > 32 && cp < 128 {
        c.to_string()
    } else {
        format!("\\x{cp:x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(repr("abc"), "'abc'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(repr("a\\b\t\n\r\x00\x7f"), "'a\\\\b\\t\\n\\r\\x00\\x7f'");
        assert_eq!(repr("é😀\u{ad}\u{2028}\u{85}"), "'é😀\\xad\\u2028\\x85'");
        assert_eq!(ascii("é😀"), "'\\xe9\\U0001f600'");
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('٣'), Some(3));
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('½'), None);
        assert_eq!(
            decimal_value('²'),
            None,
            "superscripts are digits but not decimals"
        );
    }
}
