//! How a process checks: toolchain, slots, warm REPLs, leases, and (in
//! `sandbox`) the sandbox. `serve` (for its in-process workers) and
//! `worker` share these settings, and build their driver from them here.
//!
//! Each default is written once, in `defaults` (or, where it follows from
//! another setting, in the one function that derives it). This module must
//! never touch the store or the HTTP API.

use super::sandbox::SandboxArgs;
use super::SettingError;
use crate::CliError;
use clap::Args;
use leanfarm_driver::{Driver, PoolConfig, ToolchainConfig};
use leanfarm_sandbox::{BackendKind, ReadOnlyMount, Sandbox};
use leanfarm_worker::WorkerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The shortest lease a worker may hold; a shorter one would expire
/// between two heartbeats.
const MIN_LEASE_SECONDS: f64 = 1.0;

/// The one place each checker default is written.
pub(crate) mod defaults {
    pub fn lease_seconds() -> f64 {
        30.0
    }
    pub fn drain_seconds() -> f64 {
        30.0
    }
    pub fn recycle_memory_fraction() -> f64 {
        leanfarm_driver::PoolConfig::default().recycle_memory_fraction
    }
    pub fn max_uses_per_repl() -> u32 {
        leanfarm_driver::PoolConfig::default().max_uses_per_repl
    }
}

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct CheckerArgs {
    /// Use lean-sim, the stand-in for Lean, instead of a real toolchain
    #[arg(long, env = "LEAN_FARM_SIMULATE")]
    #[serde(default)]
    pub simulate: bool,
    /// The Lean REPL program (e.g. the `repl` binary of leanprover-community/repl)
    #[arg(long, env = "LEAN_FARM_REPL")]
    #[serde(default)]
    pub repl: Option<PathBuf>,
    /// The Lean project the REPL runs in (mounted read-only; its .lake holds the oleans)
    #[arg(long, env = "LEAN_FARM_LEAN_PROJECT")]
    #[serde(default)]
    pub lean_project: Option<PathBuf>,
    /// The Lean toolchain directory (e.g. ~/.elan/toolchains/leanprover--lean4---v4.9.0), mounted read-only [default: none]
    #[arg(long, env = "LEAN_FARM_LEAN_TOOLCHAIN")]
    #[serde(default)]
    pub lean_toolchain: Option<PathBuf>,
    /// Name of the toolchain reported in verdicts and offered to jobs [default: the REPL's file name]
    #[arg(long, env = "LEAN_FARM_TOOLCHAIN")]
    #[serde(default)]
    pub toolchain: Option<String>,
    /// Concurrent checks in this process [default: number of CPUs]; for `serve`, 0 serves the API only (remote workers check)
    #[arg(long, env = "LEAN_FARM_SLOTS")]
    #[serde(default)]
    pub slots: Option<usize>,
    /// REPL processes kept alive, busy or warm; more than --slots keeps more headers warm, at a memory cost [default: the slots]
    #[arg(long, env = "LEAN_FARM_WARM_REPLS")]
    #[serde(default)]
    pub warm_repls: Option<usize>,
    /// Import headers to start REPLs for before taking work, e.g. "import Mathlib" (repeatable; in the variable, separated by `;`)
    #[arg(long = "prestart", env = "LEAN_FARM_PRESTART", value_delimiter = ';')]
    #[serde(default)]
    pub prestart: Vec<String>,
    /// Retire a REPL before its next snippet once its memory passes this fraction of --memory-limit-mib (a REPL keeps every environment it made)
    #[arg(long, env = "LEAN_FARM_RECYCLE_MEMORY_FRACTION", default_value_t = defaults::recycle_memory_fraction())]
    #[serde(default = "defaults::recycle_memory_fraction")]
    pub recycle_memory_fraction: f64,
    /// Retire a REPL after this many snippets
    #[arg(long, env = "LEAN_FARM_MAX_USES_PER_REPL", default_value_t = defaults::max_uses_per_repl())]
    #[serde(default = "defaults::max_uses_per_repl")]
    pub max_uses_per_repl: u32,
    #[command(flatten)]
    #[serde(flatten)]
    pub sandbox: SandboxArgs,
    /// Seconds a worker's lease on a job lasts without a heartbeat
    #[arg(long, env = "LEAN_FARM_LEASE_SECONDS", default_value_t = defaults::lease_seconds())]
    #[serde(default = "defaults::lease_seconds")]
    pub lease_seconds: f64,
    /// Seconds running checks may take to finish on shutdown before their jobs are handed back
    #[arg(long, env = "LEAN_FARM_DRAIN_SECONDS", default_value_t = defaults::drain_seconds())]
    #[serde(default = "defaults::drain_seconds")]
    pub drain_seconds: f64,
}

