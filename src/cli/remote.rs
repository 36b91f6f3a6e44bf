//! The operator's commands against a running `kasm-scale serve` (its broker API): `drain`,
//! `undrain`, `drains`, `generations`, `reload` and `resume-rollout`. The broker key comes from
//! an environment variable or a file, never from the command line (where `ps` would show it).
//!
//! Exit status: 0 when the service did it (its JSON answer on stdout), 1 when it refused (its
//! status and reason, and every problem of a refused reload, on stderr), 2 when it cannot be
//! reached or an option is wrong.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use jiff::{Span, Timestamp};
use serde_json::{Value, json};

/// Where the service is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct Api {
    /// The service's base address.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8443")]
    url: String,
    /// The environment variable holding a broker key (`broker_api.keys`).
    #[arg(
        long,
        value_name = "VAR",
        default_value = "KASM_SCALE_BROKER_KEY",
        conflicts_with = "key_file"
    )]
    key_env: String,
    /// A file holding a broker key (its first line), instead of `--key-env`.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Trust only this CA certificate (PEM) for the service's TLS certificate, e.g. a
    /// self-signed one; default: the system's roots.
    #[arg(long, value_name = "PEM")]
    cacert: Option<PathBuf>,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 130,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// What a drain or undrain names: exactly one of them.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A server, by id (a UUID, as `GET /api/v1/servers` lists it).
    #[arg(long, value_name = "ID")]
    server: Option<String>,
    /// Every server of an auto-scale config (`autoscale_config_name`).
    #[arg(long, value_name = "NAME")]
    config: Option<String>,
    /// Every server of a pool (`server_pool_name`).
    #[arg(long, value_name = "NAME")]
    pool: Option<String>,
}

impl Target {
    fn kind_and_name(&self) -> (&'static str, String) {
        match (&self.server, &self.config, &self.pool) {
            (Some(id), _, _) => ("server", id.clone()),
            (None, Some(name), _) => ("config", name.clone()),
            (None, None, Some(name)) => ("pool", name.clone()),
            // clap requires one.
            (None, None, None) => ("pool", String::new()),
        }
    }
}

/// `kasm-scale drain`'s options.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    target: Target,
    /// Who asks (a person or a system), kept with the drain.
    #[arg(long, value_name = "WHO")]
    by: String,
    /// Why, kept with the drain.
    #[arg(long, value_name = "WHY")]
    reason: String,
    /// When the drain ends by itself: an RFC 3339 time or a span from now (`30m`, `2h`, `1d`).
    #[arg(long, value_name = "WHEN", value_parser = parse_until)]
    until: Option<Until>,
    /// What becomes of its servers once empty: `destroy` (default) or `keep` (maintenance).
    #[arg(long, value_name = "THEN", default_value = "destroy",
          value_parser = ["destroy", "keep"])]
    then: String,
    #[command(flatten)]
    api: Api,
}

/// `--until`: a time, or a span from now.
#[derive(Debug, Clone)]
pub enum Until {
    /// At this time.
    At(Timestamp),
    /// This long from now.
    In(Span),
}

impl Until {
    fn at(&self, now: Timestamp) -> Result<Timestamp, String> {
        match self {
            Until::At(t) => Ok(*t),
            Until::In(span) => now
                .to_zoned(jiff::tz::TimeZone::UTC)
                .checked_add(*span)
                .map(|z| z.timestamp())
                .map_err(|e| format!("--until: {e}")),
        }
    }
}

/// An RFC 3339 time, or a span such as `30m`, `2h 30m` or `1d`.
fn parse_until(text: &str) -> Result<Until, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Until::At(at));
    }
    match text.parse::<Span>() {
        Ok(span) if span.is_positive() => Ok(Until::In(span)),
        Ok(_) => Err("a span from now must be positive".to_owned()),
        Err(_) => Err(format!(
            "`{text}` is neither an RFC 3339 time (2026-03-02T18:00:00Z) nor a span (30m, 2h, 1d)"
        )),
    }
}

/// `kasm-scale undrain`'s options.
#[derive(Debug, clap::Args)]
pub struct UndrainArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    api: Api,
}

/// `kasm-scale resume-rollout`'s options.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The auto-scale config whose paused rollout goes on.
    #[arg(value_name = "CONFIG")]
    config: String,
    #[command(flatten)]
    api: Api,
}

/// One call to the service.
struct Call<'a> {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    api: &'a Api,
}

