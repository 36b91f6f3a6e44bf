//! `kasm-scale render`: render a startup-script template the way Kasm does.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use kasm_scale_core::template::{
    self, Diagnostics, MAX_PROBLEMS, Template, TemplateError, builtin, check_static,
};

/// Where the template comes from.
pub enum Source {
    /// A file.
    File(PathBuf),
    /// A built-in script by name.
    Builtin(String),
}

/// Renders (or with `check`, only parses) the template and prints the result on stdout.
/// Exit 0 on success, 1 on a template error, 2 when an input cannot be read.
///
/// On template errors every problem is printed on stderr as `FILE:LINE:COL: <Python's error>`,
/// Python's own error first (what `str.format(**vars)` raises with these variables), then the
/// others in document order ([`template::check`]). With `check` the variables are ignored and the
/// problems are those that fail whatever their values ([`check_static`]), in document order.
pub fn run(
    source: Source,
    vars: &[(String, String)],
    vars_file: Option<PathBuf>,
    check: bool,
) -> ExitCode {
    match render(source, vars, vars_file, check) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

fn render(
    source: Source,
    vars: &[(String, String)],
    vars_file: Option<PathBuf>,
    check: bool,
) -> Result<(), (u8, String)> {
    let mut values: HashMap<String, Option<String>> = HashMap::new();
    let (name, text) = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| (2, format!("{}: cannot read: {e}", path.display())))?;
            (path.display().to_string(), text)
        }
        Source::Builtin(name) => {
            let script = builtin(&name).ok_or_else(|| {
                let known: Vec<&str> = kasm_scale_core::template::BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect();
                (
                    2,
                    format!(
                        "unknown built-in script `{name}`; known: {}",
                        known.join(", ")
                    ),
                )
            })?;
            values.extend(
                script
                    .defaults
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))),
            );
            (format!("builtin:{name}"), script.text.to_owned())
        }
    };
    if let Some(path) = vars_file {
        values.extend(read_vars(&path)?);
    }
    values.extend(vars.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));

    // With `--check` the variables are not known: only what fails whatever their values.
    let problems = if check {
        check_static(&text)
    } else {
        template::check(&text, &values)
    };
    if !problems.is_empty() {
        return Err((1, report(&name, &problems)));
    }
    // The check is clean, so neither parsing nor rendering fails; a disagreement is still an error.
    let one = |e: TemplateError| (1, format!("{name}:{e}"));
    let template = Template::parse(text).map_err(one)?;
    let mut stdout = std::io::stdout().lock();
    let written = if check {
        template
            .field_names()
            .try_for_each(|f| writeln!(stdout, "{f}"))
    } else {
        let rendered = template.render(&values).map_err(one)?;
        // The user asked for the script: this is where its secrets are meant to go.
        stdout.write_all(rendered.expose().as_bytes())
    };
    written.map_err(|e| (2, format!("cannot write the output: {e}")))
}

/// `FILE:LINE:COL: KeyError: 'x'`, one line per problem, Python's error first.
fn report(name: &str, problems: &Diagnostics) -> String {
    let mut lines: Vec<String> = problems
        .errors()
        .iter()
        .map(|e| format!("{name}:{e}"))
        .collect();
    if problems.is_truncated() {
        lines.push(format!(
            "{name}: more problems not listed: the check stops after {MAX_PROBLEMS}"
        ));
    }
    lines.join("\n")
}

/// Reads a JSON object whose values are strings (or null, Python's `None`).
fn read_vars(path: &PathBuf) -> Result<HashMap<String, Option<String>>, (u8, String)> {
    let file = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| (2, format!("{file}: cannot read: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| (2, format!("{file}:{}:{}: {e}", e.line(), e.column())))?;
    let serde_json::Value::Object(map) = value else {
        return Err((
            2,
            format!("{file}: must be a JSON object of variable names to strings"),
        ));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, Some(s))),
            serde_json::Value::Null => Ok((k, None)),
            _ => Err((2, format!("{file}: `{k}` must be a string or null"))),
        })
        .collect()
}

/// Parses `NAME=VALUE`.
pub fn parse_var(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{arg}` is not NAME=VALUE")),
    }
}
