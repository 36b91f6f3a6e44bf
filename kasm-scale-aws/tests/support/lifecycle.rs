//! EC2's instance lifecycle rules for `StopInstances` and `StartInstances` that moto does not
//! keep (moto starts and stops a terminated instance again), kept by the strict test proxy in a
//! table of its own.
//!
//! From the EC2 API reference (`StartInstances`, `StopInstances`, and "Instance lifecycle"):
//! a terminated instance cannot be started or stopped; both fail with
//! `400 IncorrectInstanceState` ("The instance '…' is not in a state from which it can be
//! started." / "… stopped."). A terminated instance stays visible to `DescribeInstances` for
//! about an hour, as `terminated`.
//!
//! Nothing here comes from the code under test.

use std::collections::HashSet;
use std::sync::Mutex;

/// The documented code of an action on an instance in a state that does not allow it.
pub const INCORRECT_STATE: &str = "IncorrectInstanceState";

/// Instances terminated through the proxy, per Region.
#[derive(Debug, Default)]
pub struct Terminated {
    ids: Mutex<HashSet<(String, String)>>,
}

impl Terminated {
    /// Remembers the instances of a `TerminateInstances` request that succeeded.
    pub fn record(&self, region: &str, ids: &[String]) {
        let mut set = self.ids.lock().unwrap();
        for id in ids {
            set.insert((region.to_owned(), id.clone()));
        }
    }

    /// EC2's refusal of `action` (`StopInstances` or `StartInstances`) on `ids`, when one of
    /// them is terminated: `(code, message)`.
    pub fn refuse(
        &self,
        region: &str,
        action: &str,
        ids: &[String],
    ) -> Option<(&'static str, String)> {
        let verb = match action {
            "StopInstances" => "stopped",
            "StartInstances" => "started",
            _ => return None,
        };
        let set = self.ids.lock().unwrap();
        ids.iter()
            .find(|id| set.contains(&(region.to_owned(), (*id).clone())))
            .map(|id| {
                (
                    INCORRECT_STATE,
                    format!("The instance '{id}' is not in a state from which it can be {verb}."),
                )
            })
    }
}
