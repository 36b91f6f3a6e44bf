//! A policy test as you would write one for your own configuration: run the pool through a day
//! of demand in the simulator (the real controller and engine, on virtual time, against
//! in-memory stand-ins of your clouds) and assert the service level your users were promised.
//! Put it in your repository's tests, and a change to the configuration that would make users
//! wait fails CI instead of a Monday morning.
//!
//! `cargo test --example policy_test --features sim` runs the tests below (this example is
//! declared with `test = true`, so a plain `cargo test --features sim` runs them too);
//! `cargo run --example policy_test --features sim` prints the figures they check.

use jiff::SignedDuration;
use kasm_scale::prelude::*;
use kasm_scale::sim::{Metrics, SimOptions, TraceEvent, parse_trace, simulate, workday};

/// The configuration under test: a support desk's pool on one cloud. In your repository this
/// is your real file (`load_file("deploy/kasm-scale.toml")`): the simulator stands in for every
/// cloud it names (an `aws` or `azure` provider is simulated with typical boot times; a
/// `memory` one, as here, with the boot times and failure rate you measured on yours).
const CONFIG: &str = r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "cloud"
max_instances = 40
boot_latency = { uniform = [120, 300] }   # what our cloud takes, measured
checkin_delay = { uniform = [20, 40] }
create_failure_rate = 0.05

[[pools]]
server_pool_name = "support"

[[pools.autoscale]]
autoscale_config_name = "support-cloud"
vm_provider_config_id = "cloud"
connection_type = "RDP"
connection_credential_type = "SSO User Accounts"
reusable = true
max_simultaneous_sessions_per_server = 2
minimum_pool_standby_sessions = 4
require_checkin = true
standby_policy = "demand"
target_immediate_service = 0.95
"##;

/// Support agents of the desk on a workday.
const AGENTS: u32 = 80;

/// A recorded Monday-morning rush (seconds from the start of the day): a shift of twelve
/// agents logs in within two minutes at 09:00, with few servers warm after a quiet night.
const RUSH: &str = "time,event,session,pool
32400,start,a01,support
32405,start,a02,support
32410,start,a03,support
32420,start,a04,support
32430,start,a05,support
32440,start,a06,support
32450,start,a07,support
32460,start,a08,support
32470,start,a09,support
32480,start,a10,support
32500,start,a11,support
32520,start,a12,support
36000,end,a01,support
36000,end,a02,support
36000,end,a03,support
36000,end,a04,support
36000,end,a05,support
36000,end,a06,support
39600,end,a07,support
39600,end,a08,support
39600,end,a09,support
39600,end,a10,support
39600,end,a11,support
39600,end,a12,support
";

fn config() -> Config {
    load_str(CONFIG, Format::Toml)
        .expect("the configuration under test loads")
        .config
}

/// One simulated day of `trace` on `config`.
fn one_day(config: &Config, trace: &[TraceEvent], seed: u64) -> Metrics {
    let options = SimOptions {
        seed,
        duration: Some(SignedDuration::from_hours(24)),
        ..SimOptions::default()
    };
    simulate(config, trace, &options)
        .expect("the simulation runs")
        .0
}

fn main() {
    let config = config();
    for seed in 1..=3 {
        let m = one_day(&config, &workday("support", AGENTS, seed), seed);
        println!(
            "workday, seed {seed}: {} requests, {:.1}% served at once, p99 wait {:.0} s, \
             {:.1} VM-hours ({:.2}x the oracle)",
            m.requests, m.served_immediately_pct, m.wait_p99_s, m.vm_hours, m.ratio_to_oracle
        );
    }
    let rush = parse_trace(RUSH, SimOptions::default().start).expect("the trace reads");
    let m = one_day(&config, &rush, 1);
    println!(
        "rush: {} requests, {} served at once, longest wait {:.0} s",
        m.requests, m.served_immediately, m.wait_max_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The promise: 95% of the desk's requests find a desktop at once, nobody gives up, and
    /// the pool costs at most three times what a clairvoyant pool would (the oracle: every
    /// server made exactly when needed).
    #[test]
    fn a_workday_is_served_at_once() {
        let config = config();
        for seed in 1..=3 {
            let m = one_day(&config, &workday("support", AGENTS, seed), seed);
            assert!(
                m.requests > u64::from(AGENTS),
                "seed {seed}: {} requests",
                m.requests
            );
            assert!(
                m.served_immediately_pct >= 95.0,
                "seed {seed}: {:.1}% served at once",
                m.served_immediately_pct
            );
            assert_eq!(m.never_served, 0, "seed {seed}: requests that gave up");
            assert_eq!(
                m.beyond_capacity, 0,
                "seed {seed}: demand beyond max_instances"
            );
            assert!(
                m.ratio_to_oracle <= 3.0,
                "seed {seed}: {:.2}x the oracle's VM-hours",
                m.ratio_to_oracle
            );
        }
    }

    /// The recorded rush: the standby minimum seats the first agents at once, the rest wait
    /// at most one boot and check-in (300 + 40 s), and everyone gets a desktop.
    #[test]
    fn the_monday_rush_waits_at_most_one_boot() {
        let rush = parse_trace(RUSH, SimOptions::default().start).expect("the trace reads");
        let m = one_day(&config(), &rush, 1);
        assert_eq!(m.requests, 12);
        assert_eq!(m.never_served, 0);
        assert!(
            m.served_immediately >= 4,
            "{} served at once",
            m.served_immediately
        );
        assert!(m.wait_max_s <= 340.0, "longest wait {:.0} s", m.wait_max_s);
    }

    /// The same test catches a configuration that breaks the promise: without a standby
    /// minimum and with Kasm's static rule, the desk's users wait for servers to boot.
    #[test]
    fn without_standby_the_promise_is_broken() {
        let mut config = config();
        for c in config.pools.iter_mut().flat_map(|p| &mut p.autoscale) {
            c.minimum_pool_standby_sessions = 0;
            c.standby_policy = kasm_scale::config::StandbyPolicy::Static;
        }
        let m = one_day(&config, &workday("support", AGENTS, 1), 1);
        assert!(
            m.served_immediately_pct < 95.0,
            "{:.1}% served at once without standby",
            m.served_immediately_pct
        );
    }
}
