//! Configuration of `leanfarm serve`, from one path: flags, then
//! `LEAN_FARM_*` environment variables, then an optional TOML file
//! (`--config`), then defaults. Builds a running `Farm` from it.

use crate::CliError;
use clap::Args;
use leanfarm_driver::{Driver, PoolConfig, ToolchainConfig};
use leanfarm_sandbox::{BackendKind, ReadOnlyMount, Sandbox, SandboxConfig};
use leanfarm_server::{AppState, Farm, Limits};
use leanfarm_store::{ArtifactStore, Store};
use leanfarm_worker::WorkerConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How a process checks: toolchain, sandbox and pool. `serve` (for its
/// in-process workers) and `worker` share these settings.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct CheckerArgs {
    /// Use lean-sim, the stand-in for Lean, instead of a real toolchain
    #[arg(long, env = "LEAN_FARM_SIMULATE")]
    #[serde(default)]
    pub simulate: bool,
    /// The Lean REPL program (e.g. the `repl` binary of leanprover-community/repl)
    #[arg(long, env = "LEAN_FARM_REPL")]
    pub repl: Option<PathBuf>,
    /// The Lean project the REPL runs in (mounted read-only; its .lake holds the oleans)
    #[arg(long, env = "LEAN_FARM_LEAN_PROJECT")]
    pub lean_project: Option<PathBuf>,
    /// The Lean toolchain directory (e.g. ~/.elan/toolchains/leanprover--lean4---v4.9.0), mounted read-only [default: none]
    #[arg(long, env = "LEAN_FARM_LEAN_TOOLCHAIN")]
    pub lean_toolchain: Option<PathBuf>,
    /// Name of the toolchain reported in verdicts and offered to jobs [default: the REPL's file name]
    #[arg(long, env = "LEAN_FARM_TOOLCHAIN")]
    pub toolchain: Option<String>,
    /// Concurrent checks in this process [default: number of CPUs]; for `serve`, 0 serves the API only (remote workers check)
    #[arg(long, env = "LEAN_FARM_SLOTS")]
    pub slots: Option<usize>,
    /// REPL processes kept alive, busy or warm; more than --slots keeps more headers warm, at a memory cost [default: the slots]
    #[arg(long, env = "LEAN_FARM_WARM_REPLS")]
    pub warm_repls: Option<usize>,
    /// Import headers to start REPLs for before taking work, e.g. "import Mathlib" (repeatable; in the variable, separated by `;`)
    #[arg(long = "prestart", env = "LEAN_FARM_PRESTART", value_delimiter = ';')]
    #[serde(default)]
    pub prestart: Vec<String>,
    /// Sandbox backend: native, gvisor, or none (development only) [default: native]
    #[arg(long, env = "LEAN_FARM_SANDBOX")]
    pub sandbox: Option<String>,
    /// Run even where the sandbox cannot enforce its limits (no usable cgroups); logged at start
    #[arg(long, env = "LEAN_FARM_ALLOW_DEGRADED_SANDBOX")]
    #[serde(default)]
    pub allow_degraded_sandbox: bool,
    /// Memory limit of each REPL process tree, in MiB [default: 8192]
    #[arg(long, env = "LEAN_FARM_MEMORY_LIMIT_MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Seconds a worker's lease on a job lasts without a heartbeat [default: 30]
    #[arg(long, env = "LEAN_FARM_LEASE_SECONDS")]
    pub lease_seconds: Option<f64>,
    /// Seconds running checks may take to finish on shutdown before their jobs are handed back [default: 30]
    #[arg(long, env = "LEAN_FARM_DRAIN_SECONDS")]
    pub drain_seconds: Option<f64>,
}

