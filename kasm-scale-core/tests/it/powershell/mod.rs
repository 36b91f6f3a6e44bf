//! A lexer of the parts of PowerShell that decide what is code and what is data (strings,
//! here-strings, comments, the base64 expression kasm-scale writes for text that is not printable
//! ASCII), written from the language reference.
//!
//! Shared by `builtin_scripts.rs` (each value is one literal) and `builtin_script_secrets.rs`
//! (no secret reaches a native command's arguments; files with secrets are locked down), which
//! also uses the statement splitter and the secret analysis at the end of this file.

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

// ---------------------------------------------------------------------------------------------
// Statements, and where secrets go.

use std::collections::BTreeSet;

/// Programs a script could hand a secret to on their command line (besides any `.exe` and the
/// call operator `&`).
pub const NATIVE: [&str; 16] = [
    "icacls",
    "schtasks",
    "net",
    "net1",
    "reg",
    "cmd",
    "sc",
    "netsh",
    "setx",
    "takeown",
    "powershell",
    "pwsh",
    "msiexec",
    "netdom",
    "djoin",
    "wmic",
];

/// The statements of a script: its tokens without comments, split at the line breaks and `;`
/// of its code, except inside parentheses or a hashtable (`@{ … }`) and after a `|` or a
/// backtick (the statement goes on). A script block's lines (`if (…) {` …) are statements.
pub fn statements(tokens: &[Token]) -> Vec<Vec<Token>> {
    let mut out: Vec<Vec<Token>> = vec![Vec::new()];
    // What is open: `(`, `h` (a hashtable) or `b` (a script block).
    let mut open: Vec<char> = Vec::new();
    let mut last = ' ';
    for token in tokens {
        match token {
            Token::Comment(_) => {}
            Token::Code(code) => {
                let chars: Vec<char> = code.chars().collect();
                let mut piece = String::new();
                for (i, &c) in chars.iter().enumerate() {
                    match c {
                        '(' => open.push('('),
                        '{' if i > 0 && chars[i - 1] == '@' => open.push('h'),
                        '{' => open.push('b'),
                        ')' | '}' => {
                            open.pop();
                        }
                        _ => {}
                    }
                    let inside = open.iter().any(|&o| o != 'b');
                    let ends = !inside && (c == ';' || (c == '\n' && !matches!(last, '|' | '`')));
                    if ends {
                        if !piece.is_empty() {
                            out.last_mut()
                                .unwrap()
                                .push(Token::Code(std::mem::take(&mut piece)));
                        }
                        out.push(Vec::new());
                    } else {
                        piece.push(c);
                    }
                    if !c.is_whitespace() {
                        last = c;
                    }
                }
                if !piece.is_empty() {
                    out.last_mut().unwrap().push(Token::Code(piece));
                }
            }
            other => {
                out.last_mut().unwrap().push(other.clone());
                last = '"';
            }
        }
    }
    out.retain(|s| {
        s.iter()
            .any(|t| !matches!(t, Token::Code(c) if c.trim().is_empty()))
    });
    out
}

/// The code of a statement, strings left out.
pub fn code(statement: &[Token]) -> String {
    statement
        .iter()
        .map(|t| match t {
            Token::Code(c) => c.as_str(),
            _ => " \"\" ",
        })
        .collect()
}

/// The statement's text: code and the raw text of strings.
pub fn text(statement: &[Token]) -> String {
    statement
        .iter()
        .map(|t| match t {
            Token::Code(c) | Token::Expandable(c) | Token::HereString(c) => c.clone(),
            Token::Literal(v) => format!("'{v}'"),
            Token::Comment(_) => String::new(),
        })
        .collect()
}

/// The variables a statement reads or writes (lower case, as PowerShell's names are not case
/// sensitive): in its code and in its expandable strings.
pub fn variables(statement: &[Token]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for t in statement {
        let (Token::Code(s) | Token::Expandable(s)) = t else {
            continue;
        };
        let chars: Vec<char> = s.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c != '$' {
                continue;
            }
            let name: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
                .collect();
            if !name.is_empty() {
                names.insert(name.to_ascii_lowercase());
            }
        }
    }
    names
}

