//! `leanfarm worker`: check jobs leased from a farm over HTTP.

use crate::config::{self, ServeArgs};
use crate::CliError;
use clap::Args;
use leanfarm_server::worker::{self, Queue, RemoteQueue};
use std::path::PathBuf;
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The farm's URL, e.g. http://leanfarm:8000
    #[arg(long, env = "LEAN_FARM_SERVER")]
    pub server: String,
    /// A worker token (`leanfarm tenant key TENANT --scope worker`)
    #[arg(long, env = "LEAN_FARM_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Name in leases and logs [default: worker-<hostname>-<pid>]
    #[arg(long, env = "LEAN_FARM_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Concurrent checks [default: number of CPUs]
    #[arg(long, env = "LEAN_FARM_SLOTS")]
    pub slots: Option<usize>,
    /// REPL processes kept alive, busy or warm [default: the slots]
    #[arg(long, env = "LEAN_FARM_WARM_REPLS")]
    pub warm_repls: Option<usize>,
    /// Use lean-sim, the stand-in for Lean, instead of a real toolchain
    #[arg(long, env = "LEAN_FARM_SIMULATE")]
    pub simulate: bool,
    /// The Lean REPL program
    #[arg(long, env = "LEAN_FARM_REPL")]
    pub repl: Option<PathBuf>,
    /// The Lean project the REPL runs in (mounted read-only)
    #[arg(long, env = "LEAN_FARM_LEAN_PROJECT")]
    pub lean_project: Option<PathBuf>,
    /// The Lean toolchain directory, mounted read-only
    #[arg(long, env = "LEAN_FARM_LEAN_TOOLCHAIN")]
    pub lean_toolchain: Option<PathBuf>,
    /// Name of the toolchain reported in verdicts [default: the REPL's file name]
    #[arg(long, env = "LEAN_FARM_TOOLCHAIN")]
    pub toolchain: Option<String>,
    /// Import headers to start REPLs for before leasing work (repeatable; in the variable, separated by `;`)
    #[arg(long = "prestart", env = "LEAN_FARM_PRESTART", value_delimiter = ';')]
    pub prestart: Vec<String>,
    /// Sandbox backend: native, gvisor, or none (development only) [default: native]
    #[arg(long, env = "LEAN_FARM_SANDBOX")]
    pub sandbox: Option<String>,
    /// Run even where the sandbox cannot enforce its limits
    #[arg(long, env = "LEAN_FARM_ALLOW_DEGRADED_SANDBOX")]
    pub allow_degraded_sandbox: bool,
    /// Memory limit of each REPL process tree, in MiB [default: 8192]
    #[arg(long, env = "LEAN_FARM_MEMORY_LIMIT_MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Directory for scratch space [default: ./leanfarm-worker]
    #[arg(long, env = "LEAN_FARM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds a lease lasts without a heartbeat [default: 30]
    #[arg(long, env = "LEAN_FARM_LEASE_SECONDS")]
    pub lease_seconds: Option<f64>,
    /// Seconds running checks may take to finish on SIGTERM before their jobs are handed back [default: 30]
    #[arg(long, env = "LEAN_FARM_DRAIN_SECONDS")]
    pub drain_seconds: Option<f64>,
}

pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    let settings = ServeArgs {
        simulate: args.simulate,
        repl: args.repl,
        lean_project: args.lean_project,
        lean_toolchain: args.lean_toolchain,
        toolchain: args.toolchain,
        slots: args.slots,
        warm_repls: args.warm_repls,
        prestart: args.prestart,
        sandbox: args.sandbox,
        allow_degraded_sandbox: args.allow_degraded_sandbox,
        memory_limit_mib: args.memory_limit_mib,
        data_dir: Some(
            args.data_dir
                .unwrap_or_else(|| PathBuf::from("leanfarm-worker")),
        ),
        lease_seconds: args.lease_seconds,
        drain_seconds: args.drain_seconds,
        ..ServeArgs::default()
    };
    let data_dir = settings.data_dir.clone().expect("set above");
    std::fs::create_dir_all(&data_dir).map_err(|error| {
        CliError::Config(format!("cannot create {}: {error}", data_dir.display()))
    })?;
    let data_dir =
        std::fs::canonicalize(&data_dir).map_err(|error| CliError::Config(error.to_string()))?;
    let slots = config::slots(&settings).max(1);
    let driver = config::build_driver(&settings, &data_dir, slots)?;
    config::prestart(&driver).await?;
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("worker-{}-{}", host.trim(), std::process::id())
    });
    let worker_config = config::worker_config(&settings, worker_id.clone());
    let queue = Queue::Remote(RemoteQueue::new(&args.server, &args.token));
    let (stop, stopped) = watch::channel(false);
    eprintln!(
        "leanfarm: worker {worker_id} with {slots} slots, leasing from {}",
        args.server
    );
    tracing::info!(worker_id, slots, server = %args.server, "worker started");
    let work = tokio::spawn(worker::run(queue, driver, worker_config, stopped));
    config::shutdown_signal().await;
    tracing::info!("shutting down: no new leases; draining running checks");
    let _ = stop.send(true);
    let _ = work.await;
    Ok(())
}
