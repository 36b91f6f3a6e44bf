//! Configuration changes in a simulation *(ours)*: a configuration applied at a moment of the
//! run as a reload would apply it ([`Autoscaler::reconfiguration`]), and what each change did
//! ([`ChangeMetrics`]).
//!
//! A change is checked before the run: its time lies inside the run, no two changes share an
//! instant, and its configuration is valid and within the simulator's limits. At its moment
//! the simulator reloads the controller with it, bringing a provider (the same in-memory cloud,
//! serving the new stand-in) for every VM provider config whose stand-in changed and a
//! directory for every LDAP config that is new or changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::run::memory_stand_in;
use crate::config::{Config, MemoryVmConfig, STEERING_PROVIDER_FIELDS, VmProviderConfig};
use crate::controller::{Autoscaler, Reloaded};
use crate::memory::{MemoryCloud, MemoryDirectory};

/// A configuration applied at a moment of a simulation, as a reload would apply it.
///
/// # Examples
///
/// ```
/// use kasm_scale_core::sim::{ConfigChange, SimOptions, default_scenario, parse_change_time};
///
/// let (config, _) = default_scenario(1);
/// let mut patched = config.clone();
/// // … change the image (a memory provider's startup script) in `patched` …
/// let options = SimOptions::default();
/// let change = ConfigChange {
///     at: parse_change_time("1d10h", options.start).unwrap(),
///     config: patched,
///     label: "new image".into(),
/// };
/// assert_eq!(change.at, jiff::SignedDuration::from_hours(34));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigChange {
    /// When, from the start of the simulation.
    pub at: SignedDuration,
    /// The configuration in force from then on.
    pub config: Config,
    /// How reports name it (its file name, say).
    pub label: String,
}

/// What one configuration change did, from its moment until the next change (or the end).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeMetrics {
    /// Its label ([`ConfigChange::label`]).
    pub label: String,
    /// When it applied (wall clock).
    pub at: Timestamp,
    /// When it applied, in seconds from the start.
    pub at_s: f64,
    /// What the reload changed: among others the configs whose generation changed
    /// (`new_generations`), whose servers the rollout replaces.
    pub reload: Reloaded,
    /// Servers of those configs built from an older generation when the change applied.
    pub outdated_at_change: u64,
    /// When the last of them went (wall clock); `None` when some were left at the end of the
    /// run. At the change itself when there were none.
    pub last_outdated_gone_at: Option<Timestamp>,
    /// The same, in seconds after the change.
    pub last_outdated_gone_after_s: Option<f64>,
    /// Servers built from the change until the next one (or the end), per auto-scale config
    /// and generation.
    pub built: Vec<GenerationBuilt>,
    /// Of those, servers built from a generation that was not their config's current one when
    /// they were made (a rollout must build none).
    pub built_outdated: u64,
    /// Minutes of its rollout, from the change until the last server it outdated went (or,
    /// when some are left, until the next change or the end), in which some pool had fewer
    /// free slots than in the same run without any change (the baseline) and fewer than its
    /// minimum in force in both runs (the lower of the two; over its enabled auto-scale
    /// configs, schedules included). A pool's free slots: those of its ready servers that can
    /// take a session (single-use servers once used have none), read at every whole minute
    /// from the start. The target is 0.
    pub minutes_below_baseline: u64,
    /// The same minutes after its rollout, until the next change or the end. The two runs
    /// have diverged by then (other servers, other random draws): these minutes measure what
    /// the new configuration does, not the rollout.
    pub minutes_below_baseline_after: u64,
    /// Sessions the controller ended in the same stretch: seated sessions whose server went
    /// before the trace ended them, destroyed or lost with it (a rollout must end none).
    pub sessions_ended_by_us: u64,
    /// Session requests refused in the same stretch because their pool was gone (a change
    /// that removes a pool refuses its new requests).
    pub requests_refused: u64,
}

/// Servers built of one generation of one auto-scale config ([`ChangeMetrics::built`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationBuilt {
    /// `autoscale_config_name`.
    pub config: String,
    /// The generation (16 hex digits), `None` when unknown.
    pub generation: Option<String>,
    /// Whether it is the config's generation at the end of the stretch.
    pub current: bool,
    /// Servers built.
    pub servers: u64,
}

