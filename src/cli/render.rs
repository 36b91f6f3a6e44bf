//! `kasm-scale render`: render a startup-script template the way Kasm does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use kasm_scale_core::read_input_file;
use kasm_scale_core::template::{
    self, Diagnostics, EXAMPLE_VARIABLES, ErrorKind, MAX_PROBLEMS, Template, TemplateError,
    builtin, check_static,
};

use super::output::Stdout;

/// Where the template comes from.
pub enum Source {
    /// A file.
    File(PathBuf),
    /// A built-in script by name.
    Builtin(String),
}

/// How `render` works, besides the template and the variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Only parse, and list the variables the template uses.
    pub check: bool,
    /// Print the template text as it is, unrendered.
    pub raw: bool,
    /// Start from the documented sample value of every variable ([`EXAMPLE_VARIABLES`]).
    pub example_vars: bool,
}

/// Renders (or with `check`, only parses) the template and prints the result on stdout.
/// Exit 0 on success, 1 on a template error, 2 when an input cannot be read.
///
/// A built-in script is rendered as kasm-scale renders it for a server, each value quoted for
/// its language ([`Template::render_quoted`]); a template file is rendered raw, as Kasm does.
/// On template errors every problem is printed on stderr as `FILE:LINE:COL: <Python's error>`,
/// Python's own error first (what `str.format(**vars)` raises with these variables), then the
/// others in document order ([`template::check`]). With `check` the variables are ignored and the
/// problems are those that fail whatever their values ([`check_static`]), in document order.
pub fn run(
    source: Source,
    vars: &[(String, String)],
    vars_file: Option<PathBuf>,
    options: Options,
) -> ExitCode {
    let mut out = Stdout::new();
    let status = match render(source, vars, vars_file, options, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    };
    out.finish(status)
}

fn render(
    source: Source,
    vars: &[(String, String)],
    vars_file: Option<PathBuf>,
    options: Options,
    out: &mut Stdout,
) -> Result<(), (u8, String)> {
    let mut values: HashMap<String, Option<String>> = HashMap::new();
    if options.example_vars {
        values.extend(
            EXAMPLE_VARIABLES
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned))),
        );
    }
    let (name, text, quoting) = match source {
        Source::File(path) => {
            let text = read_input_file(&path)
                .map_err(|e| (2, format!("{}: cannot read: {e}", path.display())))?;
            (path.display().to_string(), text, None)
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
            (
                format!("builtin:{name}"),
                script.text.to_owned(),
                Some(script.quoting),
            )
        }
    };
    if options.raw {
        out.text(&text);
        return Ok(());
    }
    if let Some(path) = vars_file {
        values.extend(read_vars(&path)?);
    }
    values.extend(vars.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));

    // With `--check` the variables are not known: only what fails whatever their values.
    let problems = if options.check {
        check_static(&text)
    } else {
        template::check(&text, &values)
    };
    if !problems.is_empty() {
        let mut message = report(&name, &problems);
        let unknown = problems
            .errors()
            .iter()
            .any(|e| e.kind() == ErrorKind::KeyError);
        if quoting.is_some() && unknown {
            message.push_str(&format!(
                "\n{name}: give its variables with --var or --vars, or --example-vars for sample \
                 values; --raw prints the script unrendered"
            ));
        }
        return Err((1, message));
    }
    // The check is clean, so parsing does not fail and rendering fails only on a value a
    // built-in script cannot carry; a disagreement is still an error.
    let one = |e: TemplateError| (1, format!("{name}:{e}"));
    let template = Template::parse(text).map_err(one)?;
    if options.check {
        for field in template.field_names() {
            out.line(field);
        }
    } else {
        let rendered = match quoting {
            Some(quoting) => template.render_quoted(&values, quoting),
            None => template.render(&values),
        }
        .map_err(one)?;
        // The user asked for the script: this is where its secrets are meant to go.
        out.text(rendered.expose());
    }
    Ok(())
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
    let text = read_input_file(path).map_err(|e| (2, format!("{file}: cannot read: {e}")))?;
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