/// The variable a statement assigns (`$x = …`), if it is an assignment.
pub fn assigned(statement: &[Token]) -> Option<String> {
    let code = code(statement);
    let rest = code.trim_start().strip_prefix('$')?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after = rest[name.len()..].trim_start();
    (after.starts_with('=') && !after.starts_with("==")).then(|| name.to_ascii_lowercase())
}

/// Whether a statement runs a native program (whose command line every user can read) or
/// builds a command line for one.
pub fn native(statement: &[Token]) -> bool {
    let code = code(statement);
    let words: Vec<String> = code
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '{' | '}' | '|' | '='))
        .map(str::to_ascii_lowercase)
        .collect();
    code.contains('&')
        || words.iter().any(|w| {
            w.ends_with(".exe")
                || NATIVE.contains(&w.as_str())
                || w == "start-process"
                || w == "new-scheduledtaskaction"
        })
}

/// What the secret analysis of a script found.
#[derive(Debug, Default)]
pub struct Secrets {
    /// Variables that hold a secret or something made from one.
    pub tainted: BTreeSet<String>,
    /// Files a secret is written to (their names).
    pub files: BTreeSet<String>,
    /// Native commands (statement text) that receive a secret.
    pub leaks: Vec<String>,
}

/// The file name a statement writes to with `Set-Content`, `Out-File` or `Add-Content`.
pub fn written_file(statement: &[Token]) -> Option<String> {
    let code = code(statement).to_ascii_lowercase();
    if !["set-content", "out-file", "add-content"]
        .iter()
        .any(|c| code.contains(c))
    {
        return None;
    }
    let i = statement.iter().position(
        |t| matches!(t, Token::Code(c) if c.to_ascii_lowercase().trim_end().ends_with("-path")),
    )?;
    let path = match statement.get(i + 1)? {
        Token::Expandable(s) => s.trim_matches('"').to_owned(),
        Token::Literal(s) => s.clone(),
        _ => return None,
    };
    Some(
        path.rsplit(['\\', '/'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    )
}

/// Follows the secrets (string literals holding one of `values`) through `script` (and, in
/// `known`, the files that already hold one): which variables come to hold one, which files are
/// written with one, and which native command receives one.
pub fn follow(script: &str, values: &[String], known: &Secrets) -> Secrets {
    let stmts = statements(&lex(script));
    let sentinel = |t: &Token| matches!(t, Token::Literal(v) if values.contains(v));
    let mut found = Secrets {
        files: known.files.clone(),
        ..Secrets::default()
    };
    loop {
        let before = (found.tainted.len(), found.files.len());
        for s in &stmts {
            let reads_file = code(s).to_ascii_lowercase().contains("get-content")
                && found
                    .files
                    .iter()
                    .any(|f| text(s).to_ascii_lowercase().contains(f.as_str()));
            let secret = s.iter().any(sentinel)
                || reads_file
                || variables(s).iter().any(|v| {
                    found.tainted.contains(v)
                        || found
                            .tainted
                            .iter()
                            .any(|t| v.starts_with(&format!("{t}.")))
                });
            if !secret {
                continue;
            }
            if let Some(x) = assigned(s) {
                found.tainted.insert(x);
            }
            if let Some(f) = written_file(s).filter(|_| !reads_file) {
                found.files.insert(f);
            }
        }
        if (found.tainted.len(), found.files.len()) == before {
            break;
        }
    }
    for s in stmts.iter().filter(|s| native(s)) {
        // What the command receives: the assigned variable takes its output.
        let mut read = variables(s);
        if let Some(x) = assigned(s) {
            read.remove(&x);
        }
        let uses = s.iter().any(sentinel)
            || read.iter().any(|v| {
                found.tainted.contains(v)
                    || found
                        .tainted
                        .iter()
                        .any(|t| v.starts_with(&format!("{t}.")))
            });
        if uses {
            found.leaks.push(text(s));
        }
    }
    found
}

/// The scripts a script writes to files to run later (single-quoted here-strings: code, not
/// text), without their `@'` and `'@` lines.
pub fn embedded_scripts(script: &str) -> Vec<String> {
    lex(script)
        .into_iter()
        .filter_map(|t| match t {
            Token::HereString(raw) if raw.starts_with("@'") => {
                let body = raw.split_once('\n')?.1;
                Some(body.rsplit_once('\n')?.0.to_owned())
            }
            _ => None,
        })
        .collect()
}