/// When a change applies: an RFC 3339 time (at or after `start`), or an offset from the start
/// in the simulator's duration syntax (`30h`, `90m`, `1d6h`, see [`super::parse_duration`]).
///
/// # Examples
///
/// ```
/// use jiff::SignedDuration;
/// use kasm_scale_core::sim::{SimOptions, parse_change_time};
///
/// let start = SimOptions::default().start; // Monday 2026-11-30 00:00 UTC
/// assert_eq!(parse_change_time("2026-12-01T10:00:00Z", start), Ok(SignedDuration::from_hours(34)));
/// assert_eq!(parse_change_time("1d10h", start), Ok(SignedDuration::from_hours(34)));
/// assert!(parse_change_time("2026-11-29T10:00:00Z", start).is_err());
/// ```
pub fn parse_change_time(text: &str, start: Timestamp) -> Result<SignedDuration, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        if t < start {
            return Err(format!(
                "`{text}` is before the start of the simulation ({start})"
            ));
        }
        return Ok(t.duration_since(start));
    }
    // A date without an offset (or a mistyped one) reads better as that than as a bad unit.
    if text.contains('T') && text.contains(':') {
        return Err(format!(
            "`{text}` is not an RFC 3339 time (e.g. 2026-12-01T10:00:00Z) nor an offset such as 30h"
        ));
    }
    super::parse_duration(text)
        .map_err(|e| format!("{e} (or give an RFC 3339 time such as 2026-12-01T10:00:00Z)"))
}

/// Why the changes cannot be simulated (a time outside the run, two at one instant, an invalid
/// or too large configuration), if they cannot; `end` is when the run ends.
pub(crate) fn problem(changes: &[ConfigChange], end: SignedDuration) -> Option<String> {
    for (i, c) in changes.iter().enumerate() {
        let name = || format!("change {} ({}) at {:#}", i + 1, c.label, c.at);
        if c.at.is_negative() || c.at >= end {
            return Some(format!(
                "{}: outside the run, which lasts {end:#}: a change must come before its end",
                name()
            ));
        }
        if let Some((j, other)) = changes[..i].iter().enumerate().find(|(_, o)| o.at == c.at) {
            return Some(format!(
                "{} and change {} ({}) apply at the same instant: give each its own time",
                name(),
                j + 1,
                other.label
            ));
        }
        if let Err(e) = crate::config::validate(&c.config) {
            return Some(format!("{}: {e}", name()));
        }
        let standby = super::capacity::standby_servers(&c.config);
        if standby > super::limits::MAX_SIM_SERVERS {
            return Some(format!(
                "{}: its minimums keep {standby} servers, more than the simulator holds ({})",
                name(),
                super::limits::MAX_SIM_SERVERS
            ));
        }
    }
    None
}

/// `provider`'s stand-in ([`memory_stand_in`]) carrying a fingerprint of what shapes the
/// original's VMs in its script, so that a change of the image, size, network or script of
/// any provider (AWS and Azure included, which the stand-in replaces) changes the generation
/// of its configs in the simulation as it would in the cloud, and nothing else does.
pub(crate) fn stand_in(provider: &VmProviderConfig) -> MemoryVmConfig {
    let mut m = memory_stand_in(provider);
    m.startup_script = format!("{{checkin_jwt}}\n# image {:016x}\n", shape(provider));
    m
}

/// A fingerprint of the provider fields that shape a VM (as [`Config::generation`] folds
/// them in: every field but the steering ones, the script as delivered and its variables).
fn shape(provider: &VmProviderConfig) -> u64 {
    let mut fields = match serde_json::to_value(provider) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    fields.retain(|k, _| !STEERING_PROVIDER_FIELDS.contains(&k.as_str()));
    fields.insert("kind".into(), provider.kind().into());
    fields.insert(
        "script".into(),
        provider.script_text().unwrap_or_default().into(),
    );
    let extras: BTreeMap<String, String> = provider
        .script_extras()
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_owned()))
        .collect();
    fields.insert(
        "script_variables".into(),
        serde_json::to_value(extras).unwrap_or_default(),
    );
    // serde_json's map keeps its keys sorted: the text is the same for the same fields.
    let text = serde_json::Value::Object(fields).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// `config` with every VM provider replaced by its stand-in.
pub(crate) fn with_stand_ins(config: &Config) -> Config {
    let mut config = config.clone();
    for p in &mut config.vm_providers {
        *p = VmProviderConfig::Memory(stand_in(p));
    }
    config
}

/// The in-memory clouds of a simulation: one per VM provider config named by the
/// configuration or any change, made before the run (so that the figures per provider know
/// them all), each with the stand-in it serves now and whether the controller has it.
pub(crate) struct Clouds {
    /// Name and cloud, in the order of first mention.
    pub list: Vec<(String, Arc<MemoryCloud>)>,
    serving: Vec<MemoryVmConfig>,
    in_use: Vec<bool>,
}

