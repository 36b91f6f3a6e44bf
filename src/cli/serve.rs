//! `kasm-scale serve`: the controller as a service — its tick loop, Kasm's guest check-in API
//! and the health probes (see `kasm_scale::http`) — until SIGINT or SIGTERM. SIGHUP and
//! `POST /api/v1/reload` read the configuration file and the TLS certificate again and put
//! them in force without a restart (see `reload.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::traits::{
    BackendError, Capabilities, Leftover, StopMode, Vm, VmProvider, VmSpec,
};
use kasm_scale_core::{ConfigError, load_file};
use kasm_scale_http::{ConnectionLimits, Reloader, ServeOptions, TlsFiles};

/// `kasm-scale serve`'s options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration (TOML, YAML or JSON).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); with `--tls-key`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address that is not loopback (behind a TLS proxy on this host).
    #[arg(long)]
    insecure_http: bool,
    /// Seconds requests in flight and background work get to finish at shutdown.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,
    /// The owner marker put on every VM and AD record (tag `kasm-scale:owner`): a restarted
    /// service adopts what carries it. Keep it stable, and unique per deployment sharing a
    /// cloud account or a directory.
    /// Required with a real cloud (`aws`, `azure`); with the in-memory cloud only it defaults
    /// to `kasm-scale`.
    #[arg(long, value_name = "ID")]
    owner_id: Option<String>,
    /// For demos and tests with `provider = "memory"`: write each VM's rendered startup script
    /// to `DIR/<server_id>.sh` (mode 0600), as its guest would receive it, so it can be run.
    #[arg(long, value_name = "DIR")]
    guest_scripts: Option<PathBuf>,
    /// The most client connections open at once; past it a new connection is closed at once
    /// (lowered to fit the open-file limit, which is raised to its hard limit at start).
    #[arg(long, value_name = "N", default_value_t = ConnectionLimits::default().max_connections,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize))]
    max_connections: usize,
    /// Seconds a client may take to send a request's line and headers.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a connection may go without a byte read or written before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Seconds between ticks (observe, plan, act).
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    tick_interval: u64,
    /// Seconds an adopted server whose sessions are unknown (the saved state was lost) waits
    /// for the broker's report (`POST /api/v1/servers/{id}/sessions`) before it is taken as
    /// empty and used, and scaled in like any idle server.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    unknown_sessions_timeout: u64,
    /// With a `postgres` state store: the address other replicas' callers are sent to while
    /// this one leads (default: this one's scheme and listening address).
    #[arg(long, value_name = "URL")]
    advertise: Option<String>,
}