impl CheckerArgs {
    /// Refuse a value no worker could run with, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        self.sandbox.validate()?;
        if !(self.lease_seconds.is_finite() && self.lease_seconds >= MIN_LEASE_SECONDS) {
            return Err(SettingError::new(
                "lease_seconds",
                format!(
                    "must be at least {MIN_LEASE_SECONDS} s, not {}",
                    self.lease_seconds
                ),
            ));
        }
        if !(self.drain_seconds.is_finite() && self.drain_seconds >= 0.0) {
            return Err(SettingError::new(
                "drain_seconds",
                format!("must be 0 s or more, not {}", self.drain_seconds),
            ));
        }
        if !(self.recycle_memory_fraction > 0.0 && self.recycle_memory_fraction <= 1.0) {
            return Err(SettingError::new(
                "recycle_memory_fraction",
                format!(
                    "must be above 0 and at most 1, not {}",
                    self.recycle_memory_fraction
                ),
            ));
        }
        if self.max_uses_per_repl == 0 {
            return Err(SettingError::new(
                "max_uses_per_repl",
                "must be at least 1".to_string(),
            ));
        }
        if let Some(position) = self
            .prestart
            .iter()
            .position(|header| header.trim().is_empty())
        {
            return Err(SettingError::new(
                "prestart",
                format!("header {} is empty", position + 1),
            ));
        }
        Ok(())
    }

    /// Checks at once: the setting, or one per CPU.
    pub fn slots(&self) -> usize {
        self.slots.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// How workers lease and drain.
    pub fn worker_config(&self, worker_id: String) -> WorkerConfig {
        WorkerConfig {
            worker_id,
            lease: Duration::from_secs_f64(self.lease_seconds),
            poll_interval: Duration::from_millis(250),
            retry_backoff: Duration::from_secs(2),
            drain_deadline: Duration::from_secs_f64(self.drain_seconds),
        }
    }

    /// The driver: toolchain, sandbox and pool.
    pub fn build_driver(&self, data_dir: &Path, slots: usize) -> Result<Driver, CliError> {
        self.build_driver_in_force(data_dir, slots)
            .map(|(driver, _)| driver)
    }

    /// `build_driver`, with the sandbox in force, described for the
    /// start-up line.
    pub fn build_driver_in_force(
        &self,
        data_dir: &Path,
        slots: usize,
    ) -> Result<(Driver, String), CliError> {
        self.validate()?;
        let (toolchain, read_only_mounts) = self.toolchain_config()?;
        let scratch_root = data_dir.join("scratch");
        std::fs::create_dir_all(&scratch_root).map_err(|error| {
            CliError::Config(format!("cannot create {}: {error}", scratch_root.display()))
        })?;
        let sandbox_config = self
            .sandbox
            .sandbox_config(read_only_mounts, scratch_root)?;
        let backend = sandbox_config.backend;
        let sandbox = Sandbox::new(sandbox_config).map_err(|error| {
            if backend == BackendKind::Native && !running_as_root() {
                return CliError::Startup(native_sandbox_needs_root());
            }
            CliError::Startup(format!(
                "{error} (for development without a sandbox: --sandbox none)"
            ))
        })?;
        let in_force = sandbox.in_force();
        let pool = PoolConfig {
            slots,
            max_repls: self.warm_repls.unwrap_or(slots).max(slots),
            recycle_memory_fraction: self.recycle_memory_fraction,
            max_uses_per_repl: self.max_uses_per_repl,
            prestart_headers: self
                .prestart
                .iter()
                .map(|h| h.replace("\\n", "\n"))
                .collect(),
            ..PoolConfig::default()
        };
        Ok((Driver::new(toolchain, pool, Arc::new(sandbox)), in_force))
    }

    /// The toolchain to run: lean-sim inside this binary, or a configured REPL.
    fn toolchain_config(&self) -> Result<(ToolchainConfig, Vec<ReadOnlyMount>), CliError> {
        let mount_dir_of = |program: &Path| -> Result<ReadOnlyMount, CliError> {
            let dir = program.parent().ok_or_else(|| {
                CliError::Config(format!("{} has no parent directory", program.display()))
            })?;
            Ok(ReadOnlyMount {
                host_path: dir.to_path_buf(),
                sandbox_path: dir.to_path_buf(),
            })
        };
        let mut mounts = Vec::new();
        let config = if self.simulate {
            let program = std::env::current_exe()
                .map_err(|error| CliError::Config(format!("cannot find this program: {error}")))?;
            mounts.push(mount_dir_of(&program)?);
            ToolchainConfig {
                name: self
                    .toolchain
                    .clone()
                    .unwrap_or_else(|| "lean-sim".to_string()),
                repl_program: program,
                repl_args: vec!["lean-sim".to_string(), "repl".to_string()],
                project_name: "simulated".to_string(),
                env: Vec::new(),
            }
        } else {
            let Some(repl) = &self.repl else {
                return Err(CliError::Config(
                    "no Lean toolchain configured: pass --repl PATH (the REPL binary of leanprover-community/repl, \
                     built with `lake build` in a clone of https://github.com/leanprover-community/repl), \
                     --lean-project DIR (a Lake project with its dependencies built) and --lean-toolchain DIR \
                     (its toolchain under ~/.elan/toolchains), or set LEAN_FARM_REPL; \
                     to try the farm without Lean, pass --simulate"
                        .to_string(),
                ));
            };
            let repl = std::fs::canonicalize(repl)
                .map_err(|error| CliError::Config(format!("--repl {}: {error}", repl.display())))?;
            mounts.push(mount_dir_of(&repl)?);
            let mut env = Vec::new();
            if let Some(toolchain) = &self.lean_toolchain {
                let toolchain = std::fs::canonicalize(toolchain).map_err(|error| {
                    CliError::Config(format!("--lean-toolchain {}: {error}", toolchain.display()))
                })?;
                mounts.push(ReadOnlyMount {
                    host_path: toolchain.clone(),
                    sandbox_path: toolchain.clone(),
                });
                env.push(("LEAN_SYSROOT".to_string(), toolchain.display().to_string()));
                env.push((
                    "PATH".to_string(),
                    format!("{}:/usr/bin:/bin", toolchain.join("bin").display()),
                ));
            }
            let project_name = match &self.lean_project {
                Some(project) => {
                    let project = std::fs::canonicalize(project).map_err(|error| {
                        CliError::Config(format!("--lean-project {}: {error}", project.display()))
                    })?;
                    mounts.push(ReadOnlyMount {
                        host_path: project.clone(),
                        sandbox_path: project.clone(),
                    });
                    env.push(("LEAN_PATH".to_string(), lean_path(&project)));
                    project
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                }
                None => String::new(),
            };
            ToolchainConfig {
                name: self.toolchain.clone().unwrap_or_else(|| {
                    repl.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                }),
                repl_program: repl,
                repl_args: Vec::new(),
                project_name,
                env,
            }
        };
        Ok((config, mounts))
    }
}

