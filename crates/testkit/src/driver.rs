//! A driver over real `lean-sim` processes in a real sandbox, with a small
//! pool, for the tests of the driver and of what runs it.

use crate::lean_sim_path;
use crate::sandbox::lean_sim_sandbox_config;
use leanfarm_driver::{Driver, PoolConfig, ToolchainConfig};
use leanfarm_sandbox::{Sandbox, SandboxConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A driver and the scratch directory its sandbox uses (removed on drop).
pub struct TestDriver {
    pub driver: Driver,
    pub scratch: tempfile::TempDir,
}

/// Two slots, two warm REPLs, 100 uses each, a 10 s wait for a slot.
pub fn small_pool() -> PoolConfig {
    PoolConfig {
        slots: 2,
        max_repls: 2,
        max_uses_per_repl: 100,
        recycle_memory_fraction: 0.75,
        acquire_timeout: Duration::from_secs(10),
        prestart_headers: Vec::new(),
        max_reply_bytes: 1 << 20,
    }
}

/// The toolchain `lean-sim`: `repl_program` run with `repl_args`, in project
/// `project_name`.
pub fn lean_sim_toolchain(
    repl_program: PathBuf,
    repl_args: &[&str],
    project_name: &str,
) -> ToolchainConfig {
    ToolchainConfig {
        name: "lean-sim".to_string(),
        repl_program,
        repl_args: repl_args.iter().map(|arg| arg.to_string()).collect(),
        project_name: project_name.to_string(),
        env: Vec::new(),
    }
}

/// A driver over `lean-sim repl` (project `test-project`) with the small pool
/// and 512 MiB per sandbox.
pub fn driver() -> TestDriver {
    driver_with(small_pool(), 512 << 20)
}

/// A driver with this pool and this memory limit per sandbox.
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
    let mut config = lean_sim_sandbox_config(scratch.path().to_path_buf(), 512 << 20);
    adjust(&mut config);
    let sandbox = Sandbox::new(config).expect("sandbox");
    let toolchain = lean_sim_toolchain(lean_sim_path(), &["repl"], "test-project");
    TestDriver {
        driver: Driver::new(toolchain, pool, Arc::new(sandbox)),
        scratch,
    }
}