/// Runs the service. Exit 0 after a clean shutdown; 1 when the configuration is invalid or
/// the service cannot start; 2 when the configuration cannot be read or parsed.
pub fn run(args: Args) -> ExitCode {
    let loaded = match load_file(&args.config) {
        Ok(l) => l,
        Err(ConfigError::Invalid { problems }) => {
            for p in &problems {
                eprintln!("{}: {p}", args.config.display());
            }
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        eprintln!("{}: warning: {warning}", args.config.display());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(loaded.config, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kasm-scale serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// The keys the example configurations publish (`examples/config/`): anyone can read them, so
/// `serve` takes them on loopback only (a demo on this machine).
pub const DEMO_KEYS: [&str; 2] = [
    "demo-only-check-in-key-change-me-0123456789",
    "demo-only-broker-key-change-me-0123456789",
];

/// Refuses what would be unsafe off this machine or across deployments: a published demo key
/// on an address that is not loopback, and a real cloud without an owner id of its own.
pub(super) fn check_deployment(
    config: &Config,
    listen: SocketAddr,
    owner_id: Option<&String>,
) -> Result<String, String> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    if let Some(key) = config.checkin_token.as_ref().and_then(|t| t.key.as_ref()) {
        keys.push(("checkin_token.key", key.expose()));
    }
    for key in config.broker_api.iter().flat_map(|b| &b.keys) {
        keys.push(("broker_api.keys", key.expose()));
    }
    if !listen.ip().is_loopback()
        && let Some((field, _)) = keys.iter().find(|(_, k)| DEMO_KEYS.contains(k))
    {
        return Err(format!(
            "{field} is a demo key published in the example configurations: anyone could use it;              set your own key, or listen on loopback for a demo"
        ));
    }
    let real_cloud = config
        .vm_providers
        .iter()
        .find(|p| !matches!(p, VmProviderConfig::Memory(_)));
    match (owner_id, real_cloud) {
        (Some(id), _) => Ok(id.clone()),
        (None, None) => Ok("kasm-scale".to_owned()),
        (None, Some(p)) => Err(format!(
            "--owner-id is required with a real cloud (vm_providers `{}`): it marks the VMs and AD              records this deployment adopts after a restart, and must be its own (two deployments              sharing one would take each other's servers)",
            p.name()
        )),
    }
}

async fn serve(config: Config, args: Args) -> Result<(), String> {
    // From the start: SIGHUP reloads, it never ends the process.
    let hangups = hangups()?;
    let owner_id = check_deployment(&config, args.listen, args.owner_id.as_ref())?;
    let mut backends = kasm_scale::backends::from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(dir) = &args.guest_scripts {
        scripts_to_disk(&mut backends.providers, &config, dir);
    }
    let builder = Autoscaler::builder(config.clone())
        .owner_id(owner_id)
        .tick_interval(Duration::from_secs(args.tick_interval))
        .unknown_sessions_timeout(Duration::from_secs(args.unknown_sessions_timeout));
    let scaler = backends
        .attach(builder)
        .build()
        .map_err(|e| e.to_string())?;
    let reloader = Reloader::new({
        let reload = Arc::new(super::reload::ConfigReload {
            path: args.config.clone(),
            listen: args.listen,
            owner_id: args.owner_id.clone(),
            guest_scripts: args.guest_scripts.clone(),
            scaler: scaler.clone(),
            memory_clouds: tokio::sync::Mutex::new(std::mem::take(&mut backends.memory_clouds)),
        });
        move || {
            let reload = reload.clone();
            Box::pin(async move { reload.run().await })
        }
    });
    tokio::spawn(on_hangup(hangups, reloader.clone()));
    let options = ServeOptions {
        listen: args.listen,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        insecure_http: args.insecure_http,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        limits: ConnectionLimits {
            max_connections: args.max_connections,
            header_read_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
        },
        reload: Some(reloader),
    };
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let app = kasm_scale_http::router(scaler.clone());
    let advertise = args.advertise.clone();
    let lease = Arc::new(std::sync::Mutex::new(None));
    let served = kasm_scale_http::serve(
        scaler.clone(),
        app,
        options,
        {
            let lease = lease.clone();
            move |addr| {
                // A closed stdout does not stop the service: the line is dropped.
                super::output::Stdout::new().line(format_args!(
                    "kasm-scale serve: listening on {scheme}://{addr}"
                ));
                // A replica takes part in the lease once it can be reached.
                let address = advertise.unwrap_or_else(|| format!("{scheme}://{addr}"));
                *lease.lock().unwrap_or_else(|e| e.into_inner()) =
                    keep_lease(&backends, &scaler, address);
            }
        },
        stop_signal(),
    )
    .await
    .map_err(|e| e.to_string());
    // After the last save: the lease is released, another replica takes over at once.
    let keeper = lease.lock().unwrap_or_else(|e| e.into_inner()).take();
    #[cfg(feature = "postgres")]
    if let Some(keeper) = keeper {
        keeper.shutdown().await;
    }
    #[cfg(not(feature = "postgres"))]
    let _: Option<()> = keeper;
    served
}

/// Takes part in the lease while the service runs, when replicas share the store.
#[cfg(feature = "postgres")]
fn keep_lease(
    backends: &kasm_scale::backends::Backends,
    scaler: &Autoscaler,
    address: String,
) -> Option<kasm_scale_postgres::LeaseKeeper> {
    let keeper = backends.keep_lease(scaler, address)?;
    eprintln!(
        "kasm-scale serve: replica {} takes part in the lease",
        keeper.holder()
    );
    Some(keeper)
}

/// Without PostgreSQL there is no lease to keep.
#[cfg(not(feature = "postgres"))]
fn keep_lease(
    _backends: &kasm_scale::backends::Backends,
    _scaler: &Autoscaler,
    _address: String,
) -> Option<()> {
    None
}

/// Wraps each in-memory cloud of `providers` (in `config`'s order) so that it writes each
/// guest's script to `dir`.
pub(super) fn scripts_to_disk(providers: &mut [Arc<dyn VmProvider>], config: &Config, dir: &Path) {
    for provider in providers.iter_mut() {
        if matches!(
            config.vm_provider(provider.name()),
            Some(VmProviderConfig::Memory(_))
        ) {
            *provider = Arc::new(ScriptsToDisk {
                inner: provider.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
}

/// The SIGHUPs to come (none where there are no signals). Installed at start, so that a
/// SIGHUP never ends the process.
#[cfg(unix)]
fn hangups() -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))
}

#[cfg(not(unix))]
fn hangups() -> Result<(), String> {
    Ok(())
}

/// Reloads on each SIGHUP (the reloader logs what it did or why it refused).
#[cfg(unix)]
async fn on_hangup(mut hangups: tokio::signal::unix::Signal, reloader: Reloader) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration and the TLS certificate");
        let _ = reloader.reload().await;
    }
}

#[cfg(not(unix))]
async fn on_hangup(_hangups: (), _reloader: Reloader) {}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A memory cloud that hands each VM's startup script to a file, as a guest would receive it.
#[derive(Debug)]
struct ScriptsToDisk {
    inner: Arc<dyn VmProvider>,
    dir: PathBuf,
}

impl ScriptsToDisk {
    fn write(&self, spec: &VmSpec) -> Result<(), BackendError> {
        use std::io::Write;
        let path = self.dir.join(format!("{}.sh", spec.owner.server_id));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .and_then(|mut f| f.write_all(spec.startup_script.expose().as_bytes()))
            .map_err(|e| {
                BackendError::InvalidRequest(format!(
                    "cannot write the guest script {}: {e}",
                    path.display()
                ))
            })
    }
}

#[async_trait]
impl VmProvider for ScriptsToDisk {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let vm = self.inner.create(spec).await?;
        self.write(spec)?;
        Ok(vm)
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.inner.destroy(vm_id).await
    }
    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        self.inner.stop(vm_id, mode).await
    }
    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        self.inner.start(vm_id).await
    }
    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        self.inner.resize(vm_id, offering).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.inner.get(vm_id).await
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.inner.list(owner_id).await
    }
    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        self.inner.list_leftovers(owner_id).await
    }
    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        self.inner.remove_leftover(id).await
    }
}
