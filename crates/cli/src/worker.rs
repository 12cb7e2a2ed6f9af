//! `leanfarm worker`: check jobs leased from a farm over HTTP.

use crate::config::{self, CheckerArgs};
use crate::CliError;
use clap::Args;
use leanfarm_worker::HttpQueue;
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
    #[command(flatten)]
    pub checker: CheckerArgs,
    #[command(flatten)]
    pub signing: crate::verify::SigningArgs,
    /// Directory for scratch space
    #[arg(long, env = "LEAN_FARM_DATA_DIR", default_value = "leanfarm-worker")]
    pub data_dir: PathBuf,
}

pub async fn run(args: WorkerArgs) -> Result<(), CliError> {
    args.checker.validate()?;
    let data_dir = config::data_dir(&args.data_dir)?;
    let slots = args.checker.slots().max(1);
    let driver = args.checker.build_driver(&data_dir, slots)?;
    config::prestart(&driver).await?;
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("worker-{}-{}", host.trim(), std::process::id())
    });
    let worker_config = args.checker.worker_config(worker_id.clone());
    let queue = HttpQueue::new(&args.server, &args.token)
        .map_err(|error| CliError::Startup(error.to_string()))?;
    let queue = args.signing.apply(queue, &worker_id)?;
    let (stop, stopped) = watch::channel(false);
    eprintln!(
        "leanfarm: worker {worker_id} with {slots} slots, leasing from {}",
        args.server
    );
    tracing::info!(worker_id, slots, server = %args.server, "worker started");
    let work = tokio::spawn(leanfarm_worker::run(queue, driver, worker_config, stopped));
    config::shutdown_signal().await;
    tracing::info!("shutting down: no new leases; draining running checks");
    let _ = stop.send(true);
    let _ = work.await;
    Ok(())
}
