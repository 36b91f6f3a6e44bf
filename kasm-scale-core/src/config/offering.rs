//! (ours) Offerings: the ordered alternatives of a VM provider config for what a cloud may be
//! short of (AWS instance types and subnets, Azure sizes and zones), and their prices.
//!
//! Offering 0 is the config's own fields; offering `i` (1, 2, …) is `alternatives[i - 1]`, each
//! field it leaves out taken from the config. A create (or a start of a stopped VM) that fails
//! for capacity moves to the next offering at once; the failing one is skipped for
//! `capacity_skip_seconds` (default 180, as Karpenter does).

use serde::{Deserialize, Serialize};

use super::provider::{Outage, VmProviderConfig};

/// How long an offering that answered "insufficient capacity" is skipped by default: 3 minutes.
pub const DEFAULT_CAPACITY_SKIP_SECONDS: u32 = 180;

/// The most alternatives one VM provider config may list.
pub const MAX_ALTERNATIVES: usize = 16;

pub(crate) fn default_capacity_skip() -> u32 {
    DEFAULT_CAPACITY_SKIP_SECONDS
}

pub(crate) fn is_default_capacity_skip(v: &u32) -> bool {
    *v == DEFAULT_CAPACITY_SKIP_SECONDS
}

/// One alternative of an AWS VM provider config: another instance type and/or subnet
/// (availability zone), tried in order when the ones before it are short of capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAlternative {
    /// The instance type; default: the config's `aws_ec2_instance_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_instance_type: Option<String>,
    /// The subnet (and so the availability zone); default: the config's `aws_ec2_subnet_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ec2_subnet_id: Option<String>,
    /// Price of one running VM of this alternative per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Price of one stopped VM (its disks) per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_price_per_hour: Option<f64>,
}

/// One alternative of an Azure VM provider config: another size and/or zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureAlternative {
    /// The VM size; default: the config's `azure_vm_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_vm_size: Option<String>,
    /// The availability zone (`"1"`, `"2"`, `"3"`); default: the config's `azure_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_zone: Option<String>,
    /// Price of one running VM of this alternative per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Price of one deallocated VM (its disks) per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_price_per_hour: Option<f64>,
}

/// One alternative of an in-memory cloud: a simulated offering with its own capacity and
/// outages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryAlternative {
    /// Its name in plans, events and metrics; default `alternative-<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// VMs of this offering the simulated region holds before it answers "insufficient
    /// capacity". Default unlimited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::fields::opt_positive_u32"
    )]
    pub capacity: Option<u32>,
    /// Stretches of time during which this offering is out of capacity (creates and starts
    /// answer "insufficient capacity"). Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<Outage>,
    /// Price of one running VM of this alternative per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Price of one stopped VM per hour; default: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_price_per_hour: Option<f64>,
}

/// One offering of a VM provider config as the controller, the simulator and metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offering {
    /// Its index: 0 for the config's own fields, `i` for `alternatives[i - 1]`.
    pub index: u32,
    /// Its name in plans, events and metrics (`m5.large/subnet-0a1b`, `Standard_D4s_v5/zone-2`,
    /// `primary`).
    pub label: String,
    /// Price of one running VM per hour (`None`: not priced).
    pub price_per_hour: Option<f64>,
    /// Price of one stopped VM per hour (`None`: not priced).
    pub stopped_price_per_hour: Option<f64>,
}

