//! (ours) Capacity fallback within one VM provider config: a create that the cloud refuses for
//! capacity moves to the config's next offering at once (in the same call, so in the same
//! tick), and the offering that refused is skipped for the config's `capacity_skip_seconds`
//! (Karpenter skips one for 3 minutes). A start of a stopped server that fails for capacity
//! skips its offering too, and moves the stopped VM to the next offering in its placement
//! (another instance type in its subnet, another size in its zone) where its provider can
//! ([`Capabilities::resize_stopped`](crate::traits::Capabilities::resize_stopped)); a stopped
//! server none of whose offerings can be tried is not started until a skip ends (the engine
//! builds on the next offering instead).

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use super::events::ProvisionError;
use super::{Event, Shared};
use crate::config::VmProviderConfig;
use crate::traits::{BackendError, Vm, VmProvider, VmSpec};

/// Offerings short of capacity, by (VM provider config, offering index): until when they are
/// skipped, and the cloud's words.
#[derive(Debug, Default)]
pub(crate) struct Skipped {
    until: Mutex<HashMap<(String, u32), (Timestamp, String)>>,
}

impl Skipped {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), (Timestamp, String)>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether offering `index` of `provider` is skipped at `now`.
    pub(crate) fn is_skipped(&self, provider: &str, index: u32, now: Timestamp) -> bool {
        self.lock()
            .get(&(provider.to_owned(), index))
            .is_some_and(|(until, _)| *until > now)
    }

    /// Skips offering `index` of `provider` from `now` for `skip`.
    pub(crate) fn skip(
        &self,
        provider: &str,
        index: u32,
        now: Timestamp,
        skip: std::time::Duration,
        why: &str,
    ) {
        let until = now + SignedDuration::try_from(skip).unwrap_or(SignedDuration::from_hours(24));
        self.lock()
            .insert((provider.to_owned(), index), (until, why.to_owned()));
    }

    /// The offerings skipped at `now`, as (provider, index, until), sorted (for status and
    /// metrics).
    pub(crate) fn active(&self, now: Timestamp) -> Vec<(String, u32, Timestamp)> {
        let mut out: Vec<(String, u32, Timestamp)> = self
            .lock()
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|((p, i), (until, _))| (p.clone(), *i, *until))
            .collect();
        out.sort();
        out
    }
}

/// The offerings a stopped server now on offering `current` of `config` may be started on at
/// `now`, in the order they are tried: the config's offerings in its order (so a server moved
/// to a dearer size during a shortage goes back to the first one at its next start) that share
/// its placement and are not skipped; only `current` itself when its provider cannot move a
/// stopped VM (`resize`). Empty when every one is skipped. A server on an offering the config
/// no longer has (a reload shortened `alternatives`) is started where it is.
pub(crate) fn start_order(
    skipped: &Skipped,
    config: &VmProviderConfig,
    resize: bool,
    current: u32,
    now: Timestamp,
) -> Vec<u32> {
    let name = config.name();
    let count = config.offerings().len() as u32;
    if current >= count {
        // An offering a reload took away: the VM is started as it is, and moved at its next
        // start once it has an offering of the config again.
        return vec![current];
    }
    (0..count)
        .filter(|&i| i == current || (resize && config.same_placement(current, i)))
        .filter(|&i| !skipped.is_skipped(name, i, now))
        .collect()
}

