//! EC2's instance lifecycle rules that moto does not keep (moto starts and stops a terminated
//! instance again, and changes the type of a running one), kept by the strict test proxy in a
//! table of its own.
//!
//! From the EC2 API reference (`StartInstances`, `StopInstances`, and "Instance lifecycle"):
//! a terminated instance cannot be started or stopped; both fail with
//! `400 IncorrectInstanceState` ("The instance '…' is not in a state from which it can be
//! started." / "… stopped."). A terminated instance stays visible to `DescribeInstances` for
//! about an hour, as `terminated`.
//!
//! From `ModifyInstanceAttribute` and "Change the instance type": "the instance must be in the
//! stopped state"; a change of `InstanceType` of an instance that is not fails with
//! `400 IncorrectInstanceState` ("The instance '…' is not in the 'stopped' state."). The proxy
//! knows an instance stopped when a `StopInstances` of it succeeded through it, and running
//! again once a `StartInstances` did.
//!
//! Nothing here comes from the code under test.

use std::collections::HashSet;
use std::sync::Mutex;

/// The documented code of an action on an instance in a state that does not allow it.
pub const INCORRECT_STATE: &str = "IncorrectInstanceState";

/// Instances terminated, and stopped, through the proxy, per Region.
#[derive(Debug, Default)]
pub struct Lifecycle {
    ids: Mutex<HashSet<(String, String)>>,
    stopped: Mutex<HashSet<(String, String)>>,
}

impl Lifecycle {
    /// Remembers what a request of `action` on `ids` that succeeded did to them.
    pub fn record(&self, region: &str, action: &str, ids: &[String]) {
        let keys = ids.iter().map(|id| (region.to_owned(), id.clone()));
        match action {
            "TerminateInstances" => {
                self.ids.lock().unwrap().extend(keys.clone());
                let mut stopped = self.stopped.lock().unwrap();
                keys.for_each(|k| {
                    stopped.remove(&k);
                });
            }
            "StopInstances" => self.stopped.lock().unwrap().extend(keys),
            "StartInstances" => {
                let mut stopped = self.stopped.lock().unwrap();
                keys.for_each(|k| {
                    stopped.remove(&k);
                });
            }
            _ => {}
        }
    }

    /// EC2's refusal of `action` (`StopInstances` or `StartInstances`) on `ids`, when one of
    /// them is terminated, or of a `ModifyInstanceAttribute` of `InstanceType` (in `body`) of
    /// an instance that is not stopped: `(code, message)`.
    pub fn refuse(
        &self,
        region: &str,
        action: &str,
        body: &str,
        ids: &[String],
    ) -> Option<(&'static str, String)> {
        if action == "ModifyInstanceAttribute" && body.contains("InstanceType.Value=") {
            let stopped = self.stopped.lock().unwrap();
            return ids
                .iter()
                .find(|id| !stopped.contains(&(region.to_owned(), (*id).clone())))
                .map(|id| {
                    (
                        INCORRECT_STATE,
                        format!("The instance '{id}' is not in the 'stopped' state."),
                    )
                });
        }
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