impl CheckerArgs {
    /// These settings, with what they leave unset taken from `file`.
    fn or(self, file: CheckerArgs) -> CheckerArgs {
        CheckerArgs {
            simulate: self.simulate || file.simulate,
            repl: self.repl.or(file.repl),
            lean_project: self.lean_project.or(file.lean_project),
            lean_toolchain: self.lean_toolchain.or(file.lean_toolchain),
            toolchain: self.toolchain.or(file.toolchain),
            slots: self.slots.or(file.slots),
            warm_repls: self.warm_repls.or(file.warm_repls),
            prestart: if self.prestart.is_empty() {
                file.prestart
            } else {
                self.prestart
            },
            sandbox: self.sandbox.or(file.sandbox),
            allow_degraded_sandbox: self.allow_degraded_sandbox || file.allow_degraded_sandbox,
            memory_limit_mib: self.memory_limit_mib.or(file.memory_limit_mib),
            lease_seconds: self.lease_seconds.or(file.lease_seconds),
            drain_seconds: self.drain_seconds.or(file.drain_seconds),
        }
    }
}

#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8000]
    #[arg(long, env = "LEAN_FARM_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Directory for the SQLite store and artifacts [default: ./leanfarm-data]
    #[arg(long, env = "LEAN_FARM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub checker: CheckerArgs,
    /// Store URL: sqlite://PATH or postgres://... [default: sqlite://DATA_DIR/leanfarm.db]
    #[arg(long, env = "LEAN_FARM_STORE")]
    pub store: Option<String>,
    /// Artifact store: a directory, file:///dir or memory:// [default: DATA_DIR/artifacts]
    #[arg(long, env = "LEAN_FARM_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Every user request must carry a tenant's token (see `leanfarm tenant`)
    #[arg(long, env = "LEAN_FARM_REQUIRE_AUTH")]
    #[serde(default)]
    pub require_auth: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub listener: ListenerArgs,
    /// Optional TOML file with any of these settings (snake_case keys)
    #[arg(long, env = "LEAN_FARM_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Fill what flags and environment left unset from the config file.
    pub fn with_file(self) -> Result<ServeArgs, CliError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|error| {
            CliError::Config(format!("cannot read {}: {error}", path.display()))
        })?;
        let in_file = |error: String| CliError::Config(format!("{}: {error}", path.display()));
        let table: toml::Table = toml::from_str(&text).map_err(|e| in_file(e.to_string()))?;
        // serde's deny_unknown_fields does not see through `flatten`: the
        // settings a file may hold are the flags' names.
        let command = <ServeArgs as Args>::augment_args(clap::Command::new("serve"));
        let known: Vec<&str> = command
            .get_arguments()
            .map(|arg| arg.get_id().as_str())
            .filter(|id| *id != "config")
            .collect();
        if let Some(unknown) = table.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(in_file(format!(
                "unknown setting `{unknown}`; the settings are {}",
                known.join(", ")
            )));
        }
        let file: ServeArgs = table.clone().try_into().map_err(|error: toml::de::Error| {
            // Through `flatten` the error lost its key: find the setting that fails alone.
            let culprit = table.iter().find(|(key, value)| {
                let alone = toml::Table::from_iter([(key.to_string(), (*value).clone())]);
                alone.try_into::<ServeArgs>().is_err()
            });
            match culprit {
                Some((key, _)) => in_file(format!("`{key}`: {error}")),
                None => in_file(error.to_string()),
            }
        })?;
        Ok(ServeArgs {
            addr: self.addr.or(file.addr),
            data_dir: self.data_dir.or(file.data_dir),
            checker: self.checker.or(file.checker),
            store: self.store.or(file.store),
            artifacts: self.artifacts.or(file.artifacts),
            require_auth: self.require_auth || file.require_auth,
            listener: self.listener.or(file.listener),
            config: self.config,
        })
    }
}

// ---- Listener settings: slow clients, connection cap, metrics listener ----