/// The module search path of a Lake project, as `lake env` sets it: the
/// project's own build output, then each dependency's under
/// `.lake/packages/` (in name order, for a stable path).
pub fn lean_path(project: &Path) -> String {
    let mut dirs = vec![project.join(".lake/build/lib/lean")];
    if let Ok(entries) = std::fs::read_dir(project.join(".lake/packages")) {
        let mut packages: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        packages.sort();
        dirs.extend(
            packages
                .iter()
                .map(|package| package.join(".lake/build/lib/lean")),
        );
    }
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Start the REPLs for the configured headers; a header that does not load
/// stops the start-up with Lean's reason.
pub async fn prestart(driver: &Driver) -> Result<(), CliError> {
    driver
        .prestart()
        .await
        .map_err(|error| CliError::Startup(error.to_string()))
}

/// Whether this process runs with the effective user id 0 (the owner of
/// `/proc/self` is the process's effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// The one message for a native sandbox started without root: what to run
/// instead, as this very command line with root, or with `--sandbox none`.
fn native_sandbox_needs_root() -> String {
    let mut arguments: Vec<String> = vec!["leanfarm".to_string()];
    let mut skip_value = false;
    for argument in std::env::args().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        if argument == "--sandbox" {
            skip_value = true;
            continue;
        }
        if argument.starts_with("--sandbox=") {
            continue;
        }
        arguments.push(argument);
    }
    let command = arguments.join(" ");
    format!(
        "the native sandbox needs root (it makes namespaces, mounts and cgroups for each Lean process), and this process is not root: run `sudo {command}`, or, for development on this machine only (snippets then run without any isolation), `{command} --sandbox none`"
    )
}