/// `kasm-scale drain`.
pub fn drain(args: DrainArgs) -> ExitCode {
    let (kind, name) = args.target.kind_and_name();
    let until = match args
        .until
        .as_ref()
        .map(|u| u.at(Timestamp::now()))
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return usage(&e),
    };
    let body = json!({
        "target": {"kind": kind, "name": name},
        "by": args.by,
        "reason": args.reason,
        "until": until,
        "then": args.then,
    });
    run(Call {
        method: reqwest::Method::POST,
        path: "/api/v1/drains".into(),
        body: Some(body),
        api: &args.api,
    })
}

/// `kasm-scale undrain`.
pub fn undrain(args: UndrainArgs) -> ExitCode {
    let (kind, name) = args.target.kind_and_name();
    run(Call {
        method: reqwest::Method::DELETE,
        path: format!("/api/v1/drains/{kind}/{}", segment(&name)),
        body: None,
        api: &args.api,
    })
}

/// `kasm-scale drains`, `kasm-scale generations`, `kasm-scale reload`.
pub fn simple(api: Api, method: reqwest::Method, path: &str) -> ExitCode {
    run(Call {
        method,
        path: path.into(),
        body: None,
        api: &api,
    })
}

/// `kasm-scale resume-rollout`.
pub fn resume(args: ResumeArgs) -> ExitCode {
    run(Call {
        method: reqwest::Method::POST,
        path: format!("/api/v1/rollouts/{}/resume", segment(&args.config)),
        body: None,
        api: &args.api,
    })
}

/// `name` as one path segment (percent-encoded where needed).
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn usage(message: &str) -> ExitCode {
    eprintln!("kasm-scale: {message}");
    ExitCode::from(2)
}

/// The broker key, from the file or the variable (trimmed; never printed).
fn key(api: &Api) -> Result<String, String> {
    let key = match &api.key_file {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| format!("--key-file {}: {e}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        None => std::env::var(&api.key_env)
            .map_err(|_| {
                format!(
                    "no broker key: set the environment variable {} (or give --key-env VAR or --key-file FILE)",
                    api.key_env
                )
            })?
            .trim()
            .to_owned(),
    };
    if key.is_empty() {
        return Err("the broker key is empty".into());
    }
    Ok(key)
}

fn client(api: &Api) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(api.timeout));
    if let Some(file) = &api.cacert {
        let pem = std::fs::read(file).map_err(|e| format!("--cacert {}: {e}", file.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--cacert {}: {e}", file.display()))?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot make the HTTP client: {e}"))
}

fn run(call: Call<'_>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(send(&call)) {
        Ok((status, body)) if status.is_success() => {
            let text = serde_json::to_string_pretty(&body).unwrap_or_default();
            super::output::Stdout::new().line(format_args!("{text}"));
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let reason = body["error_message"].as_str().unwrap_or("no reason given");
            eprintln!(
                "kasm-scale: {} {}: {status}: {reason}",
                call.method, call.path
            );
            for problem in body["problems"].as_array().into_iter().flatten() {
                eprintln!("  {}", problem.as_str().unwrap_or_default());
            }
            if let Some(leader) = body["leader"].as_str().filter(|l| !l.is_empty()) {
                eprintln!("  the leader is at {leader}: give it as --url");
            }
            ExitCode::from(1)
        }
        Err(e) => usage(&e),
    }
}

async fn send(call: &Call<'_>) -> Result<(reqwest::StatusCode, Value), String> {
    use tracing::Instrument;
    let span = tracing::info_span!("broker_call", method = %call.method, path = %call.path);
    send_now(call).instrument(span).await
}

async fn send_now(call: &Call<'_>) -> Result<(reqwest::StatusCode, Value), String> {
    let key = key(call.api)?;
    let url = format!("{}{}", call.api.url.trim_end_matches('/'), call.path);
    let mut request = client(call.api)?
        .request(call.method.clone(), &url)
        .bearer_auth(key);
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    // The error's text names the address, never the key.
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{url}: the answer broke off: {e}"))?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            json!({"error_message": String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()})
        })
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_time_or_a_span_from_now() {
        let now: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        let at = parse_until("2026-03-02T18:00:00Z")
            .unwrap()
            .at(now)
            .unwrap();
        assert_eq!(at.to_string(), "2026-03-02T18:00:00Z");
        let later = parse_until("30m").unwrap().at(now).unwrap();
        assert_eq!(later.to_string(), "2026-03-02T10:30:00Z");
        let day = parse_until("1d").unwrap().at(now).unwrap();
        assert_eq!(day.to_string(), "2026-03-03T10:00:00Z");
        let e = parse_until("tomorrow").unwrap_err();
        assert!(e.contains("neither an RFC 3339 time"), "{e}");
        assert!(parse_until("-5m").is_err());
    }

    #[test]
    fn a_name_is_one_path_segment() {
        assert_eq!(segment("win-2025_a.b"), "win-2025_a.b");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
