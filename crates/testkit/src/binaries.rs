//! The binaries cargo builds beside a test or an example.

use std::path::PathBuf;
use std::process::Command;

/// The binary `name` in the target profile directory this test or example
/// runs from (`target/debug/deps/<test>` and `target/debug/examples/<example>`
/// both sit one level below it). Panics, saying how to build it, when it is
/// missing.
pub fn built_binary(name: &str) -> PathBuf {
    let running = std::env::current_exe().expect("the path of the running test");
    let profile_dir = running
        .parent()
        .and_then(|deps_or_examples| deps_or_examples.parent())
        .expect("a target profile directory above the running test");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo test --workspace builds every binary)",
        binary.display()
    );
    binary
}

/// The `lean-sim` binary built beside this test (by `cargo test --workspace`
/// or `cargo build -p lean-sim`).
pub fn lean_sim_path() -> PathBuf {
    built_binary("lean-sim")
}

/// Run the built `leanfarm` with `args` and return its trimmed stdout;
/// panics with its stderr when it fails (for benchmarks that set a farm up
/// through its own commands, e.g. `tenant create`).
pub fn leanfarm_stdout(args: &[&str]) -> String {
    let output = Command::new(built_binary("leanfarm"))
        .args(args)
        .output()
        .expect("run leanfarm");
    assert!(
        output.status.success(),
        "leanfarm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