impl VmProviderConfig {
    /// Its offerings in the order they are tried (never empty: offering 0 is the config's own
    /// fields).
    pub fn offerings(&self) -> Vec<Offering> {
        let offering = |index: u32, label: String, run: Option<f64>, stop: Option<f64>| Offering {
            index,
            label,
            price_per_hour: run,
            stopped_price_per_hour: stop,
        };
        match self {
            Self::Aws(c) => {
                let label = |t: &str, s: Option<&str>| match s {
                    Some(s) => format!("{t}/{s}"),
                    None => t.to_owned(),
                };
                let subnet = c.aws_ec2_subnet_id.as_deref();
                let mut out = vec![offering(
                    0,
                    label(&c.aws_ec2_instance_type, subnet),
                    c.price_per_hour,
                    c.stopped_price_per_hour,
                )];
                for (a, i) in c.alternatives.iter().zip(1u32..) {
                    let t = a
                        .aws_ec2_instance_type
                        .as_deref()
                        .unwrap_or(&c.aws_ec2_instance_type);
                    out.push(offering(
                        i,
                        label(t, a.aws_ec2_subnet_id.as_deref().or(subnet)),
                        a.price_per_hour.or(c.price_per_hour),
                        a.stopped_price_per_hour.or(c.stopped_price_per_hour),
                    ));
                }
                out
            }
            Self::Azure(c) => {
                let label = |s: &str, z: Option<&str>| match z {
                    Some(z) => format!("{s}/zone-{z}"),
                    None => s.to_owned(),
                };
                let zone = c.azure_zone.as_deref();
                let mut out = vec![offering(
                    0,
                    label(&c.azure_vm_size, zone),
                    c.price_per_hour,
                    c.stopped_price_per_hour,
                )];
                for (a, i) in c.alternatives.iter().zip(1u32..) {
                    let s = a.azure_vm_size.as_deref().unwrap_or(&c.azure_vm_size);
                    out.push(offering(
                        i,
                        label(s, a.azure_zone.as_deref().or(zone)),
                        a.price_per_hour.or(c.price_per_hour),
                        a.stopped_price_per_hour.or(c.stopped_price_per_hour),
                    ));
                }
                out
            }
            Self::Memory(c) => {
                let mut out = vec![offering(
                    0,
                    "primary".into(),
                    c.price_per_hour,
                    c.stopped_price_per_hour,
                )];
                for (a, i) in c.alternatives.iter().zip(1u32..) {
                    out.push(offering(
                        i,
                        a.name.clone().unwrap_or_else(|| format!("alternative-{i}")),
                        a.price_per_hour.or(c.price_per_hour),
                        a.stopped_price_per_hour.or(c.stopped_price_per_hour),
                    ));
                }
                out
            }
        }
    }

    /// (ours) Whether offerings `a` and `b` place a VM in the same spot (AWS: the same subnet,
    /// so the same availability zone; Azure: the same zone; the in-memory cloud: always), so
    /// that a stopped VM of one can be moved to the other
    /// ([`VmProvider::resize`](crate::traits::VmProvider::resize)). `false` for an index the
    /// config does not have.
    pub fn same_placement(&self, a: u32, b: u32) -> bool {
        // Each offering's subnet or zone, `None` where the config names none.
        let places: Vec<Option<&str>> = match self {
            Self::Aws(c) => {
                let own = c.aws_ec2_subnet_id.as_deref();
                std::iter::once(own)
                    .chain(
                        c.alternatives
                            .iter()
                            .map(|x| x.aws_ec2_subnet_id.as_deref().or(own)),
                    )
                    .collect()
            }
            Self::Azure(c) => {
                let own = c.azure_zone.as_deref();
                std::iter::once(own)
                    .chain(
                        c.alternatives
                            .iter()
                            .map(|x| x.azure_zone.as_deref().or(own)),
                    )
                    .collect()
            }
            Self::Memory(c) => vec![None; 1 + c.alternatives.len()],
        };
        matches!(
            (places.get(a as usize), places.get(b as usize)),
            (Some(x), Some(y)) if x == y
        )
    }

    /// How long an offering that answered "insufficient capacity" is skipped.
    pub fn capacity_skip(&self) -> std::time::Duration {
        let s = match self {
            Self::Aws(c) => c.capacity_skip_seconds,
            Self::Azure(c) => c.capacity_skip_seconds,
            Self::Memory(c) => c.capacity_skip_seconds,
        };
        std::time::Duration::from_secs(u64::from(s))
    }
}