/// How the API's listener treats its clients, and where `/metrics` may be
/// served on a listener of its own.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ListenerArgs {
    /// Seconds a client has to send its request headers before its connection is closed [default: 10]
    #[arg(long, env = "LEAN_FARM_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<f64>,
    /// Seconds a client has to send its request body (408 beyond) [default: 60]
    #[arg(long, env = "LEAN_FARM_BODY_READ_TIMEOUT_SECONDS")]
    pub body_read_timeout_seconds: Option<f64>,
    /// Open connections at once; more are answered 503 and closed [default: 1024]
    #[arg(long, env = "LEAN_FARM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Serve /metrics, without a token, on this address too (for a private network)
    #[arg(long, env = "LEAN_FARM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl ListenerArgs {
    fn or(self, file: ListenerArgs) -> ListenerArgs {
        ListenerArgs {
            header_read_timeout_seconds: self
                .header_read_timeout_seconds
                .or(file.header_read_timeout_seconds),
            body_read_timeout_seconds: self
                .body_read_timeout_seconds
                .or(file.body_read_timeout_seconds),
            max_connections: self.max_connections.or(file.max_connections),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
        }
    }

    /// The API's limits with these settings.
    fn limits(&self) -> Result<Limits, CliError> {
        let defaults = Limits::default();
        let seconds = |name: &str, value: Option<f64>, default: Duration| match value {
            None => Ok(default),
            Some(value) if value.is_finite() && value > 0.0 && value <= 86_400.0 => {
                Ok(Duration::from_secs_f64(value))
            }
            Some(value) => Err(CliError::Config(format!(
                "{name} must be between 0 and 86400 seconds, not {value}"
            ))),
        };
        let max_connections = match self.max_connections {
            Some(0) => {
                return Err(CliError::Config(
                    "max_connections must be at least 1".into(),
                ))
            }
            Some(max) => max,
            None => defaults.max_connections,
        };
        Ok(Limits {
            header_read_timeout: seconds(
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                defaults.header_read_timeout,
            )?,
            body_read_timeout: seconds(
                "body_read_timeout_seconds",
                self.body_read_timeout_seconds,
                defaults.body_read_timeout,
            )?,
            max_connections,
            ..defaults
        })
    }
}

// ---- end of the listener settings ----

/// JSON logs on stderr, filtered by LEAN_FARM_LOG, else at `default`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAN_FARM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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

