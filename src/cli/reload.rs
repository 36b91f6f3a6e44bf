//! `kasm-scale serve`'s configuration reload (SIGHUP, `POST /api/v1/reload`): the file is read
//! and checked again, the backends that are new or changed are built (an in-memory cloud stays
//! the same cloud, its VMs kept), and the controller puts it in force, or every problem is
//! returned and the running configuration stays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use kasm_scale_core::config::Severity;
use kasm_scale_core::controller::{Autoscaler, Reloaded};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::{ConfigError, load_file};
use kasm_scale_http::ReloadRefused;

/// What a reload reads again and builds from.
pub(super) struct ConfigReload {
    /// The configuration file.
    pub path: PathBuf,
    /// Where the service listens (demo keys are refused off loopback).
    pub listen: SocketAddr,
    /// `--owner-id`.
    pub owner_id: Option<String>,
    /// `--guest-scripts`.
    pub guest_scripts: Option<PathBuf>,
    /// The running controller.
    pub scaler: Autoscaler,
    /// The in-memory clouds' handles, by VM provider config name.
    pub memory_clouds: tokio::sync::Mutex<BTreeMap<String, MemoryCloud>>,
}

impl ConfigReload {
    /// Reads the file again and puts it in force; every problem otherwise.
    pub async fn run(&self) -> Result<Reloaded, ReloadRefused> {
        let file = self.path.display().to_string();
        let outcome = self.reload(&file).await;
        match &outcome {
            Ok(changes) => tracing::info!(file, ?changes, "configuration file reloaded"),
            Err(refused) => tracing::error!(
                file,
                problems = ?refused.problems,
                "configuration file refused: the running configuration stays"
            ),
        }
        outcome
    }

    async fn reload(&self, file: &str) -> Result<Reloaded, ReloadRefused> {
        // Refusals before the controller's own checks are told as its refusals are.
        let refuse = |problems: Vec<String>| {
            self.scaler.reload_refused(problems.clone());
            ReloadRefused { problems }
        };
        let loaded = load_file(&self.path).map_err(|e| match e {
            ConfigError::Invalid { problems } => refuse(
                problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| format!("{file}: {p}"))
                    .collect(),
            ),
            other => refuse(vec![other.to_string()]),
        })?;
        for warning in &loaded.warnings {
            tracing::warn!(file, %warning, "configuration warning");
        }
        let config = loaded.config;
        super::serve::check_deployment(&config, self.listen, self.owner_id.as_ref())
            .map_err(|problem| refuse(vec![problem]))?;
        let rebuilt = {
            let mut clouds = self.memory_clouds.lock().await;
            kasm_scale::backends::rebuild(&self.scaler.config(), &config, &mut clouds)
                .await
                .map_err(|problems| refuse(problems.iter().map(ToString::to_string).collect()))?
        };
        let mut providers = rebuilt.providers;
        if let Some(dir) = &self.guest_scripts {
            super::serve::scripts_to_disk(&mut providers, &config, dir);
        }
        let mut reload = self.scaler.reconfiguration(config);
        for provider in providers {
            reload = reload.provider(provider);
        }
        for directory in rebuilt.directories {
            reload = reload.directory(directory);
        }
        reload.apply().await.map_err(|e| ReloadRefused {
            problems: e.problems(),
        })
    }
}