impl VmProviderConfig {
    /// What is wrong with its prices, alternatives and `capacity_skip_seconds`, as (field,
    /// reason) pairs (the same checks a config built in code gets).
    pub(crate) fn offering_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut price = |field: String, v: Option<f64>| {
            if let Some(m) = v.and_then(|v| super::bounds::PRICE.check(v)) {
                out.push((field, m));
            }
        };
        let (run, stop, skip, count) = match self {
            Self::Aws(c) => (
                c.price_per_hour,
                c.stopped_price_per_hour,
                c.capacity_skip_seconds,
                c.alternatives.len(),
            ),
            Self::Azure(c) => (
                c.price_per_hour,
                c.stopped_price_per_hour,
                c.capacity_skip_seconds,
                c.alternatives.len(),
            ),
            Self::Memory(c) => (
                c.price_per_hour,
                c.stopped_price_per_hour,
                c.capacity_skip_seconds,
                c.alternatives.len(),
            ),
        };
        price("price_per_hour".into(), run);
        price("stopped_price_per_hour".into(), stop);
        let prices: Vec<(Option<f64>, Option<f64>)> = match self {
            Self::Aws(c) => c
                .alternatives
                .iter()
                .map(|a| (a.price_per_hour, a.stopped_price_per_hour))
                .collect(),
            Self::Azure(c) => c
                .alternatives
                .iter()
                .map(|a| (a.price_per_hour, a.stopped_price_per_hour))
                .collect(),
            Self::Memory(c) => c
                .alternatives
                .iter()
                .map(|a| (a.price_per_hour, a.stopped_price_per_hour))
                .collect(),
        };
        for (i, (run, stop)) in prices.into_iter().enumerate() {
            price(format!("alternatives[{i}].price_per_hour"), run);
            price(format!("alternatives[{i}].stopped_price_per_hour"), stop);
        }
        if let Some(m) = super::bounds::CAPACITY_SKIP.check(f64::from(skip)) {
            out.push(("capacity_skip_seconds".into(), m));
        }
        if count > MAX_ALTERNATIVES {
            out.push((
                "alternatives".into(),
                format!("lists {count} alternatives; at most {MAX_ALTERNATIVES} are allowed"),
            ));
        }
        let offerings = self.offerings();
        for (i, o) in offerings.iter().enumerate().skip(1) {
            if let Some(j) = offerings[..i].iter().position(|e| e.label == o.label) {
                out.push((
                    format!("alternatives[{}]", i - 1),
                    format!(
                        "offers `{}` again (offering {j} already does): an alternative must \
                         change what is tried",
                        o.label
                    ),
                ));
            }
        }
        if let Self::Memory(c) = self {
            for (i, a) in c.alternatives.iter().enumerate() {
                for (k, o) in a.outages.iter().enumerate() {
                    let field = format!("alternatives[{i}].outages[{k}]");
                    for (name, v) in [("start", o.start), ("duration", o.duration)] {
                        if let Some(m) = super::bounds::OUTAGE.check(v) {
                            out.push((format!("{field}.{name}"), m));
                        }
                    }
                    if o.duration == 0.0 {
                        out.push((
                            format!("{field}.duration"),
                            "must be more than 0 seconds, got 0".into(),
                        ));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Format, VmProviderConfig, load_str};

    #[test]
    fn offerings_take_what_an_alternative_leaves_out_from_the_config() {
        let doc = r#"
            [[vm_providers]]
            provider = "aws"
            name = "aws"
            aws_region = "us-east-1"
            aws_ec2_ami_id = "ami-1"
            aws_ec2_instance_type = "m5.large"
            aws_ec2_subnet_id = "subnet-a"
            max_instances = 4
            price_per_hour = 0.2
            stopped_price_per_hour = 0.01
            alternatives = [
                { aws_ec2_instance_type = "m6i.large", price_per_hour = 0.25 },
                { aws_ec2_subnet_id = "subnet-b" },
            ]
        "#;
        let config = load_str(doc, Format::Toml).unwrap().config;
        let p: &VmProviderConfig = &config.vm_providers[0];
        let o = p.offerings();
        let labels: Vec<&str> = o.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "m5.large/subnet-a",
                "m6i.large/subnet-a",
                "m5.large/subnet-b"
            ]
        );
        assert_eq!(o[1].price_per_hour, Some(0.25));
        assert_eq!(o[1].stopped_price_per_hour, Some(0.01));
        assert_eq!(o[2].price_per_hour, Some(0.2));
        assert_eq!(p.capacity_skip().as_secs(), 180);
    }

    #[test]
    fn an_alternative_that_changes_nothing_or_a_negative_price_is_refused() {
        let doc = r#"
            [[vm_providers]]
            provider = "aws"
            name = "aws"
            aws_region = "us-east-1"
            aws_ec2_ami_id = "ami-1"
            aws_ec2_instance_type = "m5.large"
            max_instances = 4
            alternatives = [{ aws_ec2_instance_type = "m5.large" }]
        "#;
        let e = load_str(doc, Format::Toml).unwrap_err().to_string();
        assert!(e.contains("vm_providers[0].alternatives[0]"), "{e}");
        assert!(e.contains("offers `m5.large` again"), "{e}");
        let negative = doc.replace(
            "alternatives = [{ aws_ec2_instance_type = \"m5.large\" }]",
            "price_per_hour = -1",
        );
        let e = load_str(&negative, Format::Toml).unwrap_err().to_string();
        assert!(e.contains("price_per_hour"), "{e}");
        assert!(e.contains("must be between 0 and 1000000"), "{e}");
    }
}
