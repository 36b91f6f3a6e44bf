//! Helpers shared by the CLI tests.

// Each test file uses a part of them.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `kasm-scale` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kasm-scale")
}

/// Runs the `kasm-scale` binary with `args` from the repository root.
pub fn kasm_scale(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kasm-scale")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
