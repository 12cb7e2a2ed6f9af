//! Sandbox configurations for tests: limits roomy enough for lean-sim, and
//! the backend chosen by `LEAN_FARM_TEST_SANDBOX`.

use crate::lean_sim_path;
use leanfarm_sandbox::{BackendKind, ReadOnlyMount, SandboxConfig};
use std::path::PathBuf;

/// The sandbox backend the tests use: `native` unless `LEAN_FARM_TEST_SANDBOX`
/// says otherwise.
pub fn test_backend() -> BackendKind {
    crate::test_backend_name()
        .parse()
        .expect("LEAN_FARM_TEST_SANDBOX must be native, gvisor or none")
}

/// A sandbox on `backend` with test limits (512 MiB, 64 processes, one core,
/// 256 MiB of scratch), nothing mounted, scratch directories under
/// `scratch_root`.
pub fn sandbox_config(backend: BackendKind, scratch_root: PathBuf) -> SandboxConfig {
    SandboxConfig {
        backend,
        memory_limit_bytes: 512 << 20,
        pids_limit: 64,
        cpu_limit_cores: 1.0,
        file_size_limit_bytes: 64 << 20,
        scratch_size_bytes: 256 << 20,
        open_files_limit: 256,
        read_only_mounts: Vec::new(),
        scratch_root,
        allow_degraded: false,
    }
}

/// lean-sim's directory, mounted read-only at the same path, so that a
/// sandboxed process can run the binary the host built.
pub fn lean_sim_mounts() -> Vec<ReadOnlyMount> {
    let bin_dir = lean_sim_path()
        .parent()
        .expect("lean-sim's directory")
        .to_path_buf();
    vec![ReadOnlyMount {
        host_path: bin_dir.clone(),
        sandbox_path: bin_dir,
    }]
}

/// A sandbox on the test backend that can run lean-sim (`lean_sim_mounts`),
/// with `memory_limit_bytes` of memory.
pub fn lean_sim_sandbox_config(scratch_root: PathBuf, memory_limit_bytes: u64) -> SandboxConfig {
    SandboxConfig {
        memory_limit_bytes,
        read_only_mounts: lean_sim_mounts(),
        ..sandbox_config(test_backend(), scratch_root)
    }
}
