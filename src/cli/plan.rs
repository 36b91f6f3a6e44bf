//! `kasm-scale plan`: what the engine would do now for every pool of a configuration.

use std::path::Path;

use indexmap::IndexMap;
use std::process::ExitCode;

use jiff::Timestamp;
use kasm_scale_core::engine::{Action, Bookkeeping, Plan, PoolSnapshot, ServerState, State, plan};
use kasm_scale_core::{ConfigError, load_file};
use serde::Serialize;

use super::output::Stdout;

/// The plans of every pool, with bookkeeping keyed by config name (config order).
#[derive(Default, Serialize)]
struct Combined {
    actions: Vec<Action>,
    bookkeeping: IndexMap<String, Bookkeeping>,
    notes: Vec<String>,
}

/// Plans every pool and prints the combined plan as JSON, or with `explain` as text.
/// Exit 0; 1 when the configuration or the state is invalid; 2 when a file cannot be read or
/// parsed.
pub fn run(config: &Path, state: &Path, now: Option<Timestamp>, explain: bool) -> ExitCode {
    let loaded = match load_file(config) {
        Ok(l) => l,
        Err(ConfigError::Invalid { problems }) => {
            for p in &problems {
                eprintln!("{}: {p}", config.display());
            }
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let text = match kasm_scale_core::read_input_file(state) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", state.display());
            return ExitCode::from(2);
        }
    };
    let snapshots = match State::from_json(&text).and_then(|s| s.snapshots(&loaded.config)) {
        Ok(s) => s,
        Err(e) => {
            for p in &e.problems {
                eprintln!("{}: {p}", state.display());
            }
            return ExitCode::from(if e.syntax { 2 } else { 1 });
        }
    };
    let now = now.unwrap_or_else(Timestamp::now);
    let generations: Vec<String> = snapshots.iter().flat_map(generation_lines).collect();
    let mut combined = Combined::default();
    for snapshot in &snapshots {
        let p: Plan = plan(snapshot, now);
        combined.actions.extend(p.actions);
        let mut bookkeeping = p.bookkeeping;
        for config in &snapshot.configs {
            if let Some((name, bk)) = bookkeeping.remove_entry(&config.policy.name) {
                combined.bookkeeping.insert(name, bk);
            }
        }
        combined.notes.extend(
            p.notes
                .into_iter()
                .map(|n| format!("{}: {n}", snapshot.pool)),
        );
    }
    let mut out = Stdout::new();
    if explain {
        for line in &generations {
            out.line(line);
        }
        for action in &combined.actions {
            out.line(action.reason());
        }
        for note in &combined.notes {
            out.line(format_args!("note: {note}"));
        }
        if combined.actions.is_empty() && combined.notes.is_empty() {
            out.line("nothing to do");
        }
    } else {
        match serde_json::to_string_pretty(&combined) {
            Ok(json) => out.line(json),
            Err(e) => {
                eprintln!("cannot write the plan: {e}");
                return ExitCode::from(2);
            }
        }
    }
    out.finish(ExitCode::SUCCESS)
}

/// For `--explain` (ours): per config with outdated or drained servers, its current generation
/// and how many of its servers (not being destroyed) are current, outdated and drained.
fn generation_lines(snapshot: &PoolSnapshot) -> Vec<String> {
    snapshot
        .configs
        .iter()
        .enumerate()
        .filter_map(|(c, config)| {
            let servers = snapshot
                .servers
                .iter()
                .filter(|s| s.config as usize == c && s.state != ServerState::Destroying);
            let (mut current, mut outdated, mut drained) = (0u32, 0u32, 0u32);
            for s in servers {
                if s.drained.is_some() {
                    drained += 1;
                } else if s.outdated && config.generation.is_some() {
                    outdated += 1;
                } else {
                    current += 1;
                }
            }
            (outdated > 0 || drained > 0).then(|| {
                let generation = config
                    .generation
                    .map_or_else(|| "unknown".to_owned(), |g| g.to_string());
                format!(
                    "servers of {}: {current} current (generation {generation}), {outdated} outdated, {drained} drained",
                    config.policy.name
                )
            })
        })
        .collect()
}
