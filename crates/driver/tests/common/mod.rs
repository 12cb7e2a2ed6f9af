//! A driver over real `lean-sim` processes in a real sandbox.
// Each test binary uses part of this module.
#![allow(dead_code)]

use leanfarm_core::{CheckRequest, Policy, Verdict};
use leanfarm_driver::{Driver, PoolConfig, ToolchainConfig};
use leanfarm_sandbox::{BackendKind, ReadOnlyMount, Sandbox, SandboxConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The `lean-sim` binary built beside this test (by `cargo test --workspace`
/// or `cargo build -p lean-sim`).
pub fn lean_sim_path() -> PathBuf {
    let test_binary = std::env::current_exe().expect("current exe");
    let target_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let lean_sim = target_dir.join("lean-sim");
    assert!(
        lean_sim.exists(),
        "{} is missing: run `cargo build -p lean-sim` first (cargo test --workspace builds it)",
        lean_sim.display()
    );
    lean_sim
}

/// The sandbox backend the tests use: `native` unless LEAN_FARM_TEST_SANDBOX says otherwise.
pub fn test_backend() -> BackendKind {
    std::env::var("LEAN_FARM_TEST_SANDBOX")
        .ok()
        .map(|name| {
            name.parse()
                .expect("LEAN_FARM_TEST_SANDBOX must be native, gvisor or none")
        })
        .unwrap_or(BackendKind::Native)
}

pub struct TestDriver {
    pub driver: Driver,
    pub scratch: tempfile::TempDir,
}

pub fn sandbox_config(scratch_root: PathBuf, memory_limit_bytes: u64) -> SandboxConfig {
    let lean_sim = lean_sim_path();
    let bin_dir = lean_sim.parent().expect("bin dir").to_path_buf();
    SandboxConfig {
        backend: test_backend(),
        memory_limit_bytes,
        pids_limit: 64,
        cpu_limit_cores: 1.0,
        file_size_limit_bytes: 64 << 20,
        scratch_size_bytes: 256 << 20,
        open_files_limit: 256,
        read_only_mounts: vec![ReadOnlyMount {
            host_path: bin_dir.clone(),
            sandbox_path: bin_dir,
        }],
        scratch_root,
        allow_degraded: false,
    }
}

pub fn driver_with(pool: PoolConfig, memory_limit_bytes: u64) -> TestDriver {
    driver_with_sandbox(pool, |config| {
        config.memory_limit_bytes = memory_limit_bytes
    })
}

/// A driver whose sandbox configuration `adjust` changes.
pub fn driver_with_sandbox(
    pool: PoolConfig,
    adjust: impl FnOnce(&mut SandboxConfig),
) -> TestDriver {
    let scratch = tempfile::tempdir().expect("scratch root");
    let mut config = sandbox_config(scratch.path().to_path_buf(), 512 << 20);
    adjust(&mut config);
    let sandbox = Sandbox::new(config).expect("sandbox");
    let toolchain = ToolchainConfig {
        name: "lean-sim".to_string(),
        repl_program: lean_sim_path(),
        repl_args: vec!["repl".to_string()],
        project_name: "test-project".to_string(),
        env: Vec::new(),
    };
    TestDriver {
        driver: Driver::new(toolchain, pool, Arc::new(sandbox)),
        scratch,
    }
}

pub fn small_pool() -> PoolConfig {
    PoolConfig {
        slots: 2,
        max_repls: 2,
        max_uses_per_repl: 100,
        max_repl_memory_bytes: 1 << 30,
        acquire_timeout: Duration::from_secs(10),
        prestart_headers: Vec::new(),
        max_reply_bytes: 1 << 20,
    }
}

pub fn driver() -> TestDriver {
    driver_with(small_pool(), 512 << 20)
}

pub fn request(code: &str) -> CheckRequest {
    CheckRequest {
        custom_id: None,
        code: code.to_string(),
        timeout_seconds: 10.0,
        policy: Policy::default(),
        infotree: None,
    }
}

/// The code of a verdict's reason; empty for a valid one.
pub fn reason_code(verdict: &Verdict) -> &str {
    verdict.reason().map_or("", |reason| reason.code.as_str())
}
