//! What the VMs of an in-memory cloud used, per offering, and what that costs at the
//! offerings' prices ([`Usage`], [`Cost`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::Offering;

/// VM time of one offering: running (pending, running or stopping VMs) and stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfferingUsage {
    /// Time of VMs that were pending (booting or starting), running or stopping: billed as
    /// running, as EC2 and Azure bill them.
    pub running: Duration,
    /// Time of VMs that were stopped (deallocated): billed for their disks only.
    pub stopped: Duration,
}

/// VM time of an in-memory cloud since it was made, per offering index (see
/// [`VmProviderConfig::offerings`](crate::config::VmProviderConfig::offerings)), on tokio's
/// clock. Destroyed VMs count until their destroy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Per offering index; offerings no VM ever used are left out.
    pub offerings: BTreeMap<u32, OfferingUsage>,
}

/// What VM time costs at the offerings' prices (per hour, in the prices' currency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Running time × `price_per_hour`.
    pub running: f64,
    /// Stopped time × `stopped_price_per_hour`.
    pub stopped: f64,
}

impl Cost {
    /// Running and stopped together.
    pub fn total(&self) -> f64 {
        self.running + self.stopped
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;

    fn add(self, other: Cost) -> Cost {
        Cost {
            running: self.running + other.running,
            stopped: self.stopped + other.stopped,
        }
    }
}

/// Hours in `d`.
fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

/// The cost of `running` and `stopped` time at `offering`'s prices: `None` when time of a kind
/// was used whose price the offering does not have (an unpriced offering costs nothing known,
/// not 0).
pub(crate) fn priced(
    offering: Option<&Offering>,
    running: Duration,
    stopped: Duration,
) -> Option<Cost> {
    let price = |d: Duration, p: Option<Option<f64>>| {
        if d.is_zero() {
            Some(0.0)
        } else {
            p.flatten().map(|p| hours(d) * p)
        }
    };
    Some(Cost {
        running: price(running, offering.map(|o| o.price_per_hour))?,
        stopped: price(stopped, offering.map(|o| o.stopped_price_per_hour))?,
    })
}

impl Usage {
    /// Running time over every offering.
    pub fn running(&self) -> Duration {
        self.offerings.values().map(|u| u.running).sum()
    }

    /// Stopped time over every offering.
    pub fn stopped(&self) -> Duration {
        self.offerings.values().map(|u| u.stopped).sum()
    }

    /// The cost at `offerings`' prices (each usage at the offering of its index). `None` when
    /// any time was used whose price is unknown: running time of an offering without
    /// `price_per_hour`, stopped time of one without `stopped_price_per_hour`, or time of an
    /// index `offerings` does not have.
    pub fn cost(&self, offerings: &[Offering]) -> Option<Cost> {
        self.offerings
            .iter()
            .try_fold(Cost::default(), |sum, (i, u)| {
                let o = offerings.iter().find(|o| o.index == *i);
                Some(sum + priced(o, u.running, u.stopped)?)
            })
    }

    pub(crate) fn add(&mut self, offering: u32, running: Duration, stopped: Duration) {
        let u = self.offerings.entry(offering).or_default();
        u.running += running;
        u.stopped += stopped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offering(index: u32, run: Option<f64>, stop: Option<f64>) -> Offering {
        Offering {
            index,
            label: format!("o{index}"),
            price_per_hour: run,
            stopped_price_per_hour: stop,
        }
    }

    #[test]
    fn cost_is_time_times_price_per_offering_and_unknown_without_a_price() {
        let mut u = Usage::default();
        u.add(0, Duration::from_secs(3600), Duration::from_secs(7200));
        u.add(1, Duration::from_secs(1800), Duration::ZERO);
        let priced = [
            offering(0, Some(1.0), Some(0.1)),
            offering(1, Some(2.0), None),
        ];
        let c = u.cost(&priced).unwrap();
        assert!((c.running - 2.0).abs() < 1e-9, "{c:?}");
        assert!((c.stopped - 0.2).abs() < 1e-9, "{c:?}");
        assert!((c.total() - 2.2).abs() < 1e-9);
        assert_eq!(u.running(), Duration::from_secs(5400));
        assert_eq!(u.stopped(), Duration::from_secs(7200));
        // Offering 1 has stopped time now, and no stopped price.
        u.add(1, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(u.cost(&priced), None);
        // An offering the prices do not list.
        let mut other = Usage::default();
        other.add(5, Duration::from_secs(1), Duration::ZERO);
        assert_eq!(other.cost(&priced), None);
        assert_eq!(Usage::default().cost(&[]), Some(Cost::default()));
    }
}