/// Creates `spec`'s VM on the first offering of `provider_config` that is not skipped, starting
/// with `spec.offering` (the one a resumed create tried first, so that its idempotent repeat
/// finds the first attempt's VM); every offering that answers "insufficient capacity" is
/// skipped and the next one is tried at once. Calls `chose(index)` before each attempt (the
/// server's record keeps the offering it is being made on). When every offering is skipped or
/// short, the error is the last capacity error (or one that says so): the config backs off as
/// for any failed create.
pub(crate) async fn create(
    shared: &Shared,
    provider: &dyn VmProvider,
    provider_config: &VmProviderConfig,
    mut spec: VmSpec,
    mut chose: impl FnMut(u32),
) -> Result<(Vm, u32), ProvisionError> {
    let offerings = provider_config.offerings();
    let name = provider_config.name();
    let first = spec.offering.min(offerings.len() as u32 - 1);
    let order = std::iter::once(first).chain((0..offerings.len() as u32).filter(|&i| i != first));
    let mut last: Option<BackendError> = None;
    let mut refused: Vec<&str> = Vec::new();
    for index in order {
        let now = shared.clock.now();
        if shared.state.skipped.is_skipped(name, index, now) {
            continue;
        }
        let label = &offerings[index as usize].label;
        spec.offering = index;
        chose(index);
        match provider.create(&spec).await {
            Ok(vm) => {
                metrics::counter!("kasm_scale_offering_creates_total", "provider" => name.to_owned(), "offering" => label.clone())
                    .increment(1);
                if !refused.is_empty() {
                    let text = format!(
                        "{name}: created {} on offering `{label}` after {} answered \"insufficient capacity\"",
                        spec.owner.server_id,
                        refused.join(", ")
                    );
                    tracing::info!(provider = name, offering = %label, "capacity fallback");
                    shared.events.emit(Event::Note {
                        pool: spec.owner.pool.clone(),
                        text,
                    });
                }
                return Ok((vm, index));
            }
            Err(BackendError::Capacity(why)) => {
                let skip = provider_config.capacity_skip();
                tracing::warn!(provider = name, offering = %label, skip_s = skip.as_secs(), reason = %why, "offering out of capacity: skipped, trying the next one");
                metrics::counter!("kasm_scale_offering_capacity_errors_total", "provider" => name.to_owned(), "offering" => label.clone())
                    .increment(1);
                shared.state.skipped.skip(name, index, now, skip, &why);
                refused.push(label);
                last = Some(BackendError::Capacity(why));
            }
            Err(e) => return Err(ProvisionError::Vm(e)),
        }
    }
    Err(ProvisionError::Vm(last.unwrap_or_else(|| {
        BackendError::Capacity(format!(
            "every offering of `{name}` is skipped after answering \"insufficient capacity\""
        ))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AWS config on `m6i.xlarge` in subnet a, then `m6i.2xlarge` in a, then `m6i.xlarge`
    /// in b.
    fn aws() -> VmProviderConfig {
        let text = r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "aws"
name = "aws"
aws_access_key_id = "AKIAEXAMPLEEXAMPLE00"
aws_secret_access_key = "aws-secret"
aws_region = "eu-central-1"
aws_ec2_ami_id = "ami-0a1b2c3d4e5f67890"
aws_ec2_instance_type = "m6i.xlarge"
aws_ec2_subnet_id = "subnet-0aaaaaaaaaaaaaaaa"
max_instances = 10
alternatives = [
    { aws_ec2_instance_type = "m6i.2xlarge" },
    { aws_ec2_subnet_id = "subnet-0bbbbbbbbbbbbbbbb" },
]
"#;
        crate::load_str(text, crate::Format::Toml)
            .unwrap()
            .config
            .vm_providers
            .remove(0)
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn only_offerings_in_the_same_subnet_share_a_placement() {
        let c = aws();
        assert!(c.same_placement(0, 1), "another type in the same subnet");
        assert!(!c.same_placement(0, 2), "the same type in another subnet");
        assert!(!c.same_placement(1, 2));
        assert!(
            !c.same_placement(0, 3),
            "an offering the config does not have"
        );
    }

    #[test]
    fn a_start_tries_the_first_offering_of_its_placement_that_is_not_skipped() {
        let c = aws();
        let skipped = Skipped::default();
        let now = at("2026-12-07T08:00:00Z");
        // Not skipped: its own placement's offerings, first one first (a server moved to the
        // dearer size goes back to the first).
        assert_eq!(start_order(&skipped, &c, true, 0, now), vec![0, 1]);
        assert_eq!(start_order(&skipped, &c, true, 1, now), vec![0, 1]);
        assert_eq!(start_order(&skipped, &c, true, 2, now), vec![2]);
        // A provider that cannot move a stopped VM starts it only where it is.
        assert_eq!(start_order(&skipped, &c, false, 1, now), vec![1]);
        skipped.skip("aws", 0, now, std::time::Duration::from_secs(180), "short");
        assert_eq!(start_order(&skipped, &c, true, 0, now), vec![1]);
        assert_eq!(start_order(&skipped, &c, false, 0, now), Vec::<u32>::new());
        // Once the skip is over, the first offering is tried again.
        let later = at("2026-12-07T08:03:01Z");
        assert_eq!(start_order(&skipped, &c, true, 1, later), vec![0, 1]);
        // An offering a reload took away: started where it is, never skipped into a loop.
        assert_eq!(start_order(&skipped, &c, true, 7, now), vec![7]);
    }
}
