//! The policy simulator: a discrete-event simulation on virtual time that drives the real
//! controller and engine against the in-memory cloud and directory, with a demand trace.

mod capacity;
mod change;
mod cost;
mod days;
mod duration;
mod effects;
mod generate;
mod idle;
mod limits;
mod options;
mod oracle;
mod reconnect;
mod run;
mod scenario;
mod stand_in;
mod trace;

pub use crate::memory::{deliver_checkins, token_in};
pub use capacity::{beyond_capacity, pool_capacity};
pub use change::{ChangeMetrics, ConfigChange, GenerationBuilt, parse_change_time};
pub use days::DayMetrics;
pub use duration::parse_duration;
pub use generate::{
    CLASS_SIZE, class, class_week, office_week, random_arrivals, workday, workdays,
};
pub use limits::{
    MAX_SIM_DURATION, MAX_SIM_EVENTS, MAX_SIM_INTERVAL, MAX_SIM_SERVERS, MIN_SIM_INTERVAL,
    SIM_START_RANGE,
};
pub use options::{Progress, SimOptions};
pub use oracle::{Served, oracle_cost_within, oracle_vm_hours, oracle_vm_hours_within};
pub use reconnect::{Reconnects, with_disconnects};
pub use run::{Metrics, Series, SimError, simulate};
pub use scenario::{
    DEFAULT_CONFIG, DEFAULT_DAYS, DEFAULT_USERS, default_scenario, demand_policy, has_warm_tier,
    kasm_policy, large_pool, without_warm_tier,
};
pub use stand_in::memory_stand_in;
pub use trace::{Kind, TraceError, TraceEvent, parse_trace};