/// The toolchain to run: lean-sim inside this binary, or a configured REPL.
fn toolchain(args: &CheckerArgs) -> Result<(ToolchainConfig, Vec<ReadOnlyMount>), CliError> {
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
    let config = if args.simulate {
        let program = std::env::current_exe()
            .map_err(|error| CliError::Config(format!("cannot find this program: {error}")))?;
        mounts.push(mount_dir_of(&program)?);
        ToolchainConfig {
            name: args
                .toolchain
                .clone()
                .unwrap_or_else(|| "lean-sim".to_string()),
            repl_program: program,
            repl_args: vec!["lean-sim".to_string(), "repl".to_string()],
            project_name: "simulated".to_string(),
            env: Vec::new(),
        }
    } else {
        let Some(repl) = &args.repl else {
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
        if let Some(toolchain) = &args.lean_toolchain {
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
        let project_name = match &args.lean_project {
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
            name: args.toolchain.clone().unwrap_or_else(|| {
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

/// The data directory, created if missing, as an absolute path.
pub fn data_dir(dir: Option<&Path>, default: &str) -> Result<PathBuf, CliError> {
    let data_dir = dir.unwrap_or(Path::new(default));
    std::fs::create_dir_all(data_dir).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", data_dir.display()))
    })?;
    std::fs::canonicalize(data_dir).map_err(|error| CliError::Config(error.to_string()))
}

/// The driver: toolchain, sandbox and pool, from settings.
pub fn build_driver(args: &CheckerArgs, data_dir: &Path, slots: usize) -> Result<Driver, CliError> {
    let (toolchain, read_only_mounts) = toolchain(args)?;
    let backend: BackendKind = args
        .sandbox
        .as_deref()
        .unwrap_or("native")
        .parse()
        .map_err(|error: leanfarm_sandbox::SandboxError| CliError::Config(error.to_string()))?;
    let scratch_root = data_dir.join("scratch");
    std::fs::create_dir_all(&scratch_root).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", scratch_root.display()))
    })?;
    let sandbox = Sandbox::new(SandboxConfig {
        backend,
        memory_limit_bytes: args.memory_limit_mib.unwrap_or(8192) << 20,
        pids_limit: 256,
        cpu_limit_cores: 1.0,
        file_size_limit_bytes: 1 << 30,
        scratch_size_bytes: 1 << 30,
        open_files_limit: 1024,
        read_only_mounts,
        scratch_root,
        allow_degraded: args.allow_degraded_sandbox,
    })
    .map_err(|error| {
        CliError::Startup(format!(
            "{error} (for development without a sandbox: --sandbox none)"
        ))
    })?;
    let pool = PoolConfig {
        slots,
        max_repls: args.warm_repls.unwrap_or(slots).max(slots),
        prestart_headers: args
            .prestart
            .iter()
            .map(|h| h.replace("\\n", "\n"))
            .collect(),
        ..PoolConfig::default()
    };
    Ok(Driver::new(toolchain, pool, Arc::new(sandbox)))
}

/// Start the REPLs for the configured headers; a header that does not load
/// stops the start-up with Lean's reason.
pub async fn prestart(driver: &Driver) -> Result<(), CliError> {
    driver
        .prestart()
        .await
        .map_err(|error| CliError::Startup(error.to_string()))
}

/// Checks at once: the flag, or one per CPU.
pub fn slots(args: &CheckerArgs) -> usize {
    args.slots.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// How workers lease and drain, from settings.
pub fn worker_config(args: &CheckerArgs, worker_id: String) -> WorkerConfig {
    WorkerConfig {
        worker_id,
        lease: Duration::from_secs_f64(args.lease_seconds.unwrap_or(30.0).max(1.0)),
        poll_interval: Duration::from_millis(250),
        retry_backoff: Duration::from_secs(2),
        drain_deadline: Duration::from_secs_f64(args.drain_seconds.unwrap_or(30.0).max(0.0)),
    }
}

/// Build and start a farm from settings.
pub async fn start_farm(args: ServeArgs) -> Result<Farm, CliError> {
    let limits = args.listener.limits()?;
    let data_dir = data_dir(args.data_dir.as_deref(), "leanfarm-data")?;
    let slots = slots(&args.checker);
    let driver = match slots {
        0 => None,
        slots => Some(build_driver(&args.checker, &data_dir, slots)?),
    };
    if let Some(driver) = &driver {
        prestart(driver).await?;
    }
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("leanfarm.db").display()));
    let store = Store::open(&store_url)
        .await
        .map_err(|error| CliError::Startup(format!("store {store_url}: {error}")))?;
    let artifacts_url = args
        .artifacts
        .clone()
        .unwrap_or_else(|| data_dir.join("artifacts").display().to_string());
    let artifacts = ArtifactStore::open(&artifacts_url)
        .map_err(|error| CliError::Startup(format!("artifacts {artifacts_url}: {error}")))?;
    let state = AppState::new(store, artifacts, driver, limits, args.require_auth);
    let worker = worker_config(&args.checker, format!("embedded-{}", uuid::Uuid::now_v7()));
    let addr = args
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
    Farm::start_with_metrics(state, addr, args.listener.metrics_addr, worker)
        .await
        .map_err(|error| CliError::Startup(format!("cannot listen on {addr}: {error}")))
}

pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let args = args.with_file()?;
    let farm = start_farm(args).await?;
    eprintln!(
        "leanfarm: serving on http://{} (Ctrl-C or SIGTERM to stop)",
        farm.local_addr
    );
    if let Some(metrics_addr) = farm.metrics_addr {
        eprintln!("leanfarm: metrics on http://{metrics_addr}/metrics");
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining running checks");
    farm.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
