//! ARM's request budgets, read from its answers: the subscription-wide
//! `x-ms-ratelimit-remaining-subscription-*` counts and the resource provider's
//! `x-ms-ratelimit-remaining-resource` policies (Compute:
//! `Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199`), kept per method and
//! resource type so that a used-up `PutVM` budget holds back VM PUTs, not reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// One policy of `x-ms-ratelimit-remaining-resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Its name, e.g. `Microsoft.Compute/PutVM3Min`.
    pub(crate) name: String,
    /// Its (sliding) window, from the name: `3Min` → 3 minutes.
    pub(crate) window: Duration,
    /// Calls left in the window.
    pub(crate) remaining: i64,
}

/// Reads `x-ms-ratelimit-remaining-resource` (`name;count` pairs separated by commas); pairs
/// that do not parse are skipped.
pub(crate) fn policies(value: &str) -> Vec<Policy> {
    value
        .split(',')
        .filter_map(|pair| {
            let (name, count) = pair.trim().split_once(';')?;
            Some(Policy {
                name: name.trim().to_owned(),
                window: window_of(name.trim()),
                remaining: count.trim().parse().ok()?,
            })
        })
        .collect()
}

/// The window named at the end of a policy name (`PutVM30Min` → 30 min, `…1Sec`, `…1Hour`);
/// one minute when the name does not say.
fn window_of(name: &str) -> Duration {
    let name = name.rsplit('/').next().unwrap_or(name);
    let (number_end, unit) = if let Some(n) = name.strip_suffix("Min") {
        (n, 60)
    } else if let Some(n) = name.strip_suffix("Hour") {
        (n, 3600)
    } else if let Some(n) = name.strip_suffix("Sec") {
        (n, 1)
    } else {
        return Duration::from_secs(60);
    };
    let digits: String = number_end
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Duration::from_secs(n * unit),
        _ => Duration::from_secs(60),
    }
}

/// The method and resource type (`PUT microsoft.compute/virtualmachines`) a budget is kept for:
/// the last `providers/{namespace}/{type}` of the path.
pub(crate) fn key(method: &Method, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let lower = path.to_ascii_lowercase();
    let kind = lower
        .rsplit_once("/providers/")
        .map(|(_, rest)| {
            let mut parts = rest.split('/');
            format!(
                "{}/{}",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!("{method} {kind}")
}

/// What a call must do before it is sent.
#[derive(Debug, PartialEq)]
pub(crate) enum Pace {
    /// Go.
    Go,
    /// Wait this long first (the budget is low).
    Wait(Duration),
    /// Do not send: this policy is used up for about this long.
    Refuse(String, Duration),
}

/// Below this many remaining requests, calls are spaced out.
pub(crate) const LOW_REMAINING: i64 = 10;
/// Pause before a call when a budget is nearly used up; shorter when more is left.
pub(crate) const SLOW_DOWN: Duration = Duration::from_secs(2);

/// The budgets seen so far.
#[derive(Debug, Default)]
pub(crate) struct Budgets {
    /// The lowest subscription-wide count of the last answer, if any.
    subscription: Mutex<Option<i64>>,
    /// Per [`key`]: the policies of the last answer to such a call and when it came.
    resource: Mutex<HashMap<String, (Vec<Policy>, Instant)>>,
}

impl Budgets {
    /// Notes the budgets of an answer to a call of `key`.
    pub(crate) fn note(&self, key: &str, headers: &HeaderMap) {
        let lowest = headers
            .iter()
            .filter(|(k, _)| {
                k.as_str()
                    .starts_with("x-ms-ratelimit-remaining-subscription-")
            })
            .filter_map(|(_, v)| v.to_str().ok()?.trim().parse::<i64>().ok())
            .min();
        *self.subscription.lock().expect("budget lock") = lowest;
        let found: Vec<Policy> = headers
            .get_all("x-ms-ratelimit-remaining-resource")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(policies)
            .collect();
        let mut resource = self.resource.lock().expect("budget lock");
        if found.is_empty() {
            resource.remove(key);
        } else {
            resource.insert(key.to_owned(), (found, Instant::now()));
        }
    }

    /// What a call of `key` must do now: refused while one of its policies is used up (until
    /// that policy's window has passed since the answer that said so), slowed down while a
    /// budget is low.
    pub(crate) fn pace(&self, key: &str) -> Pace {
        let now = Instant::now();
        let mut lowest = *self.subscription.lock().expect("budget lock");
        if let Some((policies, seen)) = self.resource.lock().expect("budget lock").get(key) {
            for p in policies {
                let until = *seen + p.window;
                if p.remaining <= 0 && until > now {
                    return Pace::Refuse(p.name.clone(), until - now);
                }
                if until > now {
                    lowest = Some(lowest.map_or(p.remaining, |l| l.min(p.remaining)));
                }
            }
        }
        match lowest {
            Some(left) if (0..LOW_REMAINING).contains(&left) => {
                let share = (LOW_REMAINING - left) as f64 / LOW_REMAINING as f64;
                Pace::Wait(SLOW_DOWN.mul_f64(share))
            }
            _ => Pace::Go,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_compute_policies_and_their_windows() {
        let p = policies("Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199");
        assert_eq!(
            p,
            vec![
                Policy {
                    name: "Microsoft.Compute/PutVM3Min".into(),
                    window: Duration::from_secs(180),
                    remaining: 239
                },
                Policy {
                    name: "Microsoft.Compute/PutVM30Min".into(),
                    window: Duration::from_secs(1800),
                    remaining: 1199
                },
            ]
        );
        assert!(policies("garbage,;x,a;b").is_empty());
        assert_eq!(window_of("Microsoft.Compute/Odd"), Duration::from_secs(60));
    }

    #[test]
    fn budgets_are_kept_per_method_and_resource_type() {
        let vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x";
        assert_eq!(
            key(&Method::PUT, vm),
            "PUT microsoft.compute/virtualmachines"
        );
        assert_eq!(
            key(
                &Method::GET,
                &format!("https://h{vm}/instanceView?api-version=1")
            ),
            "GET microsoft.compute/virtualmachines"
        );
    }

    #[test]
    fn a_low_budget_slows_its_calls_and_a_used_up_one_refuses_them() {
        let budgets = Budgets::default();
        let mut headers = HeaderMap::new();
        let put = "PUT microsoft.compute/virtualmachines";
        headers.insert(
            "x-ms-ratelimit-remaining-resource",
            "Microsoft.Compute/PutVM3Min;3,Microsoft.Compute/PutVM30Min;1100"
                .parse()
                .unwrap(),
        );
        budgets.note(put, &headers);
        assert!(matches!(budgets.pace(put), Pace::Wait(d) if d == SLOW_DOWN.mul_f64(0.7)));
        assert_eq!(
            budgets.pace("GET microsoft.compute/virtualmachines"),
            Pace::Go
        );
        headers.insert(
            "x-ms-ratelimit-remaining-resource",
            "Microsoft.Compute/PutVM3Min;0,Microsoft.Compute/PutVM30Min;1099"
                .parse()
                .unwrap(),
        );
        budgets.note(put, &headers);
        assert!(
            matches!(budgets.pace(put), Pace::Refuse(p, d) if p == "Microsoft.Compute/PutVM3Min" && d <= Duration::from_secs(180))
        );
        budgets.note(put, &HeaderMap::new());
        assert_eq!(budgets.pace(put), Pace::Go);
    }
}
