//! The sandbox settings of every process that checks (`serve`'s in-process
//! workers and `leanfarm worker`): backend and the limits each REPL process
//! tree runs under.
//!
//! Each default is written once, in `defaults`, and serves clap's help and
//! the TOML file alike. This module only describes and validates settings;
//! it must never start a process.

use super::SettingError;
use clap::Args;
use leanfarm_sandbox::{BackendKind, ReadOnlyMount, SandboxConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Limits of the sandbox that are not settings: fixed for every REPL.
const FILE_SIZE_LIMIT_BYTES: u64 = 1 << 30;
const SCRATCH_SIZE_BYTES: u64 = 1 << 30;
const OPEN_FILES_LIMIT: u64 = 1024;
/// The sandbox's own processes (the intermediate, init and the program)
/// count against the pids limit.
const MIN_PIDS_LIMIT: u64 = 3;
/// The smallest CPU quota a cgroup accepts is 1 ms per 100 ms period.
const MIN_CPU_LIMIT_CORES: f64 = 0.01;

/// The one place each sandbox default is written.
pub(crate) mod defaults {
    pub fn sandbox() -> String {
        "native".to_string()
    }
    pub fn memory_limit_mib() -> u64 {
        8192
    }
    pub fn cpu_limit_cores() -> f64 {
        1.0
    }
    pub fn pids_limit() -> u64 {
        256
    }
}

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct SandboxArgs {
    /// Sandbox backend: native, gvisor, or none (development only)
    #[arg(long, env = "LEAN_FARM_SANDBOX", default_value_t = defaults::sandbox())]
    #[serde(default = "defaults::sandbox")]
    pub sandbox: String,
    /// Run even where the sandbox cannot enforce its limits (no usable cgroups); logged at start
    #[arg(long, env = "LEAN_FARM_ALLOW_DEGRADED_SANDBOX")]
    #[serde(default)]
    pub allow_degraded_sandbox: bool,
    /// Memory limit of each REPL process tree (cgroup, resident memory), in MiB
    #[arg(long, env = "LEAN_FARM_MEMORY_LIMIT_MIB", default_value_t = defaults::memory_limit_mib())]
    #[serde(default = "defaults::memory_limit_mib")]
    pub memory_limit_mib: u64,
    /// CPU limit of each REPL process tree, in cores (cgroup quota; e.g. 0.5 or 2)
    #[arg(long, env = "LEAN_FARM_CPU_LIMIT_CORES", default_value_t = defaults::cpu_limit_cores())]
    #[serde(default = "defaults::cpu_limit_cores")]
    pub cpu_limit_cores: f64,
    /// Most processes and threads in each REPL process tree (cgroup pids.max)
    #[arg(long, env = "LEAN_FARM_PIDS_LIMIT", default_value_t = defaults::pids_limit())]
    #[serde(default = "defaults::pids_limit")]
    pub pids_limit: u64,
}

impl SandboxArgs {
    /// Refuse a value the sandbox could not apply, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        self.backend()?;
        if self.memory_limit_mib == 0 || self.memory_limit_mib.checked_mul(1 << 20).is_none() {
            return Err(SettingError::new(
                "memory_limit_mib",
                format!(
                    "must be between 1 and {} MiB, not {}",
                    u64::MAX >> 20,
                    self.memory_limit_mib
                ),
            ));
        }
        if !(self.cpu_limit_cores.is_finite() && self.cpu_limit_cores >= MIN_CPU_LIMIT_CORES) {
            return Err(SettingError::new(
                "cpu_limit_cores",
                format!(
                    "must be a number of cores of at least {MIN_CPU_LIMIT_CORES}, not {}",
                    self.cpu_limit_cores
                ),
            ));
        }
        if self.pids_limit < MIN_PIDS_LIMIT {
            return Err(SettingError::new(
                "pids_limit",
                format!(
                    "must be at least {MIN_PIDS_LIMIT} (the sandbox's own processes count against it), not {}",
                    self.pids_limit
                ),
            ));
        }
        Ok(())
    }

    pub fn backend(&self) -> Result<BackendKind, SettingError> {
        self.sandbox
            .parse()
            .map_err(|error: leanfarm_sandbox::SandboxError| {
                SettingError::new("sandbox", error.to_string())
            })
    }

    /// The sandbox configuration these settings describe.
    pub fn sandbox_config(
        &self,
        read_only_mounts: Vec<ReadOnlyMount>,
        scratch_root: PathBuf,
    ) -> Result<SandboxConfig, SettingError> {
        self.validate()?;
        Ok(SandboxConfig {
            backend: self.backend()?,
            memory_limit_bytes: self.memory_limit_mib << 20,
            pids_limit: self.pids_limit,
            cpu_limit_cores: self.cpu_limit_cores,
            file_size_limit_bytes: FILE_SIZE_LIMIT_BYTES,
            scratch_size_bytes: SCRATCH_SIZE_BYTES,
            open_files_limit: OPEN_FILES_LIMIT,
            read_only_mounts,
            scratch_root,
            allow_degraded: self.allow_degraded_sandbox,
        })
    }
}