impl Clouds {
    /// Clouds for `config` (its providers stand-ins already) and every provider the changes
    /// bring, seeded `seed`, `seed + 1`, … in order of first mention.
    pub(crate) fn new(config: &Config, changes: &[Config], seed: u64) -> Self {
        let mut clouds = Clouds {
            list: Vec::new(),
            serving: Vec::new(),
            in_use: Vec::new(),
        };
        let first = config.vm_providers.iter().map(|p| (p, true));
        let later = changes
            .iter()
            .flat_map(|c| &c.vm_providers)
            .map(|p| (p, false));
        for (p, in_use) in first.chain(later) {
            let VmProviderConfig::Memory(m) = p else {
                continue;
            };
            if clouds.list.iter().any(|(n, _)| n == &m.name) {
                continue;
            }
            let i = clouds.list.len() as u64;
            let cloud = Arc::new(MemoryCloud::new(m.clone(), seed.wrapping_add(i)));
            clouds.list.push((m.name.clone(), cloud));
            clouds.serving.push(m.clone());
            clouds.in_use.push(in_use);
        }
        clouds
    }

    /// The clouds the controller starts with.
    pub(crate) fn initial(&self) -> impl Iterator<Item = &Arc<MemoryCloud>> {
        self.list
            .iter()
            .zip(&self.in_use)
            .filter(|(_, used)| **used)
            .map(|((_, c), _)| c)
    }
}

/// Applies `next` (its providers stand-ins already) to `scaler` as a reload: a provider for
/// every VM provider config that is new to the controller or whose stand-in changed, a
/// directory for every LDAP config that is new or changed (`seed` seeds new directories).
/// Returns what changed, or the controller's refusal.
pub(crate) async fn reload(
    scaler: &Autoscaler,
    clouds: &mut Clouds,
    before: &Config,
    next: &Config,
    seed: u64,
) -> Result<Reloaded, crate::controller::ControllerError> {
    let mut reload = scaler.reconfiguration(next.clone());
    for p in &next.vm_providers {
        let VmProviderConfig::Memory(m) = p else {
            continue;
        };
        let Some(i) = clouds.list.iter().position(|(n, _)| n == &m.name) else {
            continue;
        };
        if clouds.in_use[i] && &clouds.serving[i] == m {
            continue;
        }
        let cloud = Arc::new(clouds.list[i].1.with_config(m.clone()));
        clouds.list[i].1 = cloud.clone();
        clouds.serving[i] = m.clone();
        clouds.in_use[i] = true;
        reload = reload.provider(cloud);
    }
    for (i, l) in next.ldap_configs.iter().enumerate() {
        if before.ldap_configs.iter().any(|b| b == l) {
            continue;
        }
        reload = reload.directory(Arc::new(MemoryDirectory::new(
            l.name.clone(),
            l.domain().unwrap_or_default(),
            seed.wrapping_add(200 + i as u64),
        )));
    }
    reload.apply().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};

    fn start() -> Timestamp {
        "2026-11-30T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn change_times_read_as_times_or_offsets() {
        assert_eq!(
            parse_change_time("30h", start()),
            Ok(SignedDuration::from_hours(30))
        );
        assert_eq!(
            parse_change_time("2026-12-01T10:00:00+01:00", start()),
            Ok(SignedDuration::from_hours(33))
        );
        assert_eq!(
            parse_change_time("2026-11-29T23:00:00Z", start()).unwrap_err(),
            "`2026-11-29T23:00:00Z` is before the start of the simulation (2026-11-30T00:00:00Z)"
        );
        assert_eq!(
            parse_change_time("2026-12-01T10:00", start()).unwrap_err(),
            "`2026-12-01T10:00` is not an RFC 3339 time (e.g. 2026-12-01T10:00:00Z) nor an offset such as 30h"
        );
        assert!(
            parse_change_time("soon", start())
                .unwrap_err()
                .ends_with("(or give an RFC 3339 time such as 2026-12-01T10:00:00Z)")
        );
    }

    #[test]
    fn the_stand_in_changes_with_the_image_only() {
        let config = load_str(super::super::DEFAULT_CONFIG, Format::Toml)
            .unwrap()
            .config;
        let provider = &config.vm_providers[0];
        let mut image = provider.clone();
        let mut steering = provider.clone();
        if let (VmProviderConfig::Memory(i), VmProviderConfig::Memory(s)) =
            (&mut image, &mut steering)
        {
            i.startup_script = "echo new image; {checkin_jwt}".to_owned();
            s.max_instances += 5;
            s.boot_latency = crate::config::Distribution::Fixed(10.0);
        }
        assert_ne!(
            stand_in(provider).startup_script,
            stand_in(&image).startup_script
        );
        assert_eq!(
            stand_in(provider).startup_script,
            stand_in(&steering).startup_script
        );
        let script = stand_in(provider).startup_script;
        assert!(script.starts_with("{checkin_jwt}\n# image "));
        // The token is found in the rendered script: the fingerprint holds no `eyJ`.
        assert!(!script.contains("eyJ"));
    }
}
