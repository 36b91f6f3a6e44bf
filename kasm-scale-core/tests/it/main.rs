//! The integration tests of kasm-scale-core: one test binary, one module per topic.
//!
//! One binary links the workspace once instead of once per file; the modules run in
//! parallel in one process, so a test that needs process-wide state of its own stays a
//! binary of its own (see `[[test]]` in Cargo.toml).

// The fixture builder of `kasm_scale_core::testkit`, included by path (a crate cannot turn on
// its own `testkit` feature for its tests); it names `crate::config` and `crate::load_str`.
#[allow(dead_code)]
#[path = "../../src/testkit/fixture.rs"]
mod fixture;
use kasm_scale_core::{config, load_str};

mod plan_support;
mod powershell;
mod python;
mod support;

mod ad_containers;
mod builtin_script_secrets;
mod builtin_scripts;
mod checkin_keys;
mod config_bounds;
mod config_endpoints;
mod config_input;
mod config_roundtrip;
mod config_rules;
#[cfg(feature = "testkit")]
mod conformance;
mod controller;
mod controller_crash;
mod controller_defects;
mod controller_fallback;
mod controller_leftovers;
mod controller_store;
mod controller_warm;
mod day_two;
mod engine_demand;
mod engine_drain;
mod engine_fixed_point;
mod engine_props;
mod engine_rollout;
mod engine_rollout_props;
mod engine_rules;
mod engine_warm;
mod engine_warm_props;
#[cfg(feature = "sim")]
mod extreme_values;
mod file_store;
mod fixture_builder;
mod resumed_create;
#[cfg(feature = "sim")]
mod sim;
#[cfg(feature = "sim")]
mod sim_change;
#[cfg(feature = "sim")]
mod sim_cost;
#[cfg(feature = "sim")]
mod sim_policy;
#[cfg(feature = "testkit")]
mod store_contract;
mod template_check;
mod template_differential;
mod template_render;
mod token;
mod warm_guest;
mod warm_tcp;
