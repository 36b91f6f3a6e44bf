//! (ours) The meters of a simulation's VM time: each cloud's VMs per offering, running or
//! stopped, at that offering's prices (see [`super::Metrics::cost`]).

use std::sync::Arc;

use super::days::Metered;
use crate::memory::MemoryCloud;

/// Each cloud's offerings' prices, `(running, stopped)` per offering index: the meters its VM
/// time goes on.
pub(crate) struct Prices(Vec<Vec<(Option<f64>, Option<f64>)>>);

impl Prices {
    /// The prices of the configs `clouds` serve now.
    pub(crate) fn of(clouds: &[(String, Arc<MemoryCloud>)]) -> Self {
        Prices(
            clouds
                .iter()
                .map(|(_, c)| {
                    c.offerings()
                        .iter()
                        .map(|o| (o.price_per_hour, o.stopped_price_per_hour))
                        .collect()
                })
                .collect(),
        )
    }

    /// Whether each cloud has a price at all (of any offering, running or stopped).
    pub(crate) fn priced(&self) -> Vec<bool> {
        self.0
            .iter()
            .map(|p| p.iter().any(|(run, stop)| run.is_some() || stop.is_some()))
            .collect()
    }

    /// The VMs of `clouds` in the stretch that ends now, per provider, offering and power,
    /// with their prices (an offering the config no longer has is unpriced).
    pub(crate) fn counts(&self, clouds: &[(String, Arc<MemoryCloud>)]) -> Vec<Metered> {
        let mut out = Vec::new();
        for (provider, (_, cloud)) in clouds.iter().enumerate() {
            for (offering, [running, stopped]) in cloud.power_counts() {
                let price = self
                    .0
                    .get(provider)
                    .and_then(|p| p.get(offering as usize))
                    .copied()
                    .unwrap_or((None, None));
                for (is_stopped, count, price) in
                    [(false, running, price.0), (true, stopped, price.1)]
                {
                    if count > 0 {
                        out.push(Metered {
                            provider,
                            stopped: is_stopped,
                            price,
                            count,
                        });
                    }
                }
            }
        }
        out
    }
}
