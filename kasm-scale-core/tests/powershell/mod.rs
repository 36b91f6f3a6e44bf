//! A lexer of the parts of PowerShell that decide what is code and what is data (strings,
//! here-strings, comments, the base64 expression kasm-scale writes for text that is not printable
//! ASCII), written from the language reference.
//!
//! Shared by `builtin_scripts.rs` (each value is one literal) and `builtin_script_secrets.rs`
//! (no secret reaches a native command's arguments; files with secrets are locked down).

#![allow(dead_code)] // Each including test uses its own part.

/// A PowerShell token, as far as this test needs to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Code outside strings and comments (consecutive characters together).
    Code(String),
    /// A string literal's value: a single-quoted string, or the base64 expression kasm-scale
    /// writes for text that is not printable ASCII.
    Literal(String),
    /// An expandable string (`"…"`), raw.
    Expandable(String),
    /// A here-string (`@'…'@` or `@"…"@`), raw.
    HereString(String),
    /// A comment.
    Comment(String),
}

/// PowerShell's single quotes: the ASCII one and the typographic ones.
pub fn single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}')
}

/// PowerShell's double quotes.
pub fn double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201c}' | '\u{201d}' | '\u{201e}')
}

/// The expression around base64 text (as the README documents it).
pub const BASE64_START: &str =
    "([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String(";
pub const BASE64_END: &str = ")))";

pub fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut code = String::new();
    let mut i = 0;
    let flush = |code: &mut String, tokens: &mut Vec<Token>| {
        if !code.is_empty() {
            tokens.push(Token::Code(std::mem::take(code)));
        }
    };
    let rest = |i: usize| chars[i..].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '#' {
            flush(&mut code, &mut tokens);
            let end = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
            tokens.push(Token::Comment(chars[i..end].iter().collect()));
            i = end;
        } else if c == '<' && next == Some('#') {
            flush(&mut code, &mut tokens);
            let end = (i + 2..chars.len())
                .find(|&j| chars[j] == '#' && chars.get(j + 1) == Some(&'>'))
                .expect("an ended block comment");
            tokens.push(Token::Comment(chars[i..end + 2].iter().collect()));
            i = end + 2;
        } else if c == '@'
            && next.is_some_and(|q| single_quote(q) || double_quote(q))
            && chars.get(i + 2) == Some(&'\n')
        {
            // A here-string ends at a line that starts with the quote and `@`.
            flush(&mut code, &mut tokens);
            let single = single_quote(next.unwrap());
            let end = (i + 3..chars.len())
                .find(|&j| {
                    chars[j - 1] == '\n'
                        && (if single {
                            single_quote(chars[j])
                        } else {
                            double_quote(chars[j])
                        })
                        && chars.get(j + 1) == Some(&'@')
                })
                .expect("an ended here-string");
            tokens.push(Token::HereString(chars[i..end + 2].iter().collect()));
            i = end + 2;
        } else if single_quote(c) {
            flush(&mut code, &mut tokens);
            let (value, end) = single_quoted(&chars, i);
            tokens.push(Token::Literal(value));
            i = end;
        } else if double_quote(c) {
            flush(&mut code, &mut tokens);
            let mut j = i + 1;
            let mut depth = 0;
            loop {
                let d = *chars.get(j).expect("an ended expandable string");
                if d == '`' {
                    j += 2;
                    continue;
                }
                if d == '$' && chars.get(j + 1) == Some(&'(') {
                    depth += 1;
                    j += 2;
                    continue;
                }
                if depth > 0 && d == ')' {
                    depth -= 1;
                } else if depth == 0 && double_quote(d) {
                    if chars.get(j + 1).is_some_and(|&e| double_quote(e)) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            tokens.push(Token::Expandable(chars[i..=j].iter().collect()));
            i = j + 1;
        } else if c == '(' && rest(i).starts_with(BASE64_START) {
            flush(&mut code, &mut tokens);
            let start = i + BASE64_START.chars().count();
            assert!(single_quote(chars[start]), "base64 text is a string");
            let (encoded, end) = single_quoted(&chars, start);
            assert!(
                rest(end).starts_with(BASE64_END),
                "the expression is closed"
            );
            tokens.push(Token::Literal(
                String::from_utf8(base64_decode(&encoded)).expect("UTF-8 in base64"),
            ));
            i = end + BASE64_END.len();
        } else {
            code.push(c);
            i += 1;
        }
    }
    flush(&mut code, &mut tokens);
    tokens
}

/// A single-quoted string at `start`: its value and the index after it. A quote is written
/// twice to stand for itself.
pub fn single_quoted(chars: &[char], start: usize) -> (String, usize) {
    let mut value = String::new();
    let mut j = start + 1;
    loop {
        let c = *chars.get(j).expect("an ended single-quoted string");
        if single_quote(c) {
            if chars.get(j + 1).is_some_and(|&d| single_quote(d)) {
                value.push(c);
                j += 2;
                continue;
            }
            return (value, j + 1);
        }
        value.push(c);
        j += 1;
    }
}

/// Standard base64 (RFC 4648, padded), decoded by hand: the test does not use the encoder's
/// crate.
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(text.len() % 4, 0, "padded base64: {text}");
    let mut out = Vec::new();
    let mut bits = 0u32;
    let mut count = 0;
    for b in text.bytes().filter(|&b| b != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == b)
            .unwrap_or_else(|| panic!("not base64: {text}")) as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
