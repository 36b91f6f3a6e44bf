//! [`WarmPool`] *(ours)*: an auto-scale config's tier of stopped servers, built, checked in
//! (and joined), then stopped, so that a server is ready in the minute or two a start takes
//! instead of the ten to fifteen a Windows build takes.

use serde::{Deserialize, Serialize};

/// The default `max_age` of a stopped server: 7 days after its build it is rebuilt (its
/// tokens, patches and agent registrations go stale while it is stopped).
pub const DEFAULT_WARM_MAX_AGE: u64 = 7 * 86_400;

/// A config's warm tier (`warm_pool = { min_stopped = 2, max_stopped = 10 }`).
///
/// The tier holds between `min_stopped` and `max_stopped` stopped servers of the config's
/// current generation (they count against `max_instances`). When free slots are needed a
/// stopped server is started first, and a new one is built only when none is left; scale-in
/// stops an idle, never-used or reusable server instead of destroying it while the tier is
/// below `max_stopped`. A started server takes sessions only once it proved it is up again
/// ([`Readiness`]). A stopped server `max_age` seconds after its build, or of an older
/// generation, is destroyed and replaced, never started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmPool {
    /// Stopped servers to keep at least (built ahead for the tier when fewer). Default 0.
    #[serde(default)]
    pub min_stopped: u32,
    /// Stopped servers to keep at most; above it the oldest are destroyed.
    pub max_stopped: u32,
    /// Seconds after its build a stopped server is rebuilt, 3600 to 31622400. Default 604800
    /// (7 days).
    #[serde(
        default = "default_max_age",
        deserialize_with = "super::bounds::warm_age",
        skip_serializing_if = "is_default_max_age"
    )]
    pub max_age: u64,
    /// How a started server proves it is up: `checkin` (its guest checks in again at boot; the
    /// default where the config requires check-in) or `tcp` (a TCP connect to its connection
    /// port; the default otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
    /// Hibernate instead of shutting down (AWS, with `aws_ec2_hibernation` on the VM provider
    /// config). Default false.
    #[serde(default, skip_serializing_if = "super::fields::is_false")]
    pub hibernate: bool,
}

/// How a warm server that was started proves it is up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Its guest checks in again (the built-in scripts install a check-in at every boot).
    Checkin,
    /// A TCP connection to its connection port succeeds.
    Tcp,
}

fn default_max_age() -> u64 {
    DEFAULT_WARM_MAX_AGE
}

fn is_default_max_age(v: &u64) -> bool {
    *v == DEFAULT_WARM_MAX_AGE
}

impl super::AutoScaleConfig {
    /// How a started warm server of this config proves it is up: the warm tier's `readiness`,
    /// or check-in where the config requires it and a TCP probe otherwise. `None` without a
    /// warm tier.
    pub fn warm_readiness(&self) -> Option<Readiness> {
        let warm = self.warm_pool.as_ref()?;
        Some(warm.readiness.unwrap_or(if self.requires_checkin() {
            Readiness::Checkin
        } else {
            Readiness::Tcp
        }))
    }
}

impl super::AutoScaleConfig {
    /// What is wrong with its warm tier, as (field, reason) pairs: `min_stopped` at most
    /// `max_stopped`, `max_stopped` at least 1 and within the provider's `max_instances`, a
    /// `tcp` readiness needs a connection port, `checkin` readiness needs check-in, and
    /// `hibernate` needs an AWS provider launched with hibernation.
    pub(crate) fn warm_pool_problems(
        &self,
        provider: Option<&super::VmProviderConfig>,
    ) -> Vec<(String, String)> {
        let Some(w) = &self.warm_pool else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut error = |field: &str, message: String| {
            out.push((format!("warm_pool.{field}"), message));
        };
        if w.max_stopped == 0 {
            error("max_stopped", "must be at least 1".into());
        }
        if w.min_stopped > w.max_stopped {
            error(
                "min_stopped",
                format!(
                    "{} is more than max_stopped ({})",
                    w.min_stopped, w.max_stopped
                ),
            );
        }
        if let Some(m) = super::bounds::WARM_AGE.check(w.max_age as f64) {
            error("max_age", m);
        }
        if let Some(p) = provider
            && w.max_stopped > p.max_instances()
        {
            error(
                "max_stopped",
                format!(
                    "{} is more than the max_instances ({}) of VM provider config `{}`: \
                     stopped servers count against it",
                    w.max_stopped,
                    p.max_instances(),
                    p.name()
                ),
            );
        }
        match self.warm_readiness() {
            Some(Readiness::Tcp) if self.effective_port().is_none() => error(
                "readiness",
                format!(
                    "`tcp` needs a port to connect to: set connection_port (connection_type {} \
                     has no default port)",
                    self.connection_type.as_str()
                ),
            ),
            Some(Readiness::Checkin) if !self.requires_checkin() => error(
                "readiness",
                "`checkin` needs servers that check in: set require_checkin (or use `tcp`)".into(),
            ),
            _ => {}
        }
        if w.hibernate {
            match provider {
                Some(super::VmProviderConfig::Aws(a)) if a.aws_ec2_hibernation => {}
                Some(super::VmProviderConfig::Aws(_)) => error(
                    "hibernate",
                    "needs aws_ec2_hibernation = true on the VM provider config (EC2 hibernates \
                     only instances launched with hibernation configured)"
                        .into(),
                ),
                Some(p) => error(
                    "hibernate",
                    format!(
                        "is supported on AWS only; VM provider config `{}` is {}",
                        p.name(),
                        p.kind()
                    ),
                ),
                None => {}
            }
        }
        out
    }
}
